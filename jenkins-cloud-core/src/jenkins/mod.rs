//! The Jenkins side: what the reconcile loop needs from a controller.
//!
//! [`JenkinsApi`] is implemented by the HTTP client ([`client`]) and by the
//! in-memory controller ([`crate::memory::MemoryJenkins`]). Everything we know
//! about Jenkins comes through it: demand (queued builds and their labels), the
//! nodes this owner created, and node creation, secrets, draining and deletion.
//!
//! # Ownership
//! Nodes we create carry a marker in their description (see [`NodeMarker`]).
//! [`JenkinsApi::nodes`] returns only nodes whose marker names this client's
//! owner; [`JenkinsApi::drain_node`] and [`JenkinsApi::delete_node`] refuse
//! (with [`JenkinsError::NotOwned`]) nodes that are not ours.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::backend::OwnerId;
use crate::error::ErrorClass;
use crate::label::{LabelExpr, LabelSet};
use crate::secret::Secret;
use crate::template::NodeMode;

mod marker;
pub use marker::NodeMarker;

/// What a queued build needs, as far as we could tell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Requirement {
    /// No label: any NORMAL-mode node will do.
    AnyNode,
    /// A label expression.
    Label(LabelExpr),
    /// The template whose agents (or placeholder node) Jenkins named, when the
    /// exact label is unknown (non-admin demand source).
    Template(String),
}

/// A queued build that is waiting for an executor (buildable, not pending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    /// The queue item id.
    pub id: u64,
    /// The task's name (`job-name`, or `part of pipeline #12` for a Pipeline `node`).
    pub task: String,
    /// What it needs.
    pub requirement: Requirement,
    /// `inQueueSince`: milliseconds since the Unix epoch.
    pub in_queue_since_ms: u64,
}

/// A queue item we could not attribute to a label or template, with Jenkins' `why`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnattributedItem {
    /// The queue item id.
    pub id: u64,
    /// The task's name, when known.
    pub task: String,
    /// Why we could not attribute it (Jenkins' `why`, or our reason).
    pub why: String,
}

/// Demand read from the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demand {
    /// Items waiting for an executor, with what they need.
    pub items: Vec<QueueItem>,
    /// Items waiting that could not be attributed (reported, never guessed).
    pub unattributed: Vec<UnattributedItem>,
}

/// One node this owner created, as Jenkins reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JenkinsNode {
    /// Node name.
    pub name: String,
    /// The ownership marker parsed from the description.
    pub marker: NodeMarker,
    /// Number of executors.
    pub executors: u32,
    /// Jenkins' `offline`: true when not connected (also when never connected) or
    /// temporarily offline.
    pub offline: bool,
    /// Jenkins' `temporarilyOffline`: marked offline by someone (we drain this way).
    pub temporarily_offline: bool,
    /// Executors running a build.
    pub busy_executors: u32,
    /// URLs of the builds running on it.
    pub current_builds: Vec<String>,
}

impl JenkinsNode {
    /// Whether the agent is connected (a temporarily-offline node may still be
    /// connected and finishing builds; Jenkins does not say, so busy counts too).
    pub fn is_connected(&self) -> bool {
        !self.offline || self.busy_executors > 0
    }

    /// Whether at least one build runs on it.
    pub fn is_busy(&self) -> bool {
        self.busy_executors > 0
    }
}

/// What to create: an inbound (JNLP/WebSocket) agent node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name (see [`agent_name`] for the rules).
    pub name: String,
    /// The ownership marker, written into the description.
    pub marker: NodeMarker,
    /// Labels.
    pub labels: LabelSet,
    /// Executors (≥ 1).
    pub executors: u32,
    /// Remote root directory.
    pub remote_fs: String,
    /// NORMAL or EXCLUSIVE.
    pub mode: NodeMode,
    /// Whether the agent connects over WebSocket (`JNLPLauncher.webSocket`).
    pub web_socket: bool,
}

