//! The ECS calls this backend makes, behind a small trait so that batching,
//! classification and fallback can be tested without the network.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::operation::deregister_task_definition::builders::DeregisterTaskDefinitionInputBuilder;
use aws_sdk_ecs::operation::describe_task_definition::builders::DescribeTaskDefinitionInputBuilder;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::builders::DescribeTasksInputBuilder;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_task_definitions::builders::ListTaskDefinitionsInputBuilder;
use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
use aws_sdk_ecs::operation::list_tasks::builders::ListTasksInputBuilder;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionInputBuilder;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::run_task::builders::RunTaskInputBuilder;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::operation::stop_task::builders::StopTaskInputBuilder;
use aws_sdk_ecs::operation::stop_task::StopTaskOutput;
use aws_sdk_ecs::operation::tag_resource::builders::TagResourceInputBuilder;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use jenkins_cloud_core::ErrorClass;

/// How a call failed before or after reaching ECS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// ECS answered with an error code.
    Service,
    /// The request timed out.
    Timeout,
    /// The request could not be sent (connection, credentials).
    Dispatch,
    /// The response could not be read (an HTML 500 from an emulator, a cut body).
    Response,
    /// The request could not be built: a bug or invalid input.
    Construction,
}

/// One failed ECS call, reduced to what classification needs. Never holds a
/// request (requests carry agent secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The ECS operation (`RunTask`…).
    pub operation: &'static str,
    /// What kind of failure.
    pub kind: ApiErrorKind,
    /// The AWS error code (`ThrottlingException`, `ClientException`…).
    pub code: Option<String>,
    /// AWS's message, or the transport error's.
    pub message: String,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ECS {} failed", self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " with {code}")?;
        }
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// A service error with the given code and message (tests, classification).
    pub fn service(operation: &'static str, code: &str, message: &str) -> Self {
        Self {
            operation,
            kind: ApiErrorKind::Service,
            code: Some(code.to_owned()),
            message: message.to_owned(),
            status: Some(400),
        }
    }

    pub(crate) fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status_of = |raw: &HttpResponse| Some(raw.status().as_u16());
        match &err {
            SdkError::ServiceError(service) => Self {
                operation,
                kind: ApiErrorKind::Service,
                code: service.err().code().map(str::to_owned),
                message: service
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| service.err().to_string()),
                status: status_of(service.raw()),
            },
            SdkError::TimeoutError(_) => Self::other(operation, ApiErrorKind::Timeout, &err, None),
            SdkError::DispatchFailure(_) => {
                Self::other(operation, ApiErrorKind::Dispatch, &err, None)
            }
            SdkError::ResponseError(response) => {
                let status = status_of(response.raw());
                Self::other(operation, ApiErrorKind::Response, &err, status)
            }
            _ => Self::other(operation, ApiErrorKind::Construction, &err, None),
        }
    }

    fn other(
        operation: &'static str,
        kind: ApiErrorKind,
        err: &dyn std::error::Error,
        status: Option<u16>,
    ) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(inner) = source {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            source = inner.source();
        }
        Self {
            operation,
            kind,
            code: None,
            message,
            status,
        }
    }

    /// What retrying this call does.
    pub fn class(&self) -> ErrorClass {
        match self.kind {
            ApiErrorKind::Timeout | ApiErrorKind::Dispatch | ApiErrorKind::Response => {
                return ErrorClass::Transient
            }
            ApiErrorKind::Construction => return ErrorClass::Permanent,
            ApiErrorKind::Service => {}
        }
        let code = self.code.as_deref().unwrap_or("");
        let message = self.message.to_ascii_lowercase();
        if matches!(
            code,
            "ThrottlingException"
                | "Throttling"
                | "ThrottledException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "RequestThrottled"
        ) || message.contains("rate exceeded")
        {
            return ErrorClass::Throttled;
        }
        if let Some(class) = classify_reason(&self.message) {
            if class == ErrorClass::Capacity {
                return class;
            }
        }
        match code {
            "ServerException" | "ServiceUnavailableException" | "InternalFailure" => {
                ErrorClass::Transient
            }
            "" => match self.status {
                Some(status) if status >= 500 => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
            // AccessDenied, ClientException, ClusterNotFound, InvalidParameter,
            // PlatformUnknown, PlatformTaskDefinitionIncompatibility, Blocked,
            // UnsupportedFeature…: configuration problems.
            _ => match self.status {
                Some(status) if status >= 500 => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
        }
    }
}

/// Classifies a RunTask `failures[].reason` (or an error message that carries one).
/// `None` when the reason is unknown.
pub fn classify_reason(reason: &str) -> Option<ErrorClass> {
    let lower = reason.to_ascii_lowercase();
    if reason.starts_with("RESOURCE:")
        || lower.contains("capacity is unavailable")
        || lower.contains("insufficient capacity")
        || lower.contains("timeout waiting for network interface provisioning")
        || lower.contains("network interface provisioning")
        || lower.contains("reached the limit on the number of tasks")
    {
        return Some(ErrorClass::Capacity);
    }
    if lower.contains("rate exceeded") || lower.contains("throttl") {
        return Some(ErrorClass::Throttled);
    }
    match reason {
        "AGENT" | "MISSING" => Some(ErrorClass::Transient),
        "ATTRIBUTE" | "LOCATION" => Some(ErrorClass::Permanent),
        _ if lower.contains("unable to assume")
            || lower.contains("not authorized")
            || lower.contains("access denied")
            || lower.contains("does not exist")
            || lower.contains("not found")
            || lower.contains("invalid") =>
        {
            Some(ErrorClass::Permanent)
        }
        _ => None,
    }
}

/// The ECS calls the backend uses. Implemented for [`aws_sdk_ecs::Client`]; tests
/// implement it with mockall.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EcsApi: Send + Sync + fmt::Debug {
    /// RunTask.
    async fn run_task(&self, input: RunTaskInputBuilder) -> Result<RunTaskOutput, ApiError>;
    /// DescribeTasks.
    async fn describe_tasks(
        &self,
        input: DescribeTasksInputBuilder,
    ) -> Result<DescribeTasksOutput, ApiError>;
    /// StopTask.
    async fn stop_task(&self, input: StopTaskInputBuilder) -> Result<StopTaskOutput, ApiError>;
    /// ListTasks.
    async fn list_tasks(&self, input: ListTasksInputBuilder) -> Result<ListTasksOutput, ApiError>;
    /// RegisterTaskDefinition.
    async fn register_task_definition(
        &self,
        input: RegisterTaskDefinitionInputBuilder,
    ) -> Result<RegisterTaskDefinitionOutput, ApiError>;
    /// DescribeTaskDefinition.
    async fn describe_task_definition(
        &self,
        input: DescribeTaskDefinitionInputBuilder,
    ) -> Result<DescribeTaskDefinitionOutput, ApiError>;
    /// ListTaskDefinitions.
    async fn list_task_definitions(
        &self,
        input: ListTaskDefinitionsInputBuilder,
    ) -> Result<ListTaskDefinitionsOutput, ApiError>;
    /// DeregisterTaskDefinition.
    async fn deregister_task_definition(
        &self,
        input: DeregisterTaskDefinitionInputBuilder,
    ) -> Result<(), ApiError>;
    /// TagResource (binds a batched task to its agent).
    async fn tag_resource(&self, input: TagResourceInputBuilder) -> Result<(), ApiError>;
}

