//! ECS tasks as the core sees them: ownership, agent name and lifecycle state.

use std::time::SystemTime;

use aws_sdk_ecs::types::{Task, TaskStopCode};
use jenkins_cloud_core::backend::{tags, CloudId, CloudInstance, CloudState, OwnerId};
use jenkins_cloud_core::ErrorClass;

/// Prefix of the stop reason this backend gives StopTask, so an orderly stop
/// is recognisable even where ECS leaves `stopCode` empty.
pub const STOP_REASON_PREFIX: &str = "jenkins-cloud: ";

/// Prefix of the synthetic agent name of an owned task without an agent tag
/// (a batched task whose TagResource never happened: crash, failure). The name
/// is never empty, so the core sees a cloud resource without a Jenkins node and
/// terminates it as an orphan after the grace period, instead of skipping it.
pub const UNTAGGED_PREFIX: &str = "untagged-";

/// The agent name of an owned task: its `jenkins-cloud:agent` tag, or
/// `untagged-<task id>` when it has none (see [`UNTAGGED_PREFIX`]).
pub fn agent_name_of(task: &Task) -> String {
    match tag(task, tags::AGENT).filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => {
            let arn = task.task_arn().unwrap_or_default();
            let id = arn.rsplit('/').next().unwrap_or(arn);
            format!("{UNTAGGED_PREFIX}{id}")
        }
    }
}

/// The value of tag `key` on `task`.
pub fn tag<'a>(task: &'a Task, key: &str) -> Option<&'a str> {
    task.tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Whether `task` carries `owner`'s tag.
pub fn is_owned(task: &Task, owner: &OwnerId) -> bool {
    tag(task, tags::OWNER) == Some(owner.as_str())
}

/// The core's view of one of our tasks; `None` for tasks without our owner tag.
pub fn instance_of(task: &Task, owner: &OwnerId) -> Option<CloudInstance> {
    if !is_owned(task, owner) {
        return None;
    }
    Some(CloudInstance {
        id: CloudId(task.task_arn()?.to_owned()),
        agent_name: agent_name_of(task),
        template: tag(task, tags::TEMPLATE).unwrap_or_default().to_owned(),
        state: state_of(task),
        launched_at: task
            .created_at()
            .and_then(|t| SystemTime::try_from(*t).ok()),
    })
}

/// Maps lastStatus / desiredStatus / stopCode / reasons to a lifecycle state.
pub fn state_of(task: &Task) -> CloudState {
    let last = task.last_status().unwrap_or("PROVISIONING");
    let desired = task.desired_status().unwrap_or("RUNNING");
    match last {
        "STOPPED" => stopped_state(task),
        "RUNNING" if desired == "STOPPED" => CloudState::Stopping,
        "RUNNING" => CloudState::Running,
        "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => CloudState::Stopping,
        // PROVISIONING, PENDING, ACTIVATING and anything new.
        _ if desired == "STOPPED" => CloudState::Stopping,
        _ => CloudState::Pending,
    }
}

fn stopped_state(task: &Task) -> CloudState {
    let reason = task.stopped_reason().unwrap_or_default();
    match task.stop_code() {
        Some(TaskStopCode::UserInitiated) | Some(TaskStopCode::ServiceSchedulerInitiated) => {
            return CloudState::Terminated
        }
        None if reason.starts_with(STOP_REASON_PREFIX) => return CloudState::Terminated,
        _ => {}
    }
    // A task that stopped by itself: failed start, essential container exit,
    // spot interruption. Keep AWS's own words.
    let mut parts = Vec::new();
    if let Some(code) = task.stop_code() {
        parts.push(code.as_str().to_owned());
    }
    if !reason.is_empty() {
        parts.push(reason.to_owned());
    }
    for c in task.containers() {
        let mut line = String::new();
        if let Some(r) = c.reason().filter(|r| !r.is_empty()) {
            line.push_str(r);
        }
        if let Some(code) = c.exit_code() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&format!("(exit code {code})"));
        }
        if !line.is_empty() {
            parts.push(format!("container {}: {line}", c.name().unwrap_or("?")));
        }
    }
    if parts.is_empty() {
        parts.push("task stopped without a reason".to_owned());
    }
    CloudState::Failed(parts.join("; "))
}

