//! jenkins-cloud core: elastic Jenkins agents from outside the controller.
//!
//! * [`label`]: Jenkins label expressions, parsed and matched as Jenkins does.
//! * [`template`]: agent templates, inheritance and validation.
//! * [`backend`]: the trait cloud backends implement.
//! * [`jenkins`]: the trait for the controller side, and its HTTP client.
//! * [`lifecycle`]: agent states and transitions.
//! * [`strategy`], [`retention`]: how many agents to start, when they retire.
//! * [`reconcile`]: the observe → plan → act loop.
//! * [`memory`]: in-memory backend and controller, for tests and the simulator.
//! * [`files`]: bounded reading of the files an operator names.
//! * [`iam`]: the table type backends declare their AWS operations and IAM actions in.
//! * `testkit` (feature): conformance suite, fake controller, moto fixture.
#![deny(missing_docs)]

pub mod backend;
pub mod error;
pub mod files;
pub mod iam;
pub mod jenkins;
pub mod jenkins_standard;
pub mod label;
pub mod layer;
pub mod lifecycle;
pub mod memory;
pub mod reconcile;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod strategy;
pub mod template;
pub mod template_config;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use backend::{Backend, BackendError};
pub use error::ErrorClass;
pub use jenkins::{JenkinsApi, JenkinsError};
pub use secret::Secret;
pub use template::AgentTemplate;
