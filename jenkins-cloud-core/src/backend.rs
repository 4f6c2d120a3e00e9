//! The provisioning trait every cloud backend implements.
//!
//! A [`Backend`] starts, observes and stops the cloud resources (Fargate tasks,
//! EC2 instances, processes…) that run Jenkins inbound agents. It knows nothing
//! about Jenkins queues or nodes: the reconcile loop decides *what* to run, the
//! backend only *runs* it.
//!
//! # Ownership
//! Every backend instance belongs to one [`OwnerId`]. Every resource it creates
//! carries that owner, the template name and the agent name as tags (or the
//! backend's equivalent), and every listing, description and termination is
//! restricted to resources carrying this owner's tag. A backend **never**
//! touches a resource without its owner tag: terminating a foreign id fails with
//! [`BackendError::Permanent`] and leaves the resource alone.
//!
//! # Batches and partial failure
//! Operations take batches (at most [`Capabilities::max_launch_batch`] and
//! friends; larger batches are split by the backend). A batch never fails as a
//! whole once some of it succeeded: [`Backend::launch`] and [`Backend::terminate`]
//! return one outcome per requested item, in request order, so what succeeded
//! is never lost.
//!
//! # Errors
//! Every error carries an [`ErrorClass`] saying what retrying does: capacity
//! (try a fallback), throttled (back off), transient (retry), permanent
//! (configuration: surface it, don't retry). Cross-cutting behaviour (retry,
//! rate limiting, metrics, fault injection) belongs in wrappers around a
//! backend, not inside it.
//!
//! # Conformance
//! `jenkins_cloud_core::testkit::conformance` (feature `testkit`) holds the
//! behaviour every implementation must pass.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ErrorClass;
use crate::secret::Secret;
use crate::template::AgentTemplate;

/// Identifies the jenkins-cloud installation that owns a resource.
///
/// 1–32 characters of `a-z`, `0-9` and `-`, starting with a letter or digit,
/// so it fits in tags, ECS `startedBy` (36 max), node names and descriptions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OwnerId(String);

/// An owner id that breaks the rules of [`OwnerId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid owner id `{value}`: {reason}")]
pub struct InvalidOwnerId {
    /// The rejected value.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl OwnerId {
    /// Checks and wraps an owner id.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidOwnerId> {
        let value = value.into();
        let reason = if value.is_empty() {
            Some("it is empty")
        } else if value.len() > 32 {
            Some("it is longer than 32 characters")
        } else if !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            Some("only a-z, 0-9 and - are allowed")
        } else if value.starts_with('-') {
            Some("it must start with a letter or digit")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidOwnerId { value, reason }),
            None => Ok(Self(value)),
        }
    }

    /// The owner id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OwnerId {
    type Error = InvalidOwnerId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<OwnerId> for String {
    fn from(value: OwnerId) -> Self {
        value.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tag keys every backend puts on the resources it creates.
pub mod tags {
    /// Tag holding the [`OwnerId`](super::OwnerId).
    pub const OWNER: &str = "jenkins-cloud:owner";
    /// Tag holding the template name.
    pub const TEMPLATE: &str = "jenkins-cloud:template";
    /// Tag holding the Jenkins agent (node) name.
    pub const AGENT: &str = "jenkins-cloud:agent";
}

/// The cloud's id of one resource: an ECS task ARN, an EC2 instance id, a PID…
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CloudId(pub String);

impl fmt::Display for CloudId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for CloudId {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// How the agent connects back to the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentTransport {
    /// WebSocket over the controller's HTTP(S) port (Jenkins 2.217+): works through
    /// an ordinary load balancer; no TCP agent port. The default.
    WebSocket,
    /// The TCP agent protocol, through `host:port` (`JENKINS_TUNNEL` / `-tunnel`).
    Tunnel(String),
}

/// Where agents find the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JenkinsEndpoint {
    /// The controller URL agents connect to (`JENKINS_URL`), ending in `/`.
    pub url: String,
    /// WebSocket (default) or TCP tunnel.
    pub transport: AgentTransport,
}

/// One agent to launch.
#[derive(Debug, Clone)]
pub struct AgentLaunch {
    /// The Jenkins node name the agent connects as (`JENKINS_AGENT_NAME`).
    pub agent_name: String,
    /// The node's inbound secret (`JENKINS_SECRET`). Never logged.
    pub secret: Secret,
    /// Idempotency token, unique per agent and stable across retries of the same
    /// launch (ECS `clientToken`, EC2 `ClientToken`; at most 64 ASCII characters).
    pub client_token: String,
}

/// A batch of agents of one template to launch.
#[derive(Debug, Clone, Copy)]
pub struct LaunchBatch<'a> {
    /// The template all agents of the batch come from.
    pub template: &'a AgentTemplate,
    /// Where the agents connect.
    pub jenkins: &'a JenkinsEndpoint,
    /// The agents, each with its own name, secret and token.
    pub agents: &'a [AgentLaunch],
}