/// A failed Jenkins call, classified by what retrying does. Never contains the
/// API token or agent secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JenkinsError {
    /// 401: the user or API token is wrong.
    #[error("Jenkins rejected the credentials (401): check the user and API token")]
    Unauthorized,
    /// 403: the user lacks a permission (named where known).
    #[error("Jenkins refused the request (403): {permission} permission needed")]
    Forbidden {
        /// The permission needed, e.g. `Agent/Create`, or what Jenkins said.
        permission: String,
    },
    /// 404.
    #[error("not found in Jenkins: {what}")]
    NotFound {
        /// What was not found.
        what: String,
    },
    /// The node already exists (400 `Agent called ‘x’ already exists`).
    #[error("conflict: {message}")]
    Conflict {
        /// Jenkins' message.
        message: String,
    },
    /// Jenkins refused the request as invalid (400 with `X-Error`).
    #[error("Jenkins refused the request: {message}")]
    BadRequest {
        /// Jenkins' message.
        message: String,
    },
    /// A node exists but is not ours: refused without touching it.
    #[error("node `{name}` is not owned by this jenkins-cloud owner; left untouched")]
    NotOwned {
        /// The node name.
        name: String,
    },
    /// The response could not be understood (HTML error page, invalid JSON…).
    #[error("unexpected response from Jenkins: {message}")]
    BadResponse {
        /// What was wrong with it.
        message: String,
    },
    /// 5xx.
    #[error("Jenkins server error {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Short description.
        message: String,
    },
    /// No answer in time.
    #[error("Jenkins did not answer in time: {message}")]
    Timeout {
        /// What timed out.
        message: String,
    },
    /// Connection-level failure.
    #[error("could not reach Jenkins: {message}")]
    Transport {
        /// What failed.
        message: String,
    },
}

impl JenkinsError {
    /// What retrying does.
    pub fn class(&self) -> ErrorClass {
        match self {
            JenkinsError::Server { status: 429, .. } => ErrorClass::Throttled,
            JenkinsError::Server { .. }
            | JenkinsError::Timeout { .. }
            | JenkinsError::Transport { .. }
            | JenkinsError::BadResponse { .. } => ErrorClass::Transient,
            JenkinsError::Unauthorized
            | JenkinsError::Forbidden { .. }
            | JenkinsError::NotFound { .. }
            | JenkinsError::Conflict { .. }
            | JenkinsError::BadRequest { .. }
            | JenkinsError::NotOwned { .. } => ErrorClass::Permanent,
        }
    }
}

/// The controller operations the reconcile loop uses.
///
/// Object safe: used as `Arc<dyn JenkinsApi>`. Implementations are bound to one
/// [`OwnerId`].
#[async_trait]
pub trait JenkinsApi: Send + Sync + fmt::Debug {
    /// The owner whose nodes this client creates and sees.
    fn owner(&self) -> &OwnerId;

    /// Queued builds waiting for an executor, with what each needs.
    async fn demand(&self) -> Result<Demand, JenkinsError>;

    /// The nodes this owner created (placeholders and foreign nodes excluded).
    async fn nodes(&self) -> Result<Vec<JenkinsNode>, JenkinsError>;

    /// Creates an inbound agent node. [`JenkinsError::Conflict`] if the name exists.
    async fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError>;

    /// The node's inbound secret.
    async fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError>;

    /// Marks the node temporarily offline with `reason`: running builds finish,
    /// no new ones start. Refuses nodes that are not ours.
    async fn drain_node(&self, name: &str, reason: &str) -> Result<(), JenkinsError>;

    /// Deletes the node. `Ok` if it is already gone. Refuses nodes that are not ours.
    async fn delete_node(&self, name: &str) -> Result<(), JenkinsError>;

    /// Shows a problem of `template` where people look while their builds wait,
    /// or clears it (`problem: None`) once the template is healthy again.
    ///
    /// The HTTP client sets it as the offline cause of the template's status
    /// node, `<owner>-<template>-placeholder` (in `why` mode the placeholder;
    /// in script-console mode a node created while the problem lasts and
    /// deleted when it is cleared). The loop calls it only when a template's
    /// problem changes, and again after a failed call. The default does
    /// nothing. Wrappers forward it.
    async fn report_template_problem(
        &self,
        template: &str,
        problem: Option<&str>,
    ) -> Result<(), JenkinsError> {
        let _ = (template, problem);
        Ok(())
    }
}

pub mod agent_name;
pub mod client;
