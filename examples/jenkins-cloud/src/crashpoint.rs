//! **Test-only hook**: stop the program dead at a step boundary so a harness can
//! kill it with SIGKILL there.
//!
//! When the environment variable [`CRASH_POINT_VAR`] (`JENKINS_CLOUD_CRASH_POINT`)
//! names a [`CrashPoint`], [`crate::commands::setup`] wraps the Jenkins client and
//! every backend so that, the first time the program reaches that boundary, it
//! prints [`MARKER`] followed by the boundary's name on stderr and then waits
//! forever (the pass never finishes). The crash harness
//! (`examples/jenkins-cloud/tests/crash_sigkill.rs`) waits for the marker and
//! sends SIGKILL. Without the variable nothing is wrapped; an unknown value is
//! refused at start with the list of valid names.
//!
//! The loop creates a node (and fetches its secret) *before* the cloud launch and
//! stops the cloud resource *before* deleting the node, so the boundaries are:
//!
//! | name | the process stops |
//! |---|---|
//! | `after-node-before-launch` | after node creation and secret fetch, before the launch call (RunTask) |
//! | `after-launch-before-record` | after the launch call returned, before the loop recorded it |
//! | `after-drain-before-terminate` | after a node was drained, before its resource is stopped |
//! | `after-terminate-before-delete` | after the resource was stopped (StopTask), before node deletion |
//!
//! "After RunTask, before the node exists" cannot happen: the node always exists first.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use jenkins_cloud_core::backend::{
    Backend, Capabilities, CloudId, CloudInstance, LaunchBatch, LaunchOutcome, OwnerId,
    TerminateOutcome,
};
use jenkins_cloud_core::jenkins::{Demand, JenkinsApi, JenkinsError, JenkinsNode, NodeSpec};
use jenkins_cloud_core::{AgentTemplate, BackendError, ErrorClass, Secret};

use crate::commands::CommandError;

/// Environment variable naming the boundary to stop at (test only).
pub const CRASH_POINT_VAR: &str = "JENKINS_CLOUD_CRASH_POINT";

/// Printed on stderr, followed by a space and the boundary name, when the
/// program stops at a crash point.
pub const MARKER: &str = "JENKINS_CLOUD_CRASH_POINT_REACHED";

/// A step boundary the program can be stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// Node created and secret fetched; the launch call not made.
    AfterNodeBeforeLaunch,
    /// The launch call returned; the loop has not recorded its outcome.
    AfterLaunchBeforeRecord,
    /// A node was drained; its resource is not stopped yet.
    AfterDrainBeforeTerminate,
    /// The resource was stopped; its node is not deleted yet.
    AfterTerminateBeforeDelete,
}

impl CrashPoint {
    /// Every boundary, in lifecycle order.
    pub const ALL: [CrashPoint; 4] = [
        CrashPoint::AfterNodeBeforeLaunch,
        CrashPoint::AfterLaunchBeforeRecord,
        CrashPoint::AfterDrainBeforeTerminate,
        CrashPoint::AfterTerminateBeforeDelete,
    ];

    /// The name used in [`CRASH_POINT_VAR`] and after [`MARKER`].
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterNodeBeforeLaunch => "after-node-before-launch",
            CrashPoint::AfterLaunchBeforeRecord => "after-launch-before-record",
            CrashPoint::AfterDrainBeforeTerminate => "after-drain-before-terminate",
            CrashPoint::AfterTerminateBeforeDelete => "after-terminate-before-delete",
        }
    }

    /// Reads [`CRASH_POINT_VAR`]: `None` when unset or empty.
    pub fn from_env() -> Result<Option<CrashPoint>, CommandError> {
        match std::env::var(CRASH_POINT_VAR) {
            Ok(v) if !v.trim().is_empty() => v.parse().map(Some),
            _ => Ok(None),
        }
    }
}

impl fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CrashPoint {
    type Err = CommandError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        CrashPoint::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = CrashPoint::ALL.iter().map(|p| p.name()).collect();
                CommandError(format!(
                    "{CRASH_POINT_VAR}: unknown crash point `{s}` (one of: {})",
                    names.join(", ")
                ))
            })
    }
}

/// Prints the marker and never returns.
async fn halt(point: CrashPoint) -> ! {
    eprintln!("{MARKER} {point}");
    std::future::pending::<()>().await;
    unreachable!("a pending future never completes")
}