/// The outcome of launching one agent of a batch.
#[derive(Debug, Clone)]
pub struct LaunchOutcome {
    /// The agent this outcome is for.
    pub agent_name: String,
    /// The cloud id of the started resource, or why it could not be started.
    pub result: Result<CloudId, BackendError>,
}

/// The outcome of terminating one resource of a batch.
#[derive(Debug, Clone)]
pub struct TerminateOutcome {
    /// The resource this outcome is for.
    pub id: CloudId,
    /// `Ok` once the resource is stopping or already gone.
    pub result: Result<(), BackendError>,
}

/// The cloud's view of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum CloudState {
    /// Accepted, not running yet (provisioning, pulling the image, booting).
    Pending,
    /// Running: the agent process can connect.
    Running,
    /// Being stopped or terminated.
    Stopping,
    /// Stopped but kept (an EC2 warm pool): can be started again, costs storage only.
    Stopped,
    /// Gone after an orderly stop (ours or an operator's).
    Terminated,
    /// Stopped involuntarily: image pull failure, essential container exit, spot
    /// interruption… The reason is the cloud's own words.
    Failed(String),
}

impl CloudState {
    /// Whether the resource is gone for good (or failed) and costs nothing more.
    pub fn is_gone(&self) -> bool {
        matches!(self, CloudState::Terminated | CloudState::Failed(_))
    }
}

/// One resource as the backend sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudInstance {
    /// The cloud's id.
    pub id: CloudId,
    /// The agent name from the resource's agent tag; empty for a warm-pool
    /// member that is stopped and assigned to no agent.
    pub agent_name: String,
    /// The template name from the resource's template tag.
    pub template: String,
    /// Current state.
    pub state: CloudState,
    /// When the cloud accepted the launch, if it says.
    pub launched_at: Option<SystemTime>,
}

/// What a backend can do; the reconcile loop sizes its batches from this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// Most agents one [`Backend::launch`] call handles efficiently (larger batches are split).
    pub max_launch_batch: usize,
    /// Most ids one [`Backend::describe`] call handles efficiently.
    pub max_describe_batch: usize,
    /// Most ids one [`Backend::terminate`] call handles efficiently.
    pub max_terminate_batch: usize,
    /// Whether spot / interruptible capacity is supported.
    pub spot: bool,
    /// Whether stopped resources can be kept and resumed (warm pool).
    pub stop_resume: bool,
}

impl Capabilities {
    /// Capabilities with the given batch limits and no spot or warm pool.
    pub fn new(
        max_launch_batch: usize,
        max_describe_batch: usize,
        max_terminate_batch: usize,
    ) -> Self {
        Self {
            max_launch_batch,
            max_describe_batch,
            max_terminate_batch,
            spot: false,
            stop_resume: false,
        }
    }

    /// Sets [`Capabilities::spot`].
    pub fn with_spot(mut self, spot: bool) -> Self {
        self.spot = spot;
        self
    }

    /// Sets [`Capabilities::stop_resume`].
    pub fn with_stop_resume(mut self, stop_resume: bool) -> Self {
        self.stop_resume = stop_resume;
        self
    }
}

/// A backend failure, classified by what retrying does.
///
/// Messages never contain secrets. Backend crates keep their own detailed error
/// types and convert into this one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// No capacity for this request: try the next fallback or later.
    #[error("no capacity: {message}")]
    Capacity {
        /// What the cloud said.
        message: String,
    },
    /// Rate limited: back off (at least `retry_after` when given), then retry.
    #[error("throttled: {message}")]
    Throttled {
        /// What the cloud said.
        message: String,
        /// How long the cloud asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// A passing fault: retry with backoff.
    #[error("transient failure: {message}")]
    Transient {
        /// What went wrong.
        message: String,
    },
    /// Configuration, permission or ownership problem: do not retry.
    #[error("permanent failure: {message}")]
    Permanent {
        /// What went wrong and, where known, what to fix.
        message: String,
    },
}

