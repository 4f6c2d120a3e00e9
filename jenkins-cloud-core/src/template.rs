//! Agent templates: what an agent looks like, how many may run, how long it lives.
//!
//! [`AgentTemplate`] is the resolved, validated form every other module uses.
//! [`TemplateConfig`] is the form users write (every field optional, with
//! inheritance); [`TemplateConfig::resolve`] turns one into the other.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::label::{LabelExpr, LabelSet};
use crate::retention::RetentionPolicy;

/// How Jenkins uses a node (`Node.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeMode {
    /// Use the node as much as possible: it also takes builds with no label.
    #[default]
    Normal,
    /// Only builds whose label expression matches the node run on it.
    Exclusive,
}

impl NodeMode {
    /// The Jenkins name (`NORMAL` / `EXCLUSIVE`).
    pub fn as_jenkins_str(self) -> &'static str {
        match self {
            NodeMode::Normal => "NORMAL",
            NodeMode::Exclusive => "EXCLUSIVE",
        }
    }
}

/// A resolved, validated agent template.
///
/// Construct it with [`TemplateConfig::resolve`] (which checks every field) or,
/// in code and tests, with [`AgentTemplate::new`] and the public fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTemplate {
    /// Unique name within the configuration: 1–40 of `a-z`, `0-9`, `-`.
    pub name: String,
    /// Labels the agents carry in Jenkins.
    pub labels: LabelSet,
    /// Executors per agent (≥ 1).
    pub executors: u32,
    /// The agent's remote root directory (Jenkins' `remoteFS`).
    pub remote_fs: String,
    /// NORMAL or EXCLUSIVE.
    pub mode: NodeMode,
    /// Extra environment for the agent process.
    pub environment: BTreeMap<String, String>,
    /// When agents of this template retire, and how many stay warm.
    pub retention: RetentionPolicy,
    /// Most agents of this template alive at once (`None`: no per-template cap).
    pub instance_cap: Option<u32>,
    /// Whether queued builds this template cannot take now (its cap, a label
    /// or the global cap, launch backoff, an unreadable cloud) go to the next
    /// template that can take them. Default true; false keeps them waiting for
    /// this template.
    pub spill: bool,
    /// Longest wait from launch until the cloud resource runs.
    pub launch_timeout: Duration,
    /// Longest wait from running until the agent connects to Jenkins.
    pub connect_timeout: Duration,
    /// Backend-specific settings (for example the Fargate task definition), parsed
    /// and validated by the backend ([`crate::backend::Backend::validate_template`]).
    pub spec: serde_json::Value,
}

impl AgentTemplate {
    /// A template with the given name and labels and the defaults of
    /// [`TemplateConfig::resolve`] for everything else.
    pub fn new(name: impl Into<String>, labels: LabelSet) -> Self {
        Self {
            name: name.into(),
            labels,
            executors: 1,
            remote_fs: DEFAULT_REMOTE_FS.to_owned(),
            mode: NodeMode::Normal,
            environment: BTreeMap::new(),
            retention: RetentionPolicy::default(),
            instance_cap: None,
            spill: true,
            launch_timeout: DEFAULT_LAUNCH_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            spec: serde_json::Value::Object(Default::default()),
        }
    }

    /// Whether a queue item with this label expression can run on agents of this
    /// template. No label (`None`) matches only NORMAL-mode templates, as in Jenkins.
    pub fn can_take(&self, label: Option<&LabelExpr>) -> bool {
        match label {
            None => self.mode == NodeMode::Normal,
            Some(expr) => expr.matches(&self.labels),
        }
    }
}

/// Default remote root directory (that of the `jenkins/inbound-agent` image).
pub const DEFAULT_REMOTE_FS: &str = "/home/jenkins/agent";
/// Default launch timeout: 15 minutes, enough for large images on Fargate.
pub const DEFAULT_LAUNCH_TIMEOUT: Duration = Duration::from_secs(900);
/// Default connect timeout: 5 minutes from running to connected.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

pub use crate::template_config::{Setting, TemplateConfig, TemplateError};
