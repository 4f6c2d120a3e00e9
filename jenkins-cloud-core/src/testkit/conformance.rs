//! The behaviour every [`Backend`] must pass, one async fn per behaviour.
//!
//! A backend crate implements [`ConformanceHarness`] (how to get a backend for
//! an owner in one shared cloud, a valid and an invalid template, how long to
//! wait for things to settle) and then either calls [`run_all`] or, better,
//! gets one test per behaviour from [`conformance_tests!`](crate::conformance_tests):
//!
//! ```
//! // In a backend crate's tests/conformance.rs (here with the memory backend):
//! mod conformance {
//!     // One #[tokio::test] per behaviour; the expression builds a fresh harness
//!     // per test and may use `.await`.
//!     jenkins_cloud_core::conformance_tests!(
//!         #[tokio::test(start_paused = true)]
//!         jenkins_cloud_core::memory::MemoryHarness::new()
//!     );
//! }
//! # fn main() {}
//! ```
//!
//! Every behaviour returns a [`Verdict`]: [`Checked::Passed`],
//! [`Checked::NotSupported`] when it needs an optional harness capability the
//! harness lacks (reported, never silently passed by [`run_all`]), or a
//! [`ConformanceFailure`] naming the behaviour and what was wrong.
//!
//! Behaviours use their own owner ids (`conf-<behaviour>-a`…) and fresh agent
//! names and client tokens, and compare listings before and after, so one
//! harness can serve a whole [`run_all`] over a cloud that is not empty.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::{AgentTransport, Backend, CloudId, JenkinsEndpoint, OwnerId};
use crate::template::AgentTemplate;

mod behaviours;
mod warm_pool;
pub use behaviours::*;
pub use warm_pool::warm_pool_members_are_no_agents;

/// What a backend crate provides to run the conformance suite against itself.
///
/// All backends returned by one harness work in **one** cloud (one moto account,
/// one [`MemoryCloud`](crate::memory::MemoryCloud)), so that two owners see each
/// other's resources exist and owner scoping can be tested.
#[async_trait]
pub trait ConformanceHarness: Send + Sync {
    /// A backend for `owner`. Called more than once for the same owner, it
    /// returns a backend over the same cloud (as a restarted program would).
    async fn backend(&self, owner: OwnerId) -> Arc<dyn Backend>;

    /// A template whose spec the backend accepts and can launch.
    fn template(&self) -> AgentTemplate;

    /// A template whose spec [`Backend::validate_template`] rejects.
    fn invalid_template(&self) -> AgentTemplate;

    /// A well-formed id of this cloud that names no resource.
    fn unknown_id(&self) -> CloudId;

    /// Waits (in the backend's notion of time) until launched resources run and
    /// terminated ones are gone.
    async fn settle(&self);

    /// Where agents connect (never contacted by the suite).
    fn jenkins(&self) -> JenkinsEndpoint {
        JenkinsEndpoint {
            url: "http://jenkins.invalid/".into(),
            transport: AgentTransport::WebSocket,
        }
    }

    /// Whether the harness's template keeps retired resources in a warm pool
    /// (stopped and restarted for later agents; the backend must then report
    /// `Capabilities::stop_resume`). Only then may a terminated resource settle
    /// `Stopped` instead of `Terminated`. Default `false`.
    fn warm_pool(&self) -> bool {
        false
    }

    /// Whether launching twice with the same client token yields one resource.
    fn idempotent_client_tokens(&self) -> bool {
        true
    }

    /// Optional: makes the next `count` agent launches of `owner` fail. Returns
    /// `false` if the harness cannot inject failures (the partial-failure
    /// behaviour is then reported as not supported).
    async fn inject_launch_failures(&self, owner: &OwnerId, count: usize) -> bool {
        let _ = (owner, count);
        false
    }
}

/// A behaviour that held, or could not be checked with this harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// The behaviour held.
    Passed,
    /// The behaviour needs a harness capability that is missing (which one).
    NotSupported(&'static str),
}

/// A behaviour that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceFailure {
    /// The behaviour (the function's name).
    pub behaviour: &'static str,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance `{}` failed: {}",
            self.behaviour, self.message
        )
    }
}

impl std::error::Error for ConformanceFailure {}

/// The result of one behaviour.
pub type Verdict = Result<Checked, ConformanceFailure>;

/// Panics with the failure, for test bodies. `NotSupported` is printed.
pub fn assert_verdict(verdict: Verdict) {
    match verdict {
        Ok(Checked::Passed) => {}
        Ok(Checked::NotSupported(what)) => eprintln!("not supported by this harness: {what}"),
        Err(failure) => panic!("{failure}"),
    }
}