impl BackendError {
    /// A [`BackendError::Capacity`].
    pub fn capacity(message: impl Into<String>) -> Self {
        Self::Capacity {
            message: message.into(),
        }
    }

    /// A [`BackendError::Throttled`] without a retry-after hint.
    pub fn throttled(message: impl Into<String>) -> Self {
        Self::Throttled {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A [`BackendError::Transient`].
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
        }
    }

    /// A [`BackendError::Permanent`].
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
        }
    }

    /// An error of the given class.
    pub fn of_class(class: ErrorClass, message: impl Into<String>) -> Self {
        match class {
            ErrorClass::Capacity => Self::capacity(message),
            ErrorClass::Throttled => Self::throttled(message),
            ErrorClass::Transient => Self::transient(message),
            ErrorClass::Permanent => Self::permanent(message),
        }
    }

    /// What retrying does.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Capacity { .. } => ErrorClass::Capacity,
            Self::Throttled { .. } => ErrorClass::Throttled,
            Self::Transient { .. } => ErrorClass::Transient,
            Self::Permanent { .. } => ErrorClass::Permanent,
        }
    }

    /// The message without the class prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::Capacity { message }
            | Self::Throttled { message, .. }
            | Self::Transient { message }
            | Self::Permanent { message } => message,
        }
    }
}

/// Starts, observes and stops the cloud resources that run inbound agents.
///
/// Object safe: used as `Arc<dyn Backend>`. All methods take `&self` and may be
/// called concurrently. See the [module docs](self) for ownership, batching and
/// error rules.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// A short name for logs and metrics (`fargate`, `ec2`, `memory`…).
    fn kind(&self) -> &str;

    /// The owner whose resources this backend creates and sees.
    fn owner(&self) -> &OwnerId;

    /// Batch limits and optional features.
    fn capabilities(&self) -> Capabilities;

    /// Checks that `template`'s backend spec ([`AgentTemplate::spec`]) is valid for
    /// this backend without calling the cloud: every problem at once, each naming
    /// its field (`spec.cpu`, `spec.subnets[1]`…).
    fn validate_template(&self, template: &AgentTemplate) -> Result<(), Vec<String>>;

    /// Starts one resource per agent of `batch`.
    ///
    /// Returns exactly one [`LaunchOutcome`] per agent, in the order of
    /// `batch.agents`. Resources are tagged with the owner, template and agent
    /// name. Retrying with the same `client_token`s does not start duplicates
    /// where the cloud supports idempotency tokens. An invalid template yields
    /// `Permanent` for every agent before any cloud call.
    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome>;

    /// Current state of the given resources.
    ///
    /// Ids the cloud no longer knows, or that are not this owner's, are left out of
    /// the answer (clouds forget stopped resources after a while). Errors when the
    /// cloud could not be asked at all.
    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError>;

    /// Stops and releases the given resources (or stops them into a warm pool when
    /// the template asks for it and [`Capabilities::stop_resume`] is set).
    ///
    /// Idempotent: a resource already stopping or gone is `Ok`. One outcome per
    /// id, in order. An id without this owner's tag is refused with `Permanent`
    /// and left untouched. `reason` is recorded where the cloud keeps one (ECS
    /// stop reason).
    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome>;

    /// Every resource of this owner that the cloud still reports, found by the
    /// owner tag: pending, running, stopping and stopped ones, plus recently
    /// terminated or failed ones for as long as the cloud keeps them (so a launch
    /// that died carries the cloud's reason). Used after a restart to rebuild state
    /// and, on every pass, to find orphans. Never includes other owners' resources.
    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError>;

    /// What retrying does about a resource that failed by itself
    /// ([`CloudState::Failed`]) before its agent ran a build, from the reason
    /// this backend gave (the cloud's own words).
    ///
    /// The reconcile loop counts such a failure as a failed launch of the
    /// template and backs off by this class: `Permanent` for configuration
    /// problems that repeat until someone changes the template (an image that
    /// cannot be pulled, a missing role or secret, an essential container that
    /// exits), `Capacity` for interruptions and capacity shortages (spot), and
    /// `Transient` for faults that may pass. The default, for backends that
    /// cannot tell, is `Transient`. Wrappers forward it.
    fn classify_failure(&self, reason: &str) -> ErrorClass {
        let _ = reason;
        ErrorClass::Transient
    }
}
