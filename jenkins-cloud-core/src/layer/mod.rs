//! Cross-cutting behaviour as wrappers around a [`Backend`] (tower / OpenDAL style).
//!
//! Backends only talk to their cloud; retrying, rate limiting, fault injection and
//! metrics are layers that wrap any backend and are themselves backends, so they
//! compose:
//!
//! ```
//! use std::sync::Arc;
//! use jenkins_cloud_core::layer::{
//!     MetricsBackend, RateLimitBackend, RateLimits, RetryBackend, RetryPolicy,
//! };
//! # fn wrap(inner: Arc<dyn jenkins_cloud_core::Backend>) -> Result<(), Vec<String>> {
//! let limited = Arc::new(RateLimitBackend::new(inner, RateLimits::ecs_fargate().scaled(0.5))?);
//! let retried = Arc::new(RetryBackend::new(limited, RetryPolicy::default()));
//! let metrics = Arc::new(MetricsBackend::new(retried));
//! # let _: Arc<dyn jenkins_cloud_core::Backend> = metrics;
//! # Ok::<(), Vec<String>>(())
//! # }
//! ```
//!
//! Every wrapper holds its inner backend as an `Arc<B>` with `B: Backend + ?Sized`,
//! so it wraps a concrete backend (keeping typed access through `inner()`) or an
//! `Arc<dyn Backend>` alike. Wrappers pass `kind`, `owner`, `capabilities` and
//! `validate_template` through unchanged and keep the [`Backend`] contract: one
//! outcome per requested item, in request order.
//!
//! Recommended order, outermost first: metrics (one observation per logical call),
//! retry, rate limit (each attempt takes a token), then the backend; a
//! [`FaultBackend`] goes directly around the backend in tests and game days.
//!
//! * [`RetryBackend`]: retries throttled and transient failures with exponential
//!   backoff and full jitter; launch retries reuse client tokens.
//! * [`RateLimitBackend`]: token buckets per operation.
//! * [`FaultBackend`]: seeded, deterministic fault injection and scripted faults.
//! * [`MetricsBackend`]: call, outcome and latency counters as a snapshot.

use std::fmt;

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use crate::backend::Backend;

mod fault;
mod fault_jenkins;
mod metrics;
mod rate_limit;
mod retry;

pub use fault::{FaultBackend, FaultConfig, FaultCounts, FaultKind, OpFaults, ScriptedFault};
pub use fault_jenkins::{
    FaultJenkins, JenkinsFaultConfig, JenkinsFaultCounts, JenkinsFaultKind, JenkinsOp,
    JenkinsOpFaults, ScriptedJenkinsFault,
};
pub use metrics::{MetricsBackend, MetricsSnapshot, OpMetrics};
pub use rate_limit::{BucketConfig, Cost, RateLimitBackend, RateLimits};
pub use retry::{RetryBackend, RetryPolicy};

/// A [`Backend`] operation, as the layers count and configure them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// [`Backend::launch`].
    Launch,
    /// [`Backend::describe`].
    Describe,
    /// [`Backend::terminate`].
    Terminate,
    /// [`Backend::list_owned`].
    ListOwned,
}

impl Op {
    /// Every operation, in a fixed order.
    pub const ALL: [Op; 4] = [Op::Launch, Op::Describe, Op::Terminate, Op::ListOwned];

    /// A short lowercase name, stable for metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Launch => "launch",
            Op::Describe => "describe",
            Op::Terminate => "terminate",
            Op::ListOwned => "list_owned",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