/// What retrying does about a task that stopped by itself before its agent ran
/// a build, from the reason [`state_of`] gave it (stop code, `stoppedReason`
/// and the containers' reasons). Matches the error names AWS documents, which
/// stay the same across platform versions (the text after them may be cut):
///
/// * capacity: `SpotInterruption` / `TerminationNotice` and "Your Spot Task
///   was interrupted." (Fargate Spot reclaimed, see "AWS Fargate capacity
///   providers", docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-capacity-providers.html,
///   and "Spot interruption errors", …/spot-interruption-errors.html), "Capacity
///   is unavailable at this time" (re:Post knowledge-center/ecs-fargate-runtask-capacity);
/// * throttled: a registry's pull rate limit (`toomanyrequests`, "You have
///   reached your pull rate limit", …/developerguide/task_cannot_pull_image.html);
/// * transient: `InternalError`, `ContainerRuntimeTimeoutError` (before
///   platform 1.4: `DockerTimeoutError`), `ContainerRuntimeError`,
///   `CannotStopContainerError`, `CannotInspectContainerError`, "no space left
///   on device", "Timeout waiting for network interface provisioning to
///   complete", `InfrastructureHealth`;
/// * permanent (until the template or its role, image or network changes):
///   `CannotPullContainerError`, `ResourceInitializationError` (roles,
///   secrets, log group, DNS), `CannotStartContainerError`,
///   `CannotCreateVolumeError`, `OutOfMemoryError`, `ResourceNotFoundException`,
///   and an essential container that exits ("Essential container in task
///   exited", `EssentialContainerExited`: the agent process ended before it
///   ran a build).
///
/// Error categories from "Amazon ECS stopped tasks error messages"
/// (docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html).
/// Anything else is transient.
pub fn classify_stop_reason(reason: &str) -> ErrorClass {
    const CAPACITY: &[&str] = &[
        "SpotInterruption",
        "TerminationNotice",
        "Your Spot Task was interrupted",
        "Capacity is unavailable",
    ];
    const THROTTLED: &[&str] = &["toomanyrequests", "pull rate limit"];
    const TRANSIENT: &[&str] = &[
        "no space left on device",
        "network interface provision",
        "InternalError",
        "ContainerRuntimeTimeoutError",
        "DockerTimeoutError",
        "ContainerRuntimeError",
        "CannotStopContainerError",
        "CannotInspectContainerError",
        "InfrastructureHealth",
    ];
    const PERMANENT: &[&str] = &[
        "CannotPullContainerError",
        "ResourceInitializationError",
        "CannotStartContainerError",
        "CannotCreateVolumeError",
        "OutOfMemoryError",
        "ResourceNotFoundException",
        "Essential container in task exited",
        "EssentialContainerExited",
    ];
    let lower = reason.to_ascii_lowercase();
    let has = |needles: &[&str]| {
        needles
            .iter()
            .any(|n| lower.contains(&n.to_ascii_lowercase()))
    };
    if has(CAPACITY) {
        ErrorClass::Capacity
    } else if has(THROTTLED) {
        ErrorClass::Throttled
    } else if has(TRANSIENT) {
        ErrorClass::Transient
    } else if has(PERMANENT) {
        ErrorClass::Permanent
    } else {
        ErrorClass::Transient
    }
}

