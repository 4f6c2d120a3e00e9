//! Call, outcome and latency counters, read as a snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Op;
use crate::backend::{
    Backend, BackendError, Capabilities, CloudId, CloudInstance, LaunchBatch, LaunchOutcome,
    OwnerId, TerminateOutcome,
};
use crate::error::ErrorClass;
use crate::template::AgentTemplate;

/// Counters of one operation.
///
/// Outcomes are counted per item for `launch` (per agent) and `terminate` (per
/// id), and per call for `describe` and `list_owned`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpMetrics {
    /// Calls made.
    pub calls: u64,
    /// Successful outcomes.
    pub ok: u64,
    /// Failed outcomes by error class; classes never seen are left out.
    pub errors: BTreeMap<ErrorClass, u64>,
    /// Sum of call durations (tokio time), for a mean with `calls`.
    pub latency_total: Duration,
    /// Longest call.
    pub latency_max: Duration,
}

impl OpMetrics {
    /// Failed outcomes of `class`.
    pub fn errors_of(&self, class: ErrorClass) -> u64 {
        self.errors.get(&class).copied().unwrap_or(0)
    }

    /// Failed outcomes of any class.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    fn record<'a>(
        &mut self,
        elapsed: Duration,
        results: impl IntoIterator<Item = Option<&'a BackendError>>,
    ) {
        self.calls += 1;
        self.latency_total += elapsed;
        self.latency_max = self.latency_max.max(elapsed);
        for result in results {
            match result {
                None => self.ok += 1,
                Some(e) => *self.errors.entry(e.class()).or_default() += 1,
            }
        }
    }
}

/// A copy of a [`MetricsBackend`]'s counters at one moment. Holds counts and
/// durations only: no ids, names, messages or secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// The backend's [`Backend::kind`].
    pub backend: String,
    /// Counters per operation; operations never called are left out.
    pub ops: BTreeMap<Op, OpMetrics>,
}

impl MetricsSnapshot {
    /// The counters of `op` (zeros if it was never called).
    pub fn op(&self, op: Op) -> OpMetrics {
        self.ops.get(&op).cloned().unwrap_or_default()
    }
}

/// Counts calls to the inner backend by operation and outcome (ok or error
/// class) and sums their latency; [`MetricsBackend::snapshot`] reads them (an
/// exporter turns snapshots into Prometheus or other metrics). Records nothing
/// but counts and durations.
#[derive(Debug)]
pub struct MetricsBackend<B: Backend + ?Sized> {
    inner: Arc<B>,
    ops: Mutex<BTreeMap<Op, OpMetrics>>,
}

impl<B: Backend + ?Sized> MetricsBackend<B> {
    /// Wraps `inner` with zeroed counters.
    pub fn new(inner: Arc<B>) -> Self {
        Self {
            inner,
            ops: Mutex::new(BTreeMap::new()),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<B> {
        &self.inner
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            backend: self.inner.kind().to_owned(),
            ops: self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    fn record<'a>(
        &self,
        op: Op,
        started: Instant,
        results: impl IntoIterator<Item = Option<&'a BackendError>>,
    ) {
        let elapsed = started.elapsed();
        self.ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(op)
            .or_default()
            .record(elapsed, results);
    }
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for MetricsBackend<B> {
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
        let started = Instant::now();
        let outcomes = self.inner.launch(batch).await;
        self.record(
            Op::Launch,
            started,
            outcomes.iter().map(|o| o.result.as_ref().err()),
        );
        outcomes
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        let started = Instant::now();
        let result = self.inner.describe(ids).await;
        self.record(Op::Describe, started, [result.as_ref().err()]);
        result
    }

    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        let started = Instant::now();
        let outcomes = self.inner.terminate(ids, reason).await;
        self.record(
            Op::Terminate,
            started,
            outcomes.iter().map(|o| o.result.as_ref().err()),
        );
        outcomes
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        let started = Instant::now();
        let result = self.inner.list_owned().await;
        self.record(Op::ListOwned, started, [result.as_ref().err()]);
        result
    }
}
