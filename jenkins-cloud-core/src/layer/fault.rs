//! Deterministic fault injection around any backend.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Op;
use crate::backend::{
    AgentLaunch, Backend, BackendError, Capabilities, CloudId, CloudInstance, LaunchBatch,
    LaunchOutcome, OwnerId, TerminateOutcome,
};
use crate::error::ErrorClass;
use crate::template::AgentTemplate;

/// A kind of injected fault, as counted by [`FaultCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The call failed with [`ErrorClass::Throttled`].
    Throttled,
    /// The call failed with [`ErrorClass::Transient`] (a 5xx).
    Transient,
    /// The call failed with [`ErrorClass::Capacity`].
    Capacity,
    /// The call failed with [`ErrorClass::Permanent`].
    Permanent,
    /// The call reached the backend but its answer was lost: a delay, then
    /// [`ErrorClass::Transient`].
    Timeout,
    /// The call was delayed, then passed through.
    Slow,
    /// One agent or id of a launch or terminate batch failed while the rest went
    /// through (counted per item).
    PartialItem,
}

impl FaultKind {
    const ALL: [FaultKind; 7] = [
        FaultKind::Throttled,
        FaultKind::Transient,
        FaultKind::Capacity,
        FaultKind::Permanent,
        FaultKind::Timeout,
        FaultKind::Slow,
        FaultKind::PartialItem,
    ];

    fn of_class(class: ErrorClass) -> Self {
        match class {
            ErrorClass::Capacity => FaultKind::Capacity,
            ErrorClass::Throttled => FaultKind::Throttled,
            ErrorClass::Transient => FaultKind::Transient,
            _ => FaultKind::Permanent,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Fault probabilities for one operation. Per call, at most one of `throttled`,
/// `transient`, `capacity`, `permanent` and `timeout` happens (their sum must not
/// exceed 1); `slow` is drawn independently; `partial` is drawn per agent or id
/// of a launch or terminate call that had no call-level fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpFaults {
    /// Probability that the call fails as throttled, without reaching the backend.
    pub throttled: f64,
    /// Probability that the call fails as transient (5xx), without reaching the backend.
    pub transient: f64,
    /// Probability that the call fails for lack of capacity, without reaching the backend.
    pub capacity: f64,
    /// Probability that the call fails permanently, without reaching the backend.
    pub permanent: f64,
    /// Probability that the call reaches the backend but its answer is lost:
    /// after `timeout_delay` it fails as transient (a launch may have started).
    pub timeout: f64,
    /// How long a timed-out call takes.
    pub timeout_delay: Duration,
    /// Probability that the call is delayed by `slow_delay` first.
    pub slow: f64,
    /// The added delay of a slow call.
    pub slow_delay: Duration,
    /// Probability, per agent or id of a batch, that the item fails with
    /// `partial_class` while the others go through (launch and terminate only).
    pub partial: f64,
    /// The class of partial failures.
    pub partial_class: ErrorClass,
}

impl Default for OpFaults {
    /// No faults; 30 s timeouts, 2 s slow calls, partial failures as capacity.
    fn default() -> Self {
        Self {
            throttled: 0.0,
            transient: 0.0,
            capacity: 0.0,
            permanent: 0.0,
            timeout: 0.0,
            timeout_delay: Duration::from_secs(30),
            slow: 0.0,
            slow_delay: Duration::from_secs(2),
            partial: 0.0,
            partial_class: ErrorClass::Capacity,
        }
    }
}

impl OpFaults {
    fn check(&self, op: Op, problems: &mut Vec<String>) {
        let fields = [
            ("throttled", self.throttled),
            ("transient", self.transient),
            ("capacity", self.capacity),
            ("permanent", self.permanent),
            ("timeout", self.timeout),
            ("slow", self.slow),
            ("partial", self.partial),
        ];
        for (name, p) in fields {
            if !(0.0..=1.0).contains(&p) {
                problems.push(format!(
                    "{op}.{name} must be a probability in [0, 1], got {p}"
                ));
            }
        }
        let sum = self.throttled + self.transient + self.capacity + self.permanent + self.timeout;
        if sum > 1.0 + 1e-9 {
            problems.push(format!(
                "{op}: throttled + transient + capacity + permanent + timeout must not exceed 1, got {sum}"
            ));
        }
    }
}

/// Fault probabilities for every operation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultConfig {
    /// For [`Backend::launch`].
    pub launch: OpFaults,
    /// For [`Backend::describe`].
    pub describe: OpFaults,
    /// For [`Backend::terminate`].
    pub terminate: OpFaults,
    /// For [`Backend::list_owned`].
    pub list_owned: OpFaults,
}

impl FaultConfig {
    /// No random faults (scripted faults only).
    pub fn none() -> Self {
        Self::default()
    }

    /// The same probabilities for every operation.
    pub fn uniform(faults: OpFaults) -> Self {
        Self {
            launch: faults,
            describe: faults,
            terminate: faults,
            list_owned: faults,
        }
    }

