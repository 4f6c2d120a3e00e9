//! In-memory backend and controller, for tests, docs and the simulator.
//!
//! * [`MemoryCloud`]: one cloud shared by any number of owners.
//! * [`MemoryBackend`]: a complete [`Backend`](crate::backend::Backend) over it,
//!   with latencies, failure injection, counters and an optional EC2-like warm
//!   pool of stopped instances ([`WarmPool`]).
//! * [`MemoryJenkins`]: a controller implementing
//!   [`JenkinsApi`](crate::jenkins::JenkinsApi): queue, nodes, builds.
//!
//! Everything runs on tokio time and seeded randomness, so a run under
//! `#[tokio::test(start_paused = true)]` is deterministic and instant. Linked
//! with [`MemoryBackend::connect_agents_to`], instances' agents connect to the
//! controller once running and builds run on them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use std::time::Duration;
//! use jenkins_cloud_core::backend::{Backend, OwnerId};
//! use jenkins_cloud_core::memory::{MemoryBackend, MemoryJenkins};
//! let owner = OwnerId::new("ci").unwrap();
//! let jenkins = MemoryJenkins::new(owner.clone());
//! let backend = MemoryBackend::new(owner);
//! backend.connect_agents_to(&jenkins);
//! let item = jenkins.submit("build", None, Duration::from_secs(60));
//! assert_eq!(jenkins.queue_len(), 1);
//! # let _ = item;
//! # }
//! ```

mod backend;
mod cloud;
mod controller;
#[cfg(feature = "testkit")]
mod harness;
mod jenkins;
mod spec;
mod warm_pool;

pub use backend::{
    BackendStats, Latency, MemoryBackend, DEFAULT_CONNECT_LATENCY, DEFAULT_START_LATENCY,
    DEFAULT_STOP_LATENCY, ID_PREFIX,
};
pub use cloud::{InstanceRecord, MemoryCloud, StateSeconds, DEFAULT_EPOCH_SECS, DEFAULT_RETENTION};
pub use controller::{BuildOutcome, BuildRecord, JenkinsStats, RefusedConnection};
#[cfg(feature = "testkit")]
pub use harness::MemoryHarness;
pub use jenkins::{MemoryJenkins, Submission};
pub use warm_pool::WarmPool;
