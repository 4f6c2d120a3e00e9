//! Retrying throttled and transient failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::Op;
use crate::backend::{
    AgentLaunch, Backend, BackendError, Capabilities, CloudId, CloudInstance, LaunchBatch,
    LaunchOutcome, OwnerId, TerminateOutcome,
};
use crate::error::ErrorClass;
use crate::template::AgentTemplate;

/// How [`RetryBackend`] retries.
///
/// The defaults are those of the AWS SDK's standard retry mode: 3 attempts,
/// 1 s initial backoff, 20 s maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (0 counts as 1: no retry).
    pub max_attempts: u32,
    /// Upper bound of the first retry's delay; doubles with every attempt.
    pub base_delay: Duration,
    /// Upper bound of any single delay. A `retry_after` hint longer than this is
    /// not waited for: the error is returned and the caller's backoff takes over.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The longest total time spent waiting between attempts of one call:
    /// `(max_attempts − 1) × max_delay`.
    pub fn max_total_delay(&self) -> Duration {
        self.max_delay
            .saturating_mul(self.max_attempts.max(1).saturating_sub(1))
    }
}

/// Retries what retrying can fix: [`ErrorClass::Throttled`] and
/// [`ErrorClass::Transient`] failures.
///
/// * `describe` and `list_owned` are repeated whole.
/// * `launch` repeats only the agents whose outcome was throttled or transient,
///   with their original `client_token`s (so a launch whose answer was lost does
///   not start a duplicate where the cloud honours tokens), and keeps the
///   successes: one outcome per agent, in request order.
/// * `terminate` repeats only the ids that failed that way.
/// * [`ErrorClass::Capacity`] is returned at once (the caller walks the template's
///   fallback chain); [`ErrorClass::Permanent`] is never retried.
///
/// Delays: exponential backoff with full jitter, i.e. before retry `n` (1-based) a
/// uniformly random delay in `[0, min(max_delay, base_delay·2ⁿ⁻¹)]`, and at least
/// the largest `retry_after` the cloud sent. A `retry_after` above `max_delay`
/// ends the retries. The total wait of one call never exceeds
/// [`RetryPolicy::max_total_delay`]. All waiting uses tokio time.
#[derive(Debug)]
pub struct RetryBackend<B: Backend + ?Sized> {
    inner: Arc<B>,
    policy: RetryPolicy,
    rng: Mutex<fastrand::Rng>,
    retries: AtomicU64,
}

impl<B: Backend + ?Sized> RetryBackend<B> {
    /// Wraps `inner`; jitter comes from a randomly seeded generator.
    pub fn new(inner: Arc<B>, policy: RetryPolicy) -> Self {
        Self::with_rng(inner, policy, fastrand::Rng::new())
    }

    /// Wraps `inner` with jitter from a generator seeded with `seed`, so that the
    /// delays are repeatable (tests, simulations).
    pub fn with_seed(inner: Arc<B>, policy: RetryPolicy, seed: u64) -> Self {
        Self::with_rng(inner, policy, fastrand::Rng::with_seed(seed))
    }

    fn with_rng(inner: Arc<B>, policy: RetryPolicy, rng: fastrand::Rng) -> Self {
        Self {
            inner,
            policy,
            rng: Mutex::new(rng),
            retries: AtomicU64::new(0),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<B> {
        &self.inner
    }

    /// The policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// How many repeated calls to the inner backend this wrapper made so far
    /// (a launch retry of 3 agents in one call counts once).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn max_attempts(&self) -> u32 {
        self.policy.max_attempts.max(1)
    }

    /// The wait before attempt `attempt + 1`, or `None` when the cloud asked for
    /// a longer wait than the policy allows.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        let cap = self
            .policy
            .base_delay
            .saturating_mul(factor)
            .min(self.policy.max_delay);
        let unit = self.rng.lock().unwrap_or_else(|e| e.into_inner()).f64();
        let jittered = cap.mul_f64(unit);
        match retry_after {
            Some(hint) if hint > self.policy.max_delay => None,
            Some(hint) => Some(jittered.max(hint)),
            None => Some(jittered),
        }
    }

