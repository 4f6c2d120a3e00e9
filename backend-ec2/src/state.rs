//! EC2 instance states and state reasons → [`CloudState`].

use jenkins_cloud_core::backend::CloudState;
use jenkins_cloud_core::ErrorClass;

use crate::api::InstanceInfo;

/// State reasons that mean *we* (or an operator) stopped or terminated the instance.
const ORDERLY_REASONS: &[&str] = &[
    "Client.UserInitiatedShutdown",
    "Client.UserInitiatedHibernate",
];

/// Maps an instance's state. A stop or termination with any other reason (spot
/// interruption `Server.SpotInstanceTermination`, `Server.InternalError`,
/// `Client.InstanceInitiatedShutdown`, a volume limit…) is `Failed` with the
/// reason, even while still `stopping`/`shutting-down`, so the node can be
/// removed at once and the build fails fast.
pub fn map_state(info: &InstanceInfo) -> CloudState {
    let involuntary = || {
        info.state_reason_code
            .as_deref()
            .filter(|code| !ORDERLY_REASONS.contains(code))
            .map(|code| match info.state_reason_message.as_deref() {
                Some(msg) if !msg.is_empty() => format!("{code}: {msg}"),
                _ => code.to_owned(),
            })
    };
    match info.state.as_str() {
        "pending" => CloudState::Pending,
        "running" => CloudState::Running,
        "stopping" | "shutting-down" => involuntary()
            .map(CloudState::Failed)
            .unwrap_or(CloudState::Stopping),
        "stopped" => involuntary()
            .map(CloudState::Failed)
            .unwrap_or(CloudState::Stopped),
        "terminated" => involuntary()
            .map(CloudState::Failed)
            .unwrap_or(CloudState::Terminated),
        other => CloudState::Failed(format!("unknown instance state `{other}`")),
    }
}

/// What retrying does about an instance that stopped or terminated by itself
/// before its agent ran a build, from the reason [`map_state`] gave it (the
/// state reason code first). Codes and meanings from the EC2 API Reference,
/// "StateReason" (docs.aws.amazon.com/AWSEC2/latest/APIReference/API_StateReason.html):
///
/// * capacity: `Server.InsufficientInstanceCapacity` ("insufficient capacity
///   available to satisfy the launch request"), `Server.SpotInstanceShutdown`
///   and `Server.SpotInstanceTermination` (Spot capacity or price);
/// * transient: `Server.InternalError` ("an internal error caused the
///   instance to terminate during launch"), `Server.ScheduledStop` (scheduled
///   retirement), `Client.InstanceTerminated`;
/// * permanent: `Client.InstanceInitiatedShutdown` (the image or its boot
///   script shut it down), `Client.InternalError` ("a client error caused the
///   instance to terminate during launch"), `Client.InvalidSnapshot.NotFound`,
///   `Client.VolumeLimitExceeded` (an EBS quota).
///
/// Anything else is transient.
pub fn classify_state_reason(reason: &str) -> ErrorClass {
    let code = reason.split(':').next().unwrap_or_default().trim();
    match code {
        "Server.InsufficientInstanceCapacity"
        | "Server.SpotInstanceShutdown"
        | "Server.SpotInstanceTermination" => ErrorClass::Capacity,
        "Client.InstanceInitiatedShutdown"
        | "Client.InternalError"
        | "Client.InvalidSnapshot.NotFound"
        | "Client.VolumeLimitExceeded" => ErrorClass::Permanent,
        _ => ErrorClass::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(state: &str, code: Option<&str>, msg: Option<&str>) -> InstanceInfo {
        InstanceInfo {
            id: "i-1".into(),
            state: state.into(),
            state_reason_code: code.map(Into::into),
            state_reason_message: msg.map(Into::into),
            launch_time: None,
            tags: vec![],
            lifecycle: None,
            instance_type: None,
            subnet_id: None,
        }
    }

    /// Codes from the EC2 API Reference's StateReason (see [`classify_state_reason`]).
    #[test]
    fn state_reasons_are_classified_by_code() {
        let cases = [
            ("Server.InsufficientInstanceCapacity: There was insufficient capacity available to satisfy the launch request.", ErrorClass::Capacity),
            ("Server.SpotInstanceTermination: Server.SpotInstanceTermination: Spot instance termination", ErrorClass::Capacity),
            ("Server.SpotInstanceShutdown", ErrorClass::Capacity),
            ("Server.InternalError: An internal error caused the instance to terminate during launch.", ErrorClass::Transient),
            ("Server.ScheduledStop: The instance was stopped due to a scheduled retirement.", ErrorClass::Transient),
            ("Client.InstanceInitiatedShutdown: The instance was shut down from the operating system of the instance.", ErrorClass::Permanent),
            ("Client.InternalError: A client error caused the instance to terminate during launch.", ErrorClass::Permanent),
            ("Client.InvalidSnapshot.NotFound: The specified snapshot was not found.", ErrorClass::Permanent),
            ("Client.VolumeLimitExceeded: The limit on the number of EBS volumes or total storage was exceeded.", ErrorClass::Permanent),
            ("unknown instance state `exploded`", ErrorClass::Transient),
        ];
        for (reason, class) in cases {
            assert_eq!(classify_state_reason(reason), class, "{reason}");
        }
        // A reason map_state produces classifies by its code.
        let CloudState::Failed(reason) = map_state(&info(
            "terminated",
            Some("Server.SpotInstanceTermination"),
            Some("Spot instance termination"),
        )) else {
            panic!("a spot termination is a failure")
        };
        assert_eq!(classify_state_reason(&reason), ErrorClass::Capacity);
    }

    #[test]
    fn states_and_reasons() {
        assert_eq!(map_state(&info("pending", None, None)), CloudState::Pending);
        assert_eq!(map_state(&info("running", None, None)), CloudState::Running);
        let ours = Some("Client.UserInitiatedShutdown");
        assert_eq!(
            map_state(&info("shutting-down", ours, None)),
            CloudState::Stopping
        );
        assert_eq!(
            map_state(&info("terminated", ours, None)),
            CloudState::Terminated
        );
        assert_eq!(map_state(&info("stopped", ours, None)), CloudState::Stopped);
        assert_eq!(
            map_state(&info("stopping", ours, None)),
            CloudState::Stopping
        );
        assert_eq!(
            map_state(&info(
                "terminated",
                Some("Server.SpotInstanceTermination"),
                Some("Server.SpotInstanceTermination: Spot instance termination")
            )),
            CloudState::Failed(
                "Server.SpotInstanceTermination: Server.SpotInstanceTermination: Spot instance termination".into()
            )
        );
        assert_eq!(
            map_state(&info(
                "shutting-down",
                Some("Server.SpotInstanceTermination"),
                None
            )),
            CloudState::Failed("Server.SpotInstanceTermination".into())
        );
        assert_eq!(
            map_state(&info(
                "stopped",
                Some("Client.InstanceInitiatedShutdown"),
                None
            )),
            CloudState::Failed("Client.InstanceInitiatedShutdown".into())
        );
        assert!(matches!(
            map_state(&info("exploded", None, None)),
            CloudState::Failed(_)
        ));
    }
}
