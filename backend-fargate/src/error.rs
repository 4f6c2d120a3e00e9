//! The crate's error type and its classification into [`BackendError`].

use jenkins_cloud_core::{BackendError, ErrorClass};

use crate::api::ApiError;

/// Everything that can go wrong in the Fargate backend. Messages never contain
/// agent secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The template's Fargate spec is invalid: every problem, each naming its field.
    #[error("invalid Fargate template spec: {}", .0.join("; "))]
    InvalidSpec(Vec<String>),
    /// An ECS call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// ECS accepted RunTask but did not start the task (`failures[]`).
    #[error("ECS did not start the task: {reason}{}", arn.as_deref().map(|a| format!(" ({a})")).unwrap_or_default())]
    TaskNotStarted {
        /// AWS's failure reason (`RESOURCE:MEMORY`, `Capacity is unavailable…`).
        reason: String,
        /// The resource the failure names, if any.
        arn: Option<String>,
        /// What retrying does.
        class: ErrorClass,
    },
    /// A batched task could not be bound to its agent (TagResource failed).
    /// The task was stopped (or, if stopping failed too, is left for orphan
    /// collection: it is listed as `untagged-<task id>`).
    #[error("task {arn} could not be bound to its agent and {}: {source}", if *.stopped { "was stopped" } else { "is left for orphan collection" })]
    Unbound {
        /// The task.
        arn: String,
        /// The TagResource failure.
        source: ApiError,
        /// Whether StopTask succeeded.
        stopped: bool,
    },
    /// A task without this backend's owner tag: left untouched.
    #[error("task {0} does not carry this owner's tag; left untouched")]
    NotOwned(String),
    /// An id that is not a long-format ECS task ARN.
    #[error("`{0}` is not an ECS task ARN of the form arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID")]
    InvalidId(String),
    /// Backend configuration problem.
    #[error("Fargate backend configuration: {0}")]
    Config(String),
    /// A bug or an unexpected answer from ECS.
    #[error("unexpected: {0}")]
    Internal(String),
}

impl Error {
    /// What retrying does.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Api(api) => api.class(),
            Error::TaskNotStarted { class, .. } => *class,
            Error::Unbound { source, .. } => source.class(),
            Error::Internal(_) => ErrorClass::Transient,
            Error::InvalidSpec(_) | Error::NotOwned(_) | Error::InvalidId(_) | Error::Config(_) => {
                ErrorClass::Permanent
            }
        }
    }
}

impl From<Error> for BackendError {
    fn from(err: Error) -> Self {
        BackendError::of_class(err.class(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_carry_over_to_backend_error() {
        let spec = Error::InvalidSpec(vec!["spec.cpu: required".into(), "spec.subnets: x".into()]);
        let be = BackendError::from(spec);
        assert_eq!(be.class(), ErrorClass::Permanent);
        assert!(be.message().contains("spec.cpu: required; spec.subnets: x"));

        let spot = Error::TaskNotStarted {
            reason: "Capacity is unavailable at this time".into(),
            arn: None,
            class: ErrorClass::Capacity,
        };
        assert_eq!(BackendError::from(spot).class(), ErrorClass::Capacity);

        let throttled = Error::from(ApiError::service(
            "RunTask",
            "ThrottlingException",
            "Rate exceeded",
        ));
        assert!(matches!(
            BackendError::from(throttled),
            BackendError::Throttled { .. }
        ));
    }
}