    /// The probabilities of `op`.
    pub fn get(&self, op: Op) -> &OpFaults {
        match op {
            Op::Launch => &self.launch,
            Op::Describe => &self.describe,
            Op::Terminate => &self.terminate,
            Op::ListOwned => &self.list_owned,
        }
    }

    /// Every problem at once, each naming its field (`launch.throttled`…).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for op in Op::ALL {
            self.get(op).check(op, &mut problems);
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
pub enum ScriptedFault {
    /// Fail the call with this class without reaching the backend.
    Error(ErrorClass),
    /// Let the call reach the backend, wait this long, then fail it as transient.
    Timeout(Duration),
}

/// Injected faults so far, by operation and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Counts per operation and kind; kinds never injected are left out.
    pub by_op: BTreeMap<Op, BTreeMap<FaultKind, u64>>,
}

impl FaultCounts {
    /// Faults of `kind` injected into `op`.
    pub fn get(&self, op: Op, kind: FaultKind) -> u64 {
        self.by_op
            .get(&op)
            .and_then(|m| m.get(&kind))
            .copied()
            .unwrap_or(0)
    }

    /// Faults of `kind` injected into any operation.
    pub fn total(&self, kind: FaultKind) -> u64 {
        self.by_op.values().filter_map(|m| m.get(&kind)).sum()
    }
}

/// What happens to one call.
#[derive(Debug, Default)]
struct Plan {
    call: Option<ScriptedFault>,
    slow: Option<Duration>,
    /// Per item: the class it fails with, if it does.
    items: Vec<Option<ErrorClass>>,
}

#[derive(Debug)]
struct State {
    rng: fastrand::Rng,
    scripts: [VecDeque<ScriptedFault>; 4],
    counts: [[u64; 7]; 4],
}

/// Injects faults into calls to any backend: random ones per [`FaultConfig`],
/// deterministic for a seed and a given sequence of calls, and scripted ones
/// ([`FaultBackend::script`]) that take precedence.
///
/// Call-level errors are returned without calling the backend (for `launch` and
/// `terminate`, every item gets the error). A timeout calls the backend, waits,
/// and drops the answer, like a lost response: a launch retried after it must
/// rely on client tokens not to start duplicates. Partial failures fail some
/// items of a batch and pass the others to the backend, keeping one outcome per
/// item in request order. All delays use tokio time.
#[derive(Debug)]
pub struct FaultBackend<B: Backend + ?Sized> {
    inner: Arc<B>,
    config: FaultConfig,
    state: Mutex<State>,
}

impl<B: Backend + ?Sized> FaultBackend<B> {
    /// Wraps `inner` with random faults drawn from a generator seeded with `seed`.
    /// Errors name every invalid field of `config`.
    pub fn new(inner: Arc<B>, config: FaultConfig, seed: u64) -> Result<Self, Vec<String>> {
        config.validate()?;
        Ok(Self {
            inner,
            config,
            state: Mutex::new(State {
                rng: fastrand::Rng::with_seed(seed),
                scripts: Default::default(),
                counts: [[0; 7]; 4],
            }),
        })
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<B> {
        &self.inner
    }

    /// Makes the next `calls` calls of `op` fail with `fault` (after faults
    /// already scripted for `op`).
    pub fn script(&self, op: Op, calls: usize, fault: ScriptedFault) {
        let mut state = self.lock();
        state.scripts[op.index()].extend(std::iter::repeat_n(fault, calls));
    }

    /// Scripted faults not yet used for `op`.
    pub fn scripted_remaining(&self, op: Op) -> usize {
        self.lock().scripts[op.index()].len()
    }

    /// Faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        let state = self.lock();
        let mut counts = FaultCounts::default();
        for op in Op::ALL {
            for kind in FaultKind::ALL {
                let n = state.counts[op.index()][kind.index()];
                if n > 0 {
                    counts.by_op.entry(op).or_default().insert(kind, n);
                }
            }
        }
        counts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn plan(&self, op: Op, items: usize, batched: bool) -> Plan {
        let faults = self.config.get(op);
        let mut state = self.lock();
        let State {
            rng,
            scripts,
            counts,
        } = &mut *state;
        let counts = &mut counts[op.index()];
        let mut plan = Plan {
            items: vec![None; items],
            ..Plan::default()
        };
        plan.call = scripts[op.index()].pop_front().or_else(|| {
            let mut u = rng.f64();
            let choices = [
                (faults.throttled, Some(ErrorClass::Throttled)),
                (faults.transient, Some(ErrorClass::Transient)),
                (faults.capacity, Some(ErrorClass::Capacity)),
                (faults.permanent, Some(ErrorClass::Permanent)),
                (faults.timeout, None),
            ];
            for (p, class) in choices {
                if u < p {
                    return Some(match class {
                        Some(class) => ScriptedFault::Error(class),
                        None => ScriptedFault::Timeout(faults.timeout_delay),
                    });
                }
                u -= p;
            }
            None
        });
        match plan.call {
            Some(ScriptedFault::Error(class)) => counts[FaultKind::of_class(class).index()] += 1,
            Some(ScriptedFault::Timeout(_)) => counts[FaultKind::Timeout.index()] += 1,
            None => {}
        }
        if faults.slow > 0.0 && rng.f64() < faults.slow {
            plan.slow = Some(faults.slow_delay);
            counts[FaultKind::Slow.index()] += 1;
        }
        if batched && plan.call.is_none() && faults.partial > 0.0 {
            for item in &mut plan.items {
                if rng.f64() < faults.partial {
                    *item = Some(faults.partial_class);
                    counts[FaultKind::PartialItem.index()] += 1;
                }
            }
        }
        plan
    }
}

fn injected(op: Op, class: ErrorClass) -> BackendError {
    BackendError::of_class(class, format!("injected fault: {class} on {op}"))
}

fn timed_out(op: Op, after: Duration) -> BackendError {
    BackendError::transient(format!(
        "injected fault: {op} timed out after {} ms",
        after.as_millis()
    ))
}

/// Runs `plan`'s delay and timeout around `call`: `Err` for a call-level fault.
async fn around<T, Fut>(op: Op, plan: &Plan, call: Fut) -> Result<T, BackendError>
where
    Fut: std::future::Future<Output = T>,
{
    if let Some(delay) = plan.slow {
        tokio::time::sleep(delay).await;
    }
    match plan.call {
        Some(ScriptedFault::Error(class)) => Err(injected(op, class)),
        Some(ScriptedFault::Timeout(after)) => {
            let _lost = call.await;
            tokio::time::sleep(after).await;
            Err(timed_out(op, after))
        }
        None => Ok(call.await),
    }
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for FaultBackend<B> {
    fn kind(&self) -> &str {
        self.inner.kind()
    }

    fn owner(&self) -> &OwnerId {
        self.inner.owner()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn validate_template(&self, template: &AgentTemplate) -> Result<(), Vec<String>> {
        self.inner.validate_template(template)
    }
    fn classify_failure(&self, reason: &str) -> ErrorClass {
        self.inner.classify_failure(reason)
    }

    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        let plan = self.plan(Op::Launch, batch.agents.len(), true);
        let passed: Vec<AgentLaunch> = batch
            .agents
            .iter()
            .zip(&plan.items)
            .filter(|(_, failed)| failed.is_none())
            .map(|(agent, _)| agent.clone())
            .collect();
        let call = async {
            if passed.is_empty() {
                Vec::new()
            } else {
                self.inner
                    .launch(LaunchBatch {
                        agents: &passed,
                        ..batch
                    })
                    .await
            }
        };
        let mut results = match around(Op::Launch, &plan, call).await {
            Ok(outcomes) => outcomes.into_iter().map(|o| o.result),
            Err(e) => {
                return batch
                    .agents
                    .iter()
                    .map(|a| LaunchOutcome {
                        agent_name: a.agent_name.clone(),
                        result: Err(e.clone()),
                    })
                    .collect()
            }
        };
        batch
            .agents
            .iter()
            .zip(&plan.items)
            .map(|(agent, failed)| LaunchOutcome {
                agent_name: agent.agent_name.clone(),
                result: match failed {
                    Some(class) => Err(injected(Op::Launch, *class)),
                    None => results.next().unwrap_or_else(|| {
                        Err(BackendError::permanent(format!(
                            "backend `{}` returned no outcome for `{}`",
                            self.inner.kind(),
                            agent.agent_name
                        )))
                    }),
                },
            })
            .collect()
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        let plan = self.plan(Op::Describe, 0, false);
        around(Op::Describe, &plan, self.inner.describe(ids)).await?
    }

    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        let plan = self.plan(Op::Terminate, ids.len(), true);
        let passed: Vec<CloudId> = ids
            .iter()
            .zip(&plan.items)
            .filter(|(_, failed)| failed.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let call = async {
            if passed.is_empty() {
                Vec::new()
            } else {
                self.inner.terminate(&passed, reason).await
            }
        };
        let mut results = match around(Op::Terminate, &plan, call).await {
            Ok(outcomes) => outcomes.into_iter().map(|o| o.result),
            Err(e) => {
                return ids
                    .iter()
                    .map(|id| TerminateOutcome {
                        id: id.clone(),
                        result: Err(e.clone()),
                    })
                    .collect()
            }
        };
        ids.iter()
            .zip(&plan.items)
            .map(|(id, failed)| TerminateOutcome {
                id: id.clone(),
                result: match failed {
                    Some(class) => Err(injected(Op::Terminate, *class)),
                    None => results.next().unwrap_or_else(|| {
                        Err(BackendError::permanent(format!(
                            "backend `{}` returned no outcome for `{id}`",
                            self.inner.kind()
                        )))
                    }),
                },
            })
            .collect()
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        let plan = self.plan(Op::ListOwned, 0, false);
        around(Op::ListOwned, &plan, self.inner.list_owned()).await?
    }
}