/// Wraps `jenkins` and `backends` when [`CRASH_POINT_VAR`] is set; returns them
/// unchanged otherwise.
#[allow(clippy::type_complexity)]
pub fn wrap_from_env(
    jenkins: Arc<dyn JenkinsApi>,
    backends: Vec<Arc<dyn Backend>>,
) -> Result<(Arc<dyn JenkinsApi>, Vec<Arc<dyn Backend>>), CommandError> {
    let Some(point) = CrashPoint::from_env()? else {
        return Ok((jenkins, backends));
    };
    tracing::warn!(crash_point = %point, "test hook active: the program will stop at this boundary");
    let jenkins: Arc<dyn JenkinsApi> = Arc::new(CrashJenkins {
        inner: jenkins,
        point,
    });
    let backends = backends
        .into_iter()
        .map(|inner| Arc::new(CrashBackend { inner, point }) as Arc<dyn Backend>)
        .collect();
    Ok((jenkins, backends))
}

/// A backend that stops the program at a launch or terminate boundary.
#[derive(Debug)]
pub struct CrashBackend {
    inner: Arc<dyn Backend>,
    point: CrashPoint,
}

impl CrashBackend {
    /// Wraps `inner`, stopping at `point`.
    pub fn new(inner: Arc<dyn Backend>, point: CrashPoint) -> Self {
        Self { inner, point }
    }
}

#[async_trait]
impl Backend for CrashBackend {
    fn kind(&self) -> &str {
        self.inner.kind()
    }

    fn owner(&self) -> &OwnerId {
        self.inner.owner()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn validate_template(&self, template: &AgentTemplate) -> Result<(), Vec<String>> {
        self.inner.validate_template(template)
    }
    fn classify_failure(&self, reason: &str) -> ErrorClass {
        self.inner.classify_failure(reason)
    }

    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        if self.point == CrashPoint::AfterNodeBeforeLaunch && !batch.agents.is_empty() {
            halt(self.point).await;
        }
        let outcomes = self.inner.launch(batch).await;
        if self.point == CrashPoint::AfterLaunchBeforeRecord
            && outcomes.iter().any(|o| o.result.is_ok())
        {
            halt(self.point).await;
        }
        outcomes
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        self.inner.describe(ids).await
    }

    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        let outcomes = self.inner.terminate(ids, reason).await;
        if self.point == CrashPoint::AfterTerminateBeforeDelete
            && outcomes.iter().any(|o| o.result.is_ok())
        {
            halt(self.point).await;
        }
        outcomes
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        self.inner.list_owned().await
    }
}

/// A Jenkins client that stops the program after a drain.
#[derive(Debug)]
pub struct CrashJenkins {
    inner: Arc<dyn JenkinsApi>,
    point: CrashPoint,
}

impl CrashJenkins {
    /// Wraps `inner`, stopping at `point`.
    pub fn new(inner: Arc<dyn JenkinsApi>, point: CrashPoint) -> Self {
        Self { inner, point }
    }
}

#[async_trait]
impl JenkinsApi for CrashJenkins {
    fn owner(&self) -> &OwnerId {
        self.inner.owner()
    }

    async fn demand(&self) -> Result<Demand, JenkinsError> {
        self.inner.demand().await
    }

    async fn nodes(&self) -> Result<Vec<JenkinsNode>, JenkinsError> {
        self.inner.nodes().await
    }

    async fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError> {
        self.inner.create_node(spec).await
    }

    async fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError> {
        self.inner.agent_secret(name).await
    }

    async fn drain_node(&self, name: &str, reason: &str) -> Result<(), JenkinsError> {
        let result = self.inner.drain_node(name, reason).await;
        if self.point == CrashPoint::AfterDrainBeforeTerminate && result.is_ok() {
            halt(self.point).await;
        }
        result
    }

    async fn delete_node(&self, name: &str) -> Result<(), JenkinsError> {
        self.inner.delete_node(name).await
    }
    async fn report_template_problem(
        &self,
        template: &str,
        problem: Option<&str>,
    ) -> Result<(), JenkinsError> {
        self.inner.report_template_problem(template, problem).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in CrashPoint::ALL {
            assert_eq!(p.name().parse::<CrashPoint>().unwrap(), p);
        }
        let err = "after-everything".parse::<CrashPoint>().unwrap_err();
        assert!(err.0.contains(CRASH_POINT_VAR), "{err}");
        assert!(err.0.contains("after-everything"), "{err}");
        assert!(err.0.contains("after-drain-before-terminate"), "{err}");
    }
}