    /// Waits before the next attempt; `false` when retrying should stop.
    async fn backoff(
        &self,
        op: Op,
        attempt: u32,
        class: ErrorClass,
        retry_after: Option<Duration>,
    ) -> bool {
        let Some(delay) = self.delay(attempt, retry_after) else {
            tracing::debug!(
                backend = self.inner.kind(),
                %op,
                attempt,
                %class,
                "retry-after exceeds the policy's max delay; not retrying"
            );
            return false;
        };
        tracing::debug!(
            backend = self.inner.kind(),
            %op,
            attempt,
            %class,
            delay_ms = delay.as_millis() as u64,
            "retrying"
        );
        tokio::time::sleep(delay).await;
        self.retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    async fn retry_whole<T, F, Fut>(&self, op: Op, mut call: F) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, BackendError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(e) if is_retried(&e) && attempt < self.max_attempts() => {
                    if !self.backoff(op, attempt, e.class(), retry_after(&e)).await {
                        return Err(e);
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn is_retried(e: &BackendError) -> bool {
    matches!(e.class(), ErrorClass::Throttled | ErrorClass::Transient)
}

fn retry_after(e: &BackendError) -> Option<Duration> {
    match e {
        BackendError::Throttled { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// What one pass over the still-pending items decided.
struct Pass {
    retry: Vec<usize>,
    class: Option<ErrorClass>,
    retry_after: Option<Duration>,
}

impl Pass {
    fn new() -> Self {
        Self {
            retry: Vec::new(),
            class: None,
            retry_after: None,
        }
    }

    fn note(&mut self, index: usize, e: &BackendError) {
        self.retry.push(index);
        self.class.get_or_insert(e.class());
        self.retry_after = self.retry_after.max(retry_after(e));
    }
}

/// Lines up `outcomes` with `keys` (by key, tolerating reordering); a key the
/// backend left out gets a permanent error naming it.
fn align<K: PartialEq + std::fmt::Display, T>(
    kind: &str,
    keys: &[K],
    outcomes: Vec<(K, Result<T, BackendError>)>,
) -> Vec<Result<T, BackendError>> {
    let mut outcomes: Vec<Option<(K, Result<T, BackendError>)>> =
        outcomes.into_iter().map(Some).collect();
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            let found = match outcomes.get(i) {
                Some(Some((k, _))) if k == key => Some(i),
                _ => outcomes
                    .iter()
                    .position(|o| matches!(o, Some((k, _)) if k == key)),
            };
            match found.and_then(|j| outcomes[j].take()) {
                Some((_, result)) => result,
                None => Err(BackendError::permanent(format!(
                    "backend `{kind}` returned no outcome for `{key}`"
                ))),
            }
        })
        .collect()
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for RetryBackend<B> {
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
        let mut results: Vec<Option<Result<CloudId, BackendError>>> =
            vec![None; batch.agents.len()];
        let mut pending: Vec<usize> = (0..batch.agents.len()).collect();
        let mut attempt = 1;
        loop {
            let agents: Vec<AgentLaunch> =
                pending.iter().map(|&i| batch.agents[i].clone()).collect();
            let names: Vec<String> = agents.iter().map(|a| a.agent_name.clone()).collect();
            let outcomes = self
                .inner
                .launch(LaunchBatch {
                    agents: &agents,
                    ..batch
                })
                .await
                .into_iter()
                .map(|o| (o.agent_name, o.result))
                .collect::<Vec<_>>();
            let outcomes = align(self.inner.kind(), &names, outcomes);
            let mut pass = Pass::new();
            for (&index, result) in pending.iter().zip(outcomes) {
                if let Err(e) = &result {
                    if is_retried(e) && attempt < self.max_attempts() {
                        pass.note(index, e);
                    }
                }
                results[index] = Some(result);
            }
            let Some(class) = pass.class else { break };
            if !self
                .backoff(Op::Launch, attempt, class, pass.retry_after)
                .await
            {
                break;
            }
            pending = pass.retry;
            attempt += 1;
        }
        batch
            .agents
            .iter()
            .zip(results)
            .map(|(agent, result)| LaunchOutcome {
                agent_name: agent.agent_name.clone(),
                result: result
                    .unwrap_or_else(|| Err(BackendError::permanent("launch was never attempted"))),
            })
            .collect()
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        self.retry_whole(Op::Describe, || self.inner.describe(ids))
            .await
    }

    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        let mut results: Vec<Option<Result<(), BackendError>>> = vec![None; ids.len()];
        let mut pending: Vec<usize> = (0..ids.len()).collect();
        let mut attempt = 1;
        loop {
            let batch: Vec<CloudId> = pending.iter().map(|&i| ids[i].clone()).collect();
            let outcomes = self
                .inner
                .terminate(&batch, reason)
                .await
                .into_iter()
                .map(|o| (o.id, o.result))
                .collect();
            let outcomes = align(self.inner.kind(), &batch, outcomes);
            let mut pass = Pass::new();
            for (&index, result) in pending.iter().zip(outcomes) {
                if let Err(e) = &result {
                    if is_retried(e) && attempt < self.max_attempts() {
                        pass.note(index, e);
                    }
                }
                results[index] = Some(result);
            }
            let Some(class) = pass.class else { break };
            if !self
                .backoff(Op::Terminate, attempt, class, pass.retry_after)
                .await
            {
                break;
            }
            pending = pass.retry;
            attempt += 1;
        }
        ids.iter()
            .zip(results)
            .map(|(id, result)| TerminateOutcome {
                id: id.clone(),
                result: result.unwrap_or_else(|| {
                    Err(BackendError::permanent("terminate was never attempted"))
                }),
            })
            .collect()
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        self.retry_whole(Op::ListOwned, || self.inner.list_owned())
            .await
    }
}
