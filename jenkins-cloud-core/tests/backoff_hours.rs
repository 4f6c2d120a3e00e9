//! Per-template launch backoff over simulated hours: a template whose launches
//! fail permanently stops hammering the cloud API (and Jenkins), the error is
//! reported once per episode, other templates keep launching, and launches
//! resume as soon as the error is gone.

use std::sync::Arc;
use std::time::Duration;

use jenkins_cloud_core::backend::{AgentTransport, Backend, JenkinsEndpoint, OwnerId};
use jenkins_cloud_core::jenkins::JenkinsApi;
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::layer::{FaultBackend, FaultConfig, Op, ScriptedFault};
use jenkins_cloud_core::memory::{BuildOutcome, MemoryBackend, MemoryJenkins};
use jenkins_cloud_core::reconcile::{BackoffPolicy, Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::NoDelay;
use jenkins_cloud_core::{AgentTemplate, ErrorClass};
use tokio::time::Instant;

const POLL: Duration = Duration::from_secs(10);

struct Setup {
    jenkins: MemoryJenkins,
    broken: Arc<FaultBackend<MemoryBackend>>,
    healthy: MemoryBackend,
    reconciler: Reconciler,
}

/// Template `broken` launches through a fault layer; `healthy` through its own
/// backend. One queued build each, every build 60 s.
fn setup(policy: BackoffPolicy) -> Setup {
    let owner = OwnerId::new("ci").unwrap();
    let jenkins = MemoryJenkins::new(owner.clone());
    let memory = MemoryBackend::new(owner.clone());
    memory.connect_agents_to(&jenkins);
    let broken =
        Arc::new(FaultBackend::new(Arc::new(memory.clone()), FaultConfig::none(), 1).unwrap());
    let healthy = MemoryBackend::on_cloud(memory.cloud().clone(), owner.clone());
    let endpoint = JenkinsEndpoint {
        url: "https://jenkins.example/".into(),
        transport: AgentTransport::WebSocket,
    };
    let mut config = ReconcileConfig::new(owner, endpoint);
    config.seed = Some(5);
    config.backoff = policy;
    let pools = vec![
        Pool {
            template: Arc::new(AgentTemplate::new("broken", LabelSet::parse("broken"))),
            backend: broken.clone() as Arc<dyn Backend>,
        },
        Pool {
            template: Arc::new(AgentTemplate::new("healthy", LabelSet::parse("healthy"))),
            backend: Arc::new(healthy.clone()),
        },
    ];
    let reconciler = Reconciler::new(config, Arc::new(jenkins.clone()), pools, Box::new(NoDelay));
    Setup {
        jenkins,
        broken,
        healthy,
        reconciler,
    }
}

/// The times (seconds from the start) at which a loop polling every `POLL`
/// retries under `policy` for `class`, up to `horizon`: the first pass at or
/// after each backoff deadline.
fn expected_attempts(policy: &BackoffPolicy, class: ErrorClass, horizon: Duration) -> Vec<u64> {
    let (base, max) = match class {
        ErrorClass::Permanent => (policy.permanent, policy.max_permanent),
        ErrorClass::Capacity => (policy.capacity, policy.max_retryable),
        _ => (policy.transient, policy.max_retryable),
    };
    let poll = POLL.as_secs();
    let mut attempts = vec![0];
    let mut failures = 0u32;
    loop {
        failures += 1;
        let delay = base.saturating_mul(1 << (failures - 1).min(10)).min(max);
        let until = attempts.last().unwrap() + delay.as_secs();
        let next = until.div_ceil(poll) * poll;
        if next >= horizon.as_secs() {
            return attempts;
        }
        attempts.push(next);
    }
}

/// Runs passes every `POLL` for `hours`; returns the times (seconds) of the
/// passes in which `broken` tried to launch.
async fn run(s: &mut Setup, horizon: Duration) -> Vec<u64> {
    let start = Instant::now();
    let mut attempts = Vec::new();
    while start.elapsed() < horizon {
        let report = s.reconciler.run_once().await.expect("pass");
        let tried = report
            .act
            .errors
            .iter()
            .any(|e| e.step == "launch" && e.template.as_deref() == Some("broken"))
            || report.act.launched.iter().any(|l| l.template == "broken");
        if tried {
            attempts.push(start.elapsed().as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
    attempts
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_costs_a_handful_of_launch_calls_over_six_hours() {
    let policy = BackoffPolicy::default();
    let mut s = setup(policy.clone());
    s.broken.script(
        Op::Launch,
        1_000_000,
        ScriptedFault::Error(ErrorClass::Permanent),
    );
    s.jenkins.submit(
        "deploy",
        Some("broken".parse().unwrap()),
        Duration::from_secs(60),
    );
    s.jenkins.submit(
        "test",
        Some("healthy".parse().unwrap()),
        Duration::from_secs(60),
    );
    let horizon = Duration::from_secs(6 * 3600);
    let attempts = run(&mut s, horizon).await;

    let expected = expected_attempts(&policy, ErrorClass::Permanent, horizon);
    assert_eq!(attempts, expected, "one attempt per backoff window");
    let passes = horizon.as_secs() / POLL.as_secs();
    assert!(
        (attempts.len() as u64) * 100 < passes,
        "{} launch attempts in {passes} passes",
        attempts.len()
    );
    let used = 1_000_000 - s.broken.scripted_remaining(Op::Launch);
    assert_eq!(used, attempts.len(), "launch calls reaching the cloud API");
    let stats = s.jenkins.stats();
    assert_eq!(
        stats.create_calls,
        attempts.len() as u64 + 1,
        "a node per attempt (plus the healthy agent): Jenkins is spared too"
    );
    assert_eq!(
        s.healthy.stats().launched,
        1,
        "the other template is not held back"
    );
    let history = s.jenkins.history();
    assert_eq!(history[1].outcome, BuildOutcome::Succeeded);
    assert_eq!(history[0].outcome, BuildOutcome::Queued, "still waiting");
    assert!(
        s.jenkins.nodes().await.unwrap().is_empty(),
        "no node is left behind by the failed attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn capacity_errors_back_off_and_launches_resume_when_capacity_returns() {
    let policy = BackoffPolicy::default();
    let mut s = setup(policy.clone());
    let failing_for = Duration::from_secs(2 * 3600);
    let expected = expected_attempts(&policy, ErrorClass::Capacity, failing_for);
    s.broken.script(
        Op::Launch,
        expected.len(),
        ScriptedFault::Error(ErrorClass::Capacity),
    );
    s.jenkins.submit(
        "deploy",
        Some("broken".parse().unwrap()),
        Duration::from_secs(60),
    );
    let attempts = run(&mut s, failing_for).await;
    assert_eq!(attempts, expected);
    assert!(
        attempts
            .windows(2)
            .all(|w| w[1] - w[0] <= policy.max_retryable.as_secs() + POLL.as_secs()),
        "capacity is retried at least every max_retryable: {attempts:?}"
    );
    // Capacity is back: the next attempt launches and the build runs.
    let resumed_at = Instant::now();
    let after = run(&mut s, policy.max_retryable + Duration::from_secs(120)).await;
    assert_eq!(
        after.len(),
        1,
        "one launch once the backoff expires: {after:?}"
    );
    assert!(Duration::from_secs(after[0]) <= policy.max_retryable + POLL);
    assert_eq!(
        s.jenkins.history()[0].outcome,
        BuildOutcome::Succeeded,
        "served {:?} after capacity returned",
        resumed_at.elapsed()
    );
}
