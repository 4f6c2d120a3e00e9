//! jenkins-cloud backend for AWS ECS Fargate: each Jenkins inbound agent runs as
//! one Fargate task (awsvpc networking) that connects back to the controller,
//! over WebSocket by default.
//!
//! * [`FargateBackend`] implements [`jenkins_cloud_core::Backend`].
//! * [`FargateSpec`] is the Fargate part of a template (`AgentTemplate::spec`),
//!   checked by `Backend::validate_template` before any call.
//! * Task definitions: one family per template, reused while the template's
//!   content hash (tag `jenkins-cloud:spec-hash`) matches, stale revisions
//!   deregistered ([`taskdef`]).
//! * Launches: one RunTask per agent by default; with `spec.launch_batching`
//!   one RunTask per 10 agents, each task then bound to its agent by a
//!   `jenkins-cloud:agent` tag (TagResource). Owned tasks without an agent tag
//!   are listed as `untagged-<task id>` ([`UNTAGGED_PREFIX`]) so the core
//!   collects them as orphans.
//! * Every ECS call goes through [`api::EcsApi`], paced by token buckets and
//!   retried with jittered backoff on throttling; every failure is classified
//!   ([`Error::class`]).
//!
//! See `docs/fargate.md` for setup, IAM, networking and troubleshooting.
#![deny(missing_docs)]

pub mod api;
mod backend;
mod config;
mod error;
pub mod iam;
pub mod interceptors;
mod launch;
pub mod rate;
mod spec;
mod state;
pub mod taskdef;

pub use backend::{FargateBackend, DESCRIBE_BATCH};
pub use config::FargateConfig;
pub use error::Error;
pub use spec::{
    allowed_memory, AgentSecretDelivery, AwsLogs, CapacityProvider, EfsVolume, FargateSpec,
    DEFAULT_CONTAINER, DEFAULT_IMAGE, RESERVED_ENV,
};
pub use state::{state_of, STOP_REASON_PREFIX, UNTAGGED_PREFIX};