/// The cluster part of a long-format task ARN (`…:task/CLUSTER/ID`).
pub fn cluster_of(arn: &str) -> Option<&str> {
    if !arn.starts_with("arn:") || !arn.contains(":ecs:") {
        return None;
    }
    let rest = arn.split_once(":task/")?.1;
    let (cluster, id) = rest.split_once('/')?;
    (!cluster.is_empty() && !id.is_empty() && !id.contains('/')).then_some(cluster)
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::types::{Container, Tag};

    use super::*;

    /// Texts as AWS documents them (see [`classify_stop_reason`] for the pages).
    #[test]
    fn stop_reasons_are_classified_from_awss_error_names() {
        let cases = [
            ("TaskFailedToStart; CannotPullContainerError: API error (404): repository 111122223333.dkr.ecr.us-east-1.amazonaws.com/repo/image not found", ErrorClass::Permanent),
            ("TaskFailedToStart; CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: httpReaderSeeker: failed open: unexpected status code", ErrorClass::Permanent),
            ("TaskFailedToStart; ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 3 time(s)", ErrorClass::Permanent),
            ("TaskFailedToStart; ResourceInitializationError: failed to initialize logging driver: ResourceNotFoundException: The specified log group does not exist.", ErrorClass::Permanent),
            ("EssentialContainerExited; Essential container in task exited; container agent: (exit code 1)", ErrorClass::Permanent),
            ("TaskFailedToStart; CannotStartContainerError: failed to get container status", ErrorClass::Permanent),
            ("OutOfMemoryError: Container killed due to memory usage", ErrorClass::Permanent),
            ("TaskFailedToStart; CannotPullContainerError: ERROR: toomanyrequests: Too Many Requests. You have reached your pull rate limit.", ErrorClass::Throttled),
            ("TaskFailedToStart; CannotPullContainerError: write /var/lib/docker/tmp/GetImageBlob111111111: no space left on device", ErrorClass::Transient),
            ("TaskFailedToStart; Timeout waiting for network interface provisioning to complete.", ErrorClass::Transient),
            ("TaskFailedToStart; InternalError: unexpected EC2 error while attempting to tag the network interface", ErrorClass::Transient),
            ("ContainerRuntimeTimeoutError: Could not transition to running; timed out after waiting 1m", ErrorClass::Transient),
            ("TerminationNotice; Your Spot Task was interrupted.", ErrorClass::Capacity),
            ("SpotInterruption; Your Spot Task was interrupted.", ErrorClass::Capacity),
            ("task stopped without a reason", ErrorClass::Transient),
        ];
        for (reason, class) in cases {
            assert_eq!(classify_stop_reason(reason), class, "{reason}");
        }
    }

    fn task(last: &str, desired: &str) -> aws_sdk_ecs::types::builders::TaskBuilder {
        Task::builder()
            .task_arn("arn:aws:ecs:us-east-1:123456789012:task/ci/abc")
            .last_status(last)
            .desired_status(desired)
            .tags(Tag::builder().key(tags::OWNER).value("me").build())
            .tags(Tag::builder().key(tags::AGENT).value("agent-1").build())
            .tags(Tag::builder().key(tags::TEMPLATE).value("linux").build())
    }

    #[test]
    fn statuses_map_to_states() {
        assert_eq!(
            state_of(&task("PROVISIONING", "RUNNING").build()),
            CloudState::Pending
        );
        assert_eq!(
            state_of(&task("PENDING", "RUNNING").build()),
            CloudState::Pending
        );
        assert_eq!(
            state_of(&task("RUNNING", "RUNNING").build()),
            CloudState::Running
        );
        assert_eq!(
            state_of(&task("RUNNING", "STOPPED").build()),
            CloudState::Stopping
        );
        assert_eq!(
            state_of(&task("DEPROVISIONING", "STOPPED").build()),
            CloudState::Stopping
        );
        let ours = task("STOPPED", "STOPPED")
            .stopped_reason("jenkins-cloud: idle")
            .build();
        assert_eq!(state_of(&ours), CloudState::Terminated);
        let user = task("STOPPED", "STOPPED")
            .stop_code(TaskStopCode::UserInitiated)
            .build();
        assert_eq!(state_of(&user), CloudState::Terminated);
    }

    #[test]
    fn a_task_that_dies_carries_aws_reasons() {
        let pull = task("STOPPED", "STOPPED")
            .stop_code(TaskStopCode::TaskFailedToStart)
            .stopped_reason(
                "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
            )
            .build();
        match state_of(&pull) {
            CloudState::Failed(r) => {
                assert!(
                    r.starts_with("TaskFailedToStart; CannotPullContainerError"),
                    "{r}"
                )
            }
            other => panic!("{other:?}"),
        }
        let exited = task("STOPPED", "STOPPED")
            .stop_code(TaskStopCode::EssentialContainerExited)
            .stopped_reason("Essential container in task exited")
            .containers(
                Container::builder()
                    .name("agent")
                    .exit_code(1)
                    .reason("OutOfMemoryError: Container killed")
                    .build(),
            )
            .build();
        assert_eq!(
            state_of(&exited),
            CloudState::Failed(
                "EssentialContainerExited; Essential container in task exited; container agent: OutOfMemoryError: Container killed (exit code 1)".into()
            )
        );
    }

    #[test]
    fn instances_need_our_owner_tag() {
        let owner = OwnerId::new("me").unwrap();
        let inst = instance_of(&task("RUNNING", "RUNNING").build(), &owner).unwrap();
        assert_eq!(
            (inst.agent_name.as_str(), inst.template.as_str()),
            ("agent-1", "linux")
        );
        assert!(instance_of(
            &task("RUNNING", "RUNNING").build(),
            &OwnerId::new("other").unwrap()
        )
        .is_none());
    }

    #[test]
    fn an_owned_task_without_agent_tag_gets_a_synthetic_name() {
        let owner = OwnerId::new("me").unwrap();
        let untagged = Task::builder()
            .task_arn("arn:aws:ecs:us-east-1:123456789012:task/ci/0f1e2d3c")
            .last_status("RUNNING")
            .desired_status("RUNNING")
            .tags(Tag::builder().key(tags::OWNER).value("me").build())
            .tags(Tag::builder().key(tags::TEMPLATE).value("linux").build())
            .build();
        let inst = instance_of(&untagged, &owner).unwrap();
        assert_eq!(inst.agent_name, "untagged-0f1e2d3c");
        assert!(!inst.agent_name.is_empty(), "core skips empty names");
        assert_eq!(inst.template, "linux");
    }

    #[test]
    fn clusters_come_from_long_arns() {
        assert_eq!(
            cluster_of("arn:aws:ecs:us-east-1:1:task/ci/0123"),
            Some("ci")
        );
        assert_eq!(cluster_of("arn:aws:ecs:us-east-1:1:task/0123"), None);
        assert_eq!(cluster_of("i-0123"), None);
    }
}
