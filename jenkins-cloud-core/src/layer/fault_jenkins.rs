//! Deterministic fault injection around any Jenkins controller client.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::backend::OwnerId;
use crate::jenkins::{Demand, JenkinsApi, JenkinsError, JenkinsNode, NodeSpec};
use crate::secret::Secret;

/// A [`JenkinsApi`] operation, as [`FaultJenkins`] counts and scripts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JenkinsOp {
    /// [`JenkinsApi::demand`].
    Demand,
    /// [`JenkinsApi::nodes`].
    Nodes,
    /// [`JenkinsApi::create_node`].
    CreateNode,
    /// [`JenkinsApi::agent_secret`].
    AgentSecret,
    /// [`JenkinsApi::drain_node`].
    DrainNode,
    /// [`JenkinsApi::delete_node`].
    DeleteNode,
}

impl JenkinsOp {
    /// Every operation, in a fixed order.
    pub const ALL: [JenkinsOp; 6] = [
        JenkinsOp::Demand,
        JenkinsOp::Nodes,
        JenkinsOp::CreateNode,
        JenkinsOp::AgentSecret,
        JenkinsOp::DrainNode,
        JenkinsOp::DeleteNode,
    ];

    /// A short lowercase name, stable for reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JenkinsOp::Demand => "demand",
            JenkinsOp::Nodes => "nodes",
            JenkinsOp::CreateNode => "create_node",
            JenkinsOp::AgentSecret => "agent_secret",
            JenkinsOp::DrainNode => "drain_node",
            JenkinsOp::DeleteNode => "delete_node",
        }
    }

    /// Whether the operation changes the controller (create, drain, delete).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            JenkinsOp::CreateNode | JenkinsOp::DrainNode | JenkinsOp::DeleteNode
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for JenkinsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of injected Jenkins fault, as counted by [`JenkinsFaultCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JenkinsFaultKind {
    /// 429 Too Many Requests ([`JenkinsError::Server`] with status 429).
    Throttled,
    /// A 5xx ([`JenkinsError::Server`] with status 500, 502 or 503).
    ServerError,
    /// An HTML error page where JSON was expected ([`JenkinsError::BadResponse`]).
    Html,
    /// The request reached Jenkins but the answer was lost
    /// ([`JenkinsError::Timeout`] after a delay; a write may have happened).
    Timeout,
    /// The call was delayed, then passed through.
    Slow,
    /// Jenkins was down: the call failed with [`JenkinsError::Transport`]
    /// without reaching it.
    Down,
}

impl JenkinsFaultKind {
    const ALL: [JenkinsFaultKind; 6] = [
        JenkinsFaultKind::Throttled,
        JenkinsFaultKind::ServerError,
        JenkinsFaultKind::Html,
        JenkinsFaultKind::Timeout,
        JenkinsFaultKind::Slow,
        JenkinsFaultKind::Down,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Fault probabilities for a group of operations. Per call, at most one of
/// `throttled`, `server_error`, `html` and `timeout` happens (their sum must not
/// exceed 1); `slow` is drawn independently.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JenkinsOpFaults {
    /// Probability of a 429, without reaching Jenkins.
    pub throttled: f64,
    /// Probability of a 5xx, without reaching Jenkins.
    pub server_error: f64,
    /// Probability of an HTML page instead of JSON, without reaching Jenkins
    /// (a proxy's error page, a login redirect).
    pub html: f64,
    /// Probability that the call reaches Jenkins but its answer is lost: after
    /// `timeout_delay` it fails with [`JenkinsError::Timeout`].
    pub timeout: f64,
    /// How long a timed-out call takes.
    pub timeout_delay: Duration,
    /// Probability that the call is delayed by `slow_delay` first.
    pub slow: f64,
    /// The added delay of a slow call.
    pub slow_delay: Duration,
}

impl Default for JenkinsOpFaults {
    /// No faults; 30 s timeouts (the client's request timeout), 2 s slow calls.
    fn default() -> Self {
        Self {
            throttled: 0.0,
            server_error: 0.0,
            html: 0.0,
            timeout: 0.0,
            timeout_delay: Duration::from_secs(30),
            slow: 0.0,
            slow_delay: Duration::from_secs(2),
        }
    }
}

impl JenkinsOpFaults {
    fn check(&self, group: &str, problems: &mut Vec<String>) {
        let fields = [
            ("throttled", self.throttled),
            ("server_error", self.server_error),
            ("html", self.html),
            ("timeout", self.timeout),
            ("slow", self.slow),
        ];
        for (name, p) in fields {
            if !(0.0..=1.0).contains(&p) {
                problems.push(format!(
                    "{group}.{name} must be a probability in [0, 1], got {p}"
                ));
            }
        }
        let sum = self.throttled + self.server_error + self.html + self.timeout;
        if sum > 1.0 + 1e-9 {
            problems.push(format!(
                "{group}: throttled + server_error + html + timeout must not exceed 1, got {sum}"
            ));
        }
    }
}

/// Fault probabilities of a [`FaultJenkins`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JenkinsFaultConfig {
    /// For `demand`, `nodes` and `agent_secret`.
    pub reads: JenkinsOpFaults,
    /// For `create_node`, `drain_node` and `delete_node`.
    pub writes: JenkinsOpFaults,
    /// Probability, per call while Jenkins is up, that an outage starts with
    /// this call: it and every call for `outage_duration` fail with
    /// [`JenkinsError::Transport`].
    pub outage: f64,
    /// How long a random outage lasts.
    pub outage_duration: Duration,
}

impl JenkinsFaultConfig {
    /// No random faults (scripted faults and [`FaultJenkins::down_for`] only).
    pub fn none() -> Self {
        Self::default()
    }

    /// The same probabilities for reads and writes, no outages.
    pub fn uniform(faults: JenkinsOpFaults) -> Self {
        Self {
            reads: faults,
            writes: faults,
            ..Self::default()
        }
    }

    /// The probabilities of `op`.
    pub fn get(&self, op: JenkinsOp) -> &JenkinsOpFaults {
        if op.is_write() {
            &self.writes
        } else {
            &self.reads
        }
    }

    /// Every problem at once, each naming its field (`reads.html`…).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        self.reads.check("reads", &mut problems);
        self.writes.check("writes", &mut problems);
        if !(0.0..=1.0).contains(&self.outage) {
            problems.push(format!(
                "outage must be a probability in [0, 1], got {}",
                self.outage
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A fault to inject on the next calls of an operation, whatever the dice say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptedJenkinsFault {
    /// Answer with this HTTP status (429 or 5xx) without reaching Jenkins.
    Status(u16),
    /// Answer with an HTML page instead of JSON, without reaching Jenkins.
    Html,
    /// Let the call reach Jenkins, wait this long, then fail with a timeout.
    Timeout(Duration),
    /// Fail as if Jenkins could not be reached.
    Down,
}

/// Injected faults so far, by operation and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JenkinsFaultCounts {
    /// Counts per operation and kind; kinds never injected are left out.
    pub by_op: BTreeMap<JenkinsOp, BTreeMap<JenkinsFaultKind, u64>>,
}

impl JenkinsFaultCounts {
    /// Faults of `kind` injected into `op`.
    pub fn get(&self, op: JenkinsOp, kind: JenkinsFaultKind) -> u64 {
        self.by_op
            .get(&op)
            .and_then(|m| m.get(&kind))
            .copied()
            .unwrap_or(0)
    }

    /// Faults of `kind` injected into any operation.
    pub fn total(&self, kind: JenkinsFaultKind) -> u64 {
        self.by_op.values().filter_map(|m| m.get(&kind)).sum()
    }

    /// Faults of every kind but `Slow` (calls that failed).
    pub fn failures(&self) -> u64 {
        self.by_op
            .values()
            .flat_map(|m| m.iter())
            .filter(|(k, _)| **k != JenkinsFaultKind::Slow)
            .map(|(_, n)| n)
            .sum()
    }
}

/// What happens to one call.
#[derive(Debug, Default)]
struct Plan {
    fault: Option<ScriptedJenkinsFault>,
    slow: Option<Duration>,
}

#[derive(Debug)]
struct State {
    config: JenkinsFaultConfig,
    rng: fastrand::Rng,
    scripts: [VecDeque<ScriptedJenkinsFault>; 6],
    down_until: Option<Instant>,
    counts: [[u64; 6]; 6],
}

/// Injects faults into calls to any [`JenkinsApi`]: random ones per
/// [`JenkinsFaultConfig`] (deterministic for a seed and a given sequence of
/// calls), scripted ones ([`FaultJenkins::script`]) that take precedence, and
/// outages ([`FaultJenkins::down_for`], or random ones) during which every call
/// fails as unreachable.
///
/// Errors are those the HTTP client returns for the same situations, so the
/// caller's classification (throttled, transient) is exercised: 429 and 5xx as
/// [`JenkinsError::Server`], an HTML page as [`JenkinsError::BadResponse`], a
/// lost answer as [`JenkinsError::Timeout`], an outage as
/// [`JenkinsError::Transport`]. A timeout calls Jenkins, waits and drops the
/// answer, like a response lost on the way back: a node may have been created
/// or deleted although the caller sees an error. All delays use tokio time, so
/// a caller can be cancelled in the middle of one (a crash between steps).
///
/// Injected errors carry fixed texts and the operation name only: never a node
/// name, token or secret.
#[derive(Debug)]
pub struct FaultJenkins<J: JenkinsApi + ?Sized> {
    inner: Arc<J>,
    state: Mutex<State>,
}

impl<J: JenkinsApi + ?Sized> FaultJenkins<J> {
    /// Wraps `inner` with random faults drawn from a generator seeded with
    /// `seed`. Errors name every invalid field of `config`.
    pub fn new(inner: Arc<J>, config: JenkinsFaultConfig, seed: u64) -> Result<Self, Vec<String>> {
        config.validate()?;
        Ok(Self {
            inner,
            state: Mutex::new(State {
                config,
                rng: fastrand::Rng::with_seed(seed),
                scripts: Default::default(),
                down_until: None,
                counts: [[0; 6]; 6],
            }),
        })
    }

    /// The wrapped controller.
    pub fn inner(&self) -> &Arc<J> {
        &self.inner
    }

    /// Replaces the random fault probabilities (e.g. [`JenkinsFaultConfig::none`]
    /// to stop injecting); scripted faults and a current outage are kept.
    pub fn set_config(&self, config: JenkinsFaultConfig) -> Result<(), Vec<String>> {
        config.validate()?;
        self.lock().config = config;
        Ok(())
    }

    /// Makes the next `calls` calls of `op` fail with `fault` (after faults
    /// already scripted for `op`).
    pub fn script(&self, op: JenkinsOp, calls: usize, fault: ScriptedJenkinsFault) {
        self.lock().scripts[op.index()].extend(std::iter::repeat_n(fault, calls));
    }

    /// Jenkins is unreachable from now for `duration` (extends a current outage).
    pub fn down_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut state = self.lock();
        state.down_until = Some(state.down_until.map_or(until, |u| u.max(until)));
    }

    /// Ends an outage now.
    pub fn up(&self) {
        self.lock().down_until = None;
    }

    /// Whether Jenkins is unreachable now.
    pub fn is_down(&self) -> bool {
        self.lock()
            .down_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// Faults injected so far.
    pub fn counts(&self) -> JenkinsFaultCounts {
        let state = self.lock();
        let mut counts = JenkinsFaultCounts::default();
        for op in JenkinsOp::ALL {
            for kind in JenkinsFaultKind::ALL {
                let n = state.counts[op.index()][kind.index()];
                if n > 0 {
                    counts.by_op.entry(op).or_default().insert(kind, n);
                }
            }
        }
        counts
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn plan(&self, op: JenkinsOp) -> Plan {
        let now = Instant::now();
        let mut state = self.lock();
        let State {
            config,
            rng,
            scripts,
            down_until,
            counts,
        } = &mut *state;
        let counts = &mut counts[op.index()];
        if down_until.is_some_and(|until| until <= now) {
            *down_until = None;
        }
        if down_until.is_none() && config.outage > 0.0 && rng.f64() < config.outage {
            *down_until = Some(now + config.outage_duration);
        }
        let mut plan = Plan::default();
        if down_until.is_some() {
            plan.fault = Some(ScriptedJenkinsFault::Down);
        } else {
            let faults = config.get(op);
            plan.fault = scripts[op.index()].pop_front().or_else(|| {
                let mut u = rng.f64();
                let choices = [
                    (faults.throttled, ScriptedJenkinsFault::Status(429)),
                    (faults.server_error, ScriptedJenkinsFault::Status(503)),
                    (faults.html, ScriptedJenkinsFault::Html),
                    (
                        faults.timeout,
                        ScriptedJenkinsFault::Timeout(faults.timeout_delay),
                    ),
                ];
                for (p, fault) in choices {
                    if u < p {
                        return Some(fault);
                    }
                    u -= p;
                }
                None
            });
            if faults.slow > 0.0 && rng.f64() < faults.slow {
                plan.slow = Some(faults.slow_delay);
                counts[JenkinsFaultKind::Slow.index()] += 1;
            }
        }
        if let Some(fault) = plan.fault {
            let kind = match fault {
                ScriptedJenkinsFault::Status(429) => JenkinsFaultKind::Throttled,
                ScriptedJenkinsFault::Status(_) => JenkinsFaultKind::ServerError,
                ScriptedJenkinsFault::Html => JenkinsFaultKind::Html,
                ScriptedJenkinsFault::Timeout(_) => JenkinsFaultKind::Timeout,
                ScriptedJenkinsFault::Down => JenkinsFaultKind::Down,
            };
            counts[kind.index()] += 1;
        }
        plan
    }

    /// Runs `call` under the plan for `op`.
    async fn around<T, Fut>(&self, op: JenkinsOp, call: Fut) -> Result<T, JenkinsError>
    where
        Fut: std::future::Future<Output = Result<T, JenkinsError>>,
    {
        let plan = self.plan(op);
        if let Some(delay) = plan.slow {
            tokio::time::sleep(delay).await;
        }
        match plan.fault {
            None => call.await,
            Some(ScriptedJenkinsFault::Status(status)) => Err(JenkinsError::Server {
                status,
                message: format!("injected fault: HTTP {status} on {op}"),
            }),
            Some(ScriptedJenkinsFault::Html) => Err(JenkinsError::BadResponse {
                message: format!(
                    "injected fault: expected JSON from {op}, got an HTML page (text/html)"
                ),
            }),
            Some(ScriptedJenkinsFault::Timeout(after)) => {
                let _lost = call.await;
                tokio::time::sleep(after).await;
                Err(JenkinsError::Timeout {
                    message: format!(
                        "injected fault: {op} got no answer within {} ms",
                        after.as_millis()
                    ),
                })
            }
            Some(ScriptedJenkinsFault::Down) => Err(JenkinsError::Transport {
                message: format!("injected fault: Jenkins is down ({op}: connection refused)"),
            }),
        }
    }
}

#[async_trait]
impl<J: JenkinsApi + ?Sized> JenkinsApi for FaultJenkins<J> {
    fn owner(&self) -> &OwnerId {
        self.inner.owner()
    }

    async fn demand(&self) -> Result<Demand, JenkinsError> {
        self.around(JenkinsOp::Demand, self.inner.demand()).await
    }

    async fn nodes(&self) -> Result<Vec<JenkinsNode>, JenkinsError> {
        self.around(JenkinsOp::Nodes, self.inner.nodes()).await
    }

    async fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError> {
        self.around(JenkinsOp::CreateNode, self.inner.create_node(spec))
            .await
    }

    async fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError> {
        self.around(JenkinsOp::AgentSecret, self.inner.agent_secret(name))
            .await
    }

    async fn drain_node(&self, name: &str, reason: &str) -> Result<(), JenkinsError> {
        self.around(JenkinsOp::DrainNode, self.inner.drain_node(name, reason))
            .await
    }

    async fn delete_node(&self, name: &str) -> Result<(), JenkinsError> {
        self.around(JenkinsOp::DeleteNode, self.inner.delete_node(name))
            .await
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
    use crate::error::ErrorClass;
    use crate::memory::MemoryJenkins;

    fn jenkins() -> Arc<MemoryJenkins> {
        Arc::new(MemoryJenkins::new(OwnerId::new("ci").unwrap()))
    }

    #[test]
    fn invalid_probabilities_are_named() {
        let config = JenkinsFaultConfig {
            reads: JenkinsOpFaults {
                html: 1.5,
                ..Default::default()
            },
            writes: JenkinsOpFaults {
                throttled: 0.6,
                timeout: 0.6,
                ..Default::default()
            },
            outage: -0.1,
            ..Default::default()
        };
        let problems = FaultJenkins::new(jenkins(), config, 1).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].starts_with("reads.html must be"),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("reads: throttled"), "{problems:?}");
        assert!(problems[2].starts_with("writes: throttled"), "{problems:?}");
        assert!(problems[3].starts_with("outage must be"), "{problems:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn scripted_faults_come_first_and_are_classified() {
        let f = FaultJenkins::new(jenkins(), JenkinsFaultConfig::none(), 1).unwrap();
        f.script(JenkinsOp::Demand, 1, ScriptedJenkinsFault::Status(429));
        f.script(JenkinsOp::Demand, 1, ScriptedJenkinsFault::Status(502));
        f.script(JenkinsOp::Demand, 1, ScriptedJenkinsFault::Html);
        let classes: Vec<ErrorClass> = [
            f.demand().await.unwrap_err(),
            f.demand().await.unwrap_err(),
            f.demand().await.unwrap_err(),
        ]
        .iter()
        .map(JenkinsError::class)
        .collect();
        assert_eq!(
            classes,
            vec![
                ErrorClass::Throttled,
                ErrorClass::Transient,
                ErrorClass::Transient
            ]
        );
        assert!(f.demand().await.is_ok(), "scripts used up");
        let counts = f.counts();
        assert_eq!(
            counts.get(JenkinsOp::Demand, JenkinsFaultKind::Throttled),
            1
        );
        assert_eq!(counts.total(JenkinsFaultKind::ServerError), 1);
        assert_eq!(counts.total(JenkinsFaultKind::Html), 1);
        assert_eq!(counts.failures(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_write_still_happens() {
        let inner = jenkins();
        let f = FaultJenkins::new(inner.clone(), JenkinsFaultConfig::none(), 1).unwrap();
        f.script(
            JenkinsOp::CreateNode,
            1,
            ScriptedJenkinsFault::Timeout(Duration::from_secs(30)),
        );
        let spec = NodeSpec {
            name: "ci-linux-abc".into(),
            marker: crate::jenkins::NodeMarker {
                owner: OwnerId::new("ci").unwrap(),
                template: "linux".into(),
                created_at_ms: 0,
            },
            labels: crate::label::LabelSet::parse("linux"),
            executors: 1,
            remote_fs: "/tmp".into(),
            mode: crate::template::NodeMode::Normal,
            web_socket: true,
        };
        let start = Instant::now();
        let err = f.create_node(&spec).await.unwrap_err();
        assert!(matches!(err, JenkinsError::Timeout { .. }), "{err:?}");
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        assert_eq!(inner.node_names(), vec!["ci-linux-abc".to_string()]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_fails_every_call_until_it_ends() {
        let f = FaultJenkins::new(jenkins(), JenkinsFaultConfig::none(), 1).unwrap();
        f.down_for(Duration::from_secs(60));
        assert!(f.is_down());
        for _ in 0..3 {
            let err = f.nodes().await.unwrap_err();
            assert!(matches!(err, JenkinsError::Transport { .. }), "{err:?}");
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!f.is_down());
        assert!(f.nodes().await.is_ok());
        assert_eq!(f.counts().total(JenkinsFaultKind::Down), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn random_faults_are_deterministic_for_a_seed_and_respect_rates() {
        let config = JenkinsFaultConfig {
            reads: JenkinsOpFaults {
                server_error: 0.2,
                html: 0.1,
                slow: 0.1,
                slow_delay: Duration::from_millis(10),
                ..Default::default()
            },
            ..Default::default()
        };
        let run = |seed| async move {
            let f = FaultJenkins::new(jenkins(), config, seed).unwrap();
            let mut outcomes = Vec::new();
            for _ in 0..1000 {
                outcomes.push(f.demand().await.is_ok());
            }
            (outcomes, f.counts())
        };
        let (a, counts) = run(7).await;
        let (b, _) = run(7).await;
        assert_eq!(a, b, "same seed, same faults");
        let failed = a.iter().filter(|ok| !**ok).count() as u64;
        assert_eq!(failed, counts.failures());
        assert!((230..370).contains(&failed), "≈30% of 1000: {failed}");
        assert!(counts.total(JenkinsFaultKind::Slow) > 50);
    }

    #[tokio::test(start_paused = true)]
    async fn set_config_none_stops_random_faults() {
        let config = JenkinsFaultConfig::uniform(JenkinsOpFaults {
            server_error: 0.5,
            ..Default::default()
        });
        let f = FaultJenkins::new(jenkins(), config, 3).unwrap();
        f.set_config(JenkinsFaultConfig::none()).unwrap();
        for _ in 0..100 {
            assert!(f.demand().await.is_ok());
        }
        assert_eq!(f.counts(), JenkinsFaultCounts::default());
    }
}
