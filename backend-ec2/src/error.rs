//! The crate's error type and its classification into [`BackendError`].

use jenkins_cloud_core::backend::BackendError;
use jenkins_cloud_core::ErrorClass;

/// Everything that can go wrong in the EC2 backend.
///
/// Messages never contain agent secrets: errors from SSM calls that carry a
/// secret are redacted before they are built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ec2Error {
    /// The template's `spec` is invalid; one entry per problem, each naming its field.
    #[error("invalid EC2 template spec: {}", .0.join("; "))]
    InvalidSpec(Vec<String>),
    /// An AWS API call failed.
    #[error("{operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Aws {
        /// The API operation (`RunInstances`, `PutParameter`…).
        operation: &'static str,
        /// The AWS error code (`InsufficientInstanceCapacity`…), when the service sent one.
        code: Option<String>,
        /// The service's message, or the transport failure.
        message: String,
        /// What retrying does, from the code (see [`classify_code`]).
        class: ErrorClass,
    },
    /// No AMI matched the template's AMI selector.
    #[error("no AMI found for {0}")]
    AmiNotFound(String),
    /// Every instance type × subnet × market combination had no capacity.
    #[error("no capacity for any instance type, subnet and market tried: {}", .0.join(", "))]
    NoCapacity(Vec<String>),
    /// The instance exists but does not carry this owner's tag: it was left alone.
    #[error("instance {id} is not owned by `{owner}`: left untouched")]
    NotOwned {
        /// The instance id.
        id: String,
        /// This backend's owner.
        owner: String,
    },
    /// The agent name cannot be used in an SSM parameter name or a tag.
    #[error("agent name `{0}` cannot be used: only a-z, A-Z, 0-9, `-`, `_` and `.` are allowed for the EC2 backend")]
    BadAgentName(String),
    /// The rendered user data is unusable (too large, unknown placeholder…).
    #[error("user data: {0}")]
    UserData(String),
}

impl Ec2Error {
    /// What retrying does.
    pub fn class(&self) -> ErrorClass {
        match self {
            Ec2Error::Aws { class, .. } => *class,
            Ec2Error::NoCapacity(_) => ErrorClass::Capacity,
            Ec2Error::InvalidSpec(_)
            | Ec2Error::AmiNotFound(_)
            | Ec2Error::NotOwned { .. }
            | Ec2Error::BadAgentName(_)
            | Ec2Error::UserData(_) => ErrorClass::Permanent,
        }
    }

    /// The AWS error code, if this is an AWS error that carried one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Ec2Error::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// An AWS error classified from its code.
    pub fn aws(operation: &'static str, code: Option<String>, message: impl Into<String>) -> Self {
        let class = code
            .as_deref()
            .map(classify_code)
            .unwrap_or(ErrorClass::Transient);
        Ec2Error::Aws {
            operation,
            code,
            message: message.into(),
            class,
        }
    }

    /// An AWS call that never got an answer (connection, timeout): transient.
    pub fn transport(operation: &'static str, message: impl Into<String>) -> Self {
        Ec2Error::Aws {
            operation,
            code: None,
            message: message.into(),
            class: ErrorClass::Transient,
        }
    }
}

/// Error codes meaning "no capacity for this type / zone / market": try the next fallback.
const CAPACITY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientFreeAddressesInSubnet",
    "InsufficientCapacityOnOutpost",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "Unsupported",
];

/// Codes after which no other spot request can succeed: skip straight to on-demand.
pub(crate) const SPOT_WIDE_CODES: &[&str] = &["MaxSpotInstanceCountExceeded", "SpotMaxPriceTooLow"];

/// Codes meaning "rate limited".
const THROTTLING_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "ThrottledException",
];

/// Codes for passing service faults.
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Classifies an EC2 or SSM error code. Unknown codes are permanent: bad AMI
/// (`InvalidAMIID.*`), missing profile (`InvalidParameterValue`), unknown subnet
/// (`InvalidSubnetID.NotFound`), missing permissions (`UnauthorizedOperation`)…
pub fn classify_code(code: &str) -> ErrorClass {
    if CAPACITY_CODES.contains(&code) {
        ErrorClass::Capacity
    } else if THROTTLING_CODES.contains(&code) {
        ErrorClass::Throttled
    } else if TRANSIENT_CODES.contains(&code) {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

impl From<Ec2Error> for BackendError {
    fn from(err: Ec2Error) -> Self {
        BackendError::of_class(err.class(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(
            classify_code("InsufficientInstanceCapacity"),
            ErrorClass::Capacity
        );
        assert_eq!(
            classify_code("MaxSpotInstanceCountExceeded"),
            ErrorClass::Capacity
        );
        assert_eq!(classify_code("RequestLimitExceeded"), ErrorClass::Throttled);
        assert_eq!(classify_code("InternalError"), ErrorClass::Transient);
        assert_eq!(
            classify_code("InvalidAMIID.NotFound"),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify_code("InvalidSubnetID.NotFound"),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify_code("InvalidParameterValue"),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn conversion_keeps_class_and_code() {
        let e = Ec2Error::aws(
            "RunInstances",
            Some("RequestLimitExceeded".into()),
            "slow down",
        );
        assert_eq!(
            e.to_string(),
            "RunInstances failed: RequestLimitExceeded: slow down"
        );
        let b: BackendError = e.into();
        assert_eq!(b.class(), ErrorClass::Throttled);
        assert!(b.message().contains("RequestLimitExceeded"));
        let b: BackendError = Ec2Error::NoCapacity(vec!["m5.large in subnet-1".into()]).into();
        assert_eq!(b.class(), ErrorClass::Capacity);
        let b: BackendError = Ec2Error::transport("DescribeInstances", "connection reset").into();
        assert_eq!(b.class(), ErrorClass::Transient);
    }
}