/// What [`run_all`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Behaviours that held.
    pub passed: Vec<&'static str>,
    /// Behaviours not checked, with the missing capability.
    pub not_supported: Vec<(&'static str, &'static str)>,
    /// Behaviours that did not hold.
    pub failed: Vec<ConformanceFailure>,
}

impl Report {
    /// Whether nothing failed.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }

    /// Names of the failed behaviours.
    pub fn failed_names(&self) -> Vec<&'static str> {
        self.failed.iter().map(|f| f.behaviour).collect()
    }
}

/// Every behaviour, in the order [`run_all`] runs them.
pub const BEHAVIOURS: &[&str] = &[
    "launch_then_terminate",
    "terminate_is_idempotent",
    "terminate_unknown_id",
    "describe_reports_transitions",
    "list_owned_sees_only_its_own",
    "foreign_terminate_is_refused",
    "large_batch_gets_one_outcome_each",
    "outcomes_match_agents",
    "partial_failure_keeps_successes",
    "invalid_template_is_permanent",
    "client_token_is_idempotent",
    "instances_carry_tags",
    "new_backend_sees_existing",
    "warm_pool_members_are_no_agents",
];

/// Runs behaviour `name` (one of [`BEHAVIOURS`]); `None` for an unknown name.
pub async fn run(name: &str, h: &dyn ConformanceHarness) -> Option<Verdict> {
    Some(match name {
        "launch_then_terminate" => launch_then_terminate(h).await,
        "terminate_is_idempotent" => terminate_is_idempotent(h).await,
        "terminate_unknown_id" => terminate_unknown_id(h).await,
        "describe_reports_transitions" => describe_reports_transitions(h).await,
        "list_owned_sees_only_its_own" => list_owned_sees_only_its_own(h).await,
        "foreign_terminate_is_refused" => foreign_terminate_is_refused(h).await,
        "large_batch_gets_one_outcome_each" => large_batch_gets_one_outcome_each(h).await,
        "outcomes_match_agents" => outcomes_match_agents(h).await,
        "partial_failure_keeps_successes" => partial_failure_keeps_successes(h).await,
        "invalid_template_is_permanent" => invalid_template_is_permanent(h).await,
        "client_token_is_idempotent" => client_token_is_idempotent(h).await,
        "instances_carry_tags" => instances_carry_tags(h).await,
        "new_backend_sees_existing" => new_backend_sees_existing(h).await,
        "warm_pool_members_are_no_agents" => warm_pool_members_are_no_agents(h).await,
        _ => return None,
    })
}

/// Runs every behaviour against one harness and reports each by name.
pub async fn run_all(h: &dyn ConformanceHarness) -> Report {
    let mut report = Report::default();
    for &name in BEHAVIOURS {
        match run(name, h)
            .await
            .expect("BEHAVIOURS lists only known behaviours")
        {
            Ok(Checked::Passed) => report.passed.push(name),
            Ok(Checked::NotSupported(what)) => report.not_supported.push((name, what)),
            Err(f) => report.failed.push(f),
        }
    }
    report
}

/// One `#[tokio::test]` (or the given test attribute) per conformance behaviour.
///
/// `conformance_tests!(#[tokio::test(start_paused = true)] MyHarness::new())`
/// expands to one async test fn per behaviour (named like the behaviour), each
/// building its own harness from the expression (which may `.await`) and
/// panicking with the [`ConformanceFailure`] if the behaviour does not hold.
/// Invoke it inside a module of its own.
#[macro_export]
macro_rules! conformance_tests {
    (#[$attr:meta] $make:expr) => {
        $crate::__conformance_tests!(#[$attr] $make;
            launch_then_terminate, terminate_is_idempotent, terminate_unknown_id,
            describe_reports_transitions, list_owned_sees_only_its_own,
            foreign_terminate_is_refused, large_batch_gets_one_outcome_each,
            outcomes_match_agents, partial_failure_keeps_successes,
            invalid_template_is_permanent, client_token_is_idempotent,
            instances_carry_tags, new_backend_sees_existing,
            warm_pool_members_are_no_agents);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (#[$attr:meta] $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[$attr]
            async fn $name() {
                let harness = $make;
                $crate::testkit::conformance::assert_verdict(
                    $crate::testkit::conformance::$name(&harness).await,
                );
            }
        )*
    };
}