#[async_trait]
impl EcsApi for aws_sdk_ecs::Client {
    async fn run_task(&self, input: RunTaskInputBuilder) -> Result<RunTaskOutput, ApiError> {
        input
            .send_with(self)
            .await
            .map_err(|e| ApiError::from_sdk("RunTask", e))
    }

    async fn describe_tasks(
        &self,
        input: DescribeTasksInputBuilder,
    ) -> Result<DescribeTasksOutput, ApiError> {
        input
            .send_with(self)
            .await
            .map_err(|e| ApiError::from_sdk("DescribeTasks", e))
    }

    async fn stop_task(&self, input: StopTaskInputBuilder) -> Result<StopTaskOutput, ApiError> {
        input
            .send_with(self)
            .await
            .map_err(|e| ApiError::from_sdk("StopTask", e))
    }

    async fn list_tasks(&self, input: ListTasksInputBuilder) -> Result<ListTasksOutput, ApiError> {
        input
            .send_with(self)
            .await
            .map_err(|e| ApiError::from_sdk("ListTasks", e))
    }

    async fn register_task_definition(
        &self,
        input: RegisterTaskDefinitionInputBuilder,
    ) -> Result<RegisterTaskDefinitionOutput, ApiError> {
        input
            .send_with(self)
            .await
            .map_err(|e| ApiError::from_sdk("RegisterTaskDefinition", e))
    }

