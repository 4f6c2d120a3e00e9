//! EC2 instance states and state reasons → [`CloudState`].

use jenkins_cloud_core::backend::CloudState;

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