    async fn describe_task_definition(
        &self,
        input: DescribeTaskDefinitionInputBuilder,
    ) -> Result<DescribeTaskDefinitionOutput, ApiError> {
        input
            .send_with(self)
            .await
            .map_err(|e| ApiError::from_sdk("DescribeTaskDefinition", e))
    }

    async fn list_task_definitions(
        &self,
        input: ListTaskDefinitionsInputBuilder,
    ) -> Result<ListTaskDefinitionsOutput, ApiError> {
        input
            .send_with(self)
            .await
            .map_err(|e| ApiError::from_sdk("ListTaskDefinitions", e))
    }

    async fn deregister_task_definition(
        &self,
        input: DeregisterTaskDefinitionInputBuilder,
    ) -> Result<(), ApiError> {
        input
            .send_with(self)
            .await
            .map(|_| ())
            .map_err(|e| ApiError::from_sdk("DeregisterTaskDefinition", e))
    }

    async fn tag_resource(&self, input: TagResourceInputBuilder) -> Result<(), ApiError> {
        input
            .send_with(self)
            .await
            .map(|_| ())
            .map_err(|e| ApiError::from_sdk("TagResource", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_and_messages_are_throttled() {
        for code in [
            "ThrottlingException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
        ] {
            assert_eq!(
                ApiError::service("RunTask", code, "slow down").class(),
                ErrorClass::Throttled
            );
        }
        let rate = ApiError::service("StopTask", "ClientException", "Rate exceeded");
        assert_eq!(rate.class(), ErrorClass::Throttled);
    }

    #[test]
    fn configuration_errors_are_permanent() {
        let cases = [
            ("InvalidParameterException", "Error retrieving subnet information for [subnet-1]: The subnet ID 'subnet-1' does not exist"),
            ("ClientException", "ECS was unable to assume the role 'arn:aws:iam::1:role/x' that was provided for this task."),
            ("AccessDeniedException", "User is not authorized to perform ecs:RunTask"),
            ("ClusterNotFoundException", "Cluster not found."),
            ("PlatformUnknownException", "The specified platform does not exist."),
        ];
        for (code, message) in cases {
            assert_eq!(
                ApiError::service("RunTask", code, message).class(),
                ErrorClass::Permanent,
                "{code}"
            );
        }
    }

    #[test]
    fn server_errors_and_transport_failures_are_transient() {
        assert_eq!(
            ApiError::service("RunTask", "ServerException", "boom").class(),
            ErrorClass::Transient
        );
        let html_500 = ApiError {
            operation: "StopTask",
            kind: ApiErrorKind::Response,
            code: None,
            message: "could not parse".into(),
            status: Some(500),
        };
        assert_eq!(html_500.class(), ErrorClass::Transient);
        let no_code_500 = ApiError {
            kind: ApiErrorKind::Service,
            ..html_500
        };
        assert_eq!(no_code_500.class(), ErrorClass::Transient);
    }

    #[test]
    fn failure_reasons_are_classified() {
        assert_eq!(
            classify_reason("RESOURCE:MEMORY"),
            Some(ErrorClass::Capacity)
        );
        assert_eq!(classify_reason("RESOURCE:ENI"), Some(ErrorClass::Capacity));
        assert_eq!(
            classify_reason("Capacity is unavailable at this time. Please try again later or in a different availability zone"),
            Some(ErrorClass::Capacity)
        );
        assert_eq!(
            classify_reason("Timeout waiting for network interface provisioning to complete."),
            Some(ErrorClass::Capacity)
        );
        assert_eq!(classify_reason("AGENT"), Some(ErrorClass::Transient));
        assert_eq!(classify_reason("ATTRIBUTE"), Some(ErrorClass::Permanent));
        assert_eq!(classify_reason("something new"), None);
    }

    #[test]
    fn display_names_operation_code_and_message() {
        let err = ApiError::service("RunTask", "ClientException", "bad image");
        assert_eq!(
            err.to_string(),
            "ECS RunTask failed with ClientException (HTTP 400): bad image"
        );
    }
}
