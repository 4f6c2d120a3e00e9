//! Client-side token buckets, one per kind of operation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::backend::{
    Backend, BackendError, Capabilities, CloudId, CloudInstance, LaunchBatch, LaunchOutcome,
    OwnerId, TerminateOutcome,
};
use crate::error::ErrorClass;
use crate::template::AgentTemplate;

/// What one token pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// One token per call of the wrapper, whatever its size.
    Call,
    /// One token per agent or id (ECS StopTask and Fargate task launches count
    /// tasks, not requests).
    Item,
    /// One token per cloud request the backend makes: `ceil(items / batch limit)`
    /// with the limit from the backend's [`Capabilities`].
    Batch,
}

/// One token bucket: `burst` tokens at most, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketConfig {
    /// Bucket size: how many tokens can be spent at once after a quiet period (≥ 1).
    pub burst: u32,
    /// Refill rate in tokens per second (finite, > 0).
    pub per_second: f64,
    /// What a token pays for.
    pub cost: Cost,
}

impl BucketConfig {
    /// A bucket of `burst` tokens refilled at `per_second`, charging by `cost`.
    pub fn new(burst: u32, per_second: f64, cost: Cost) -> Self {
        Self {
            burst,
            per_second,
            cost,
        }
    }

    fn check(&self, field: &str, problems: &mut Vec<String>) {
        if self.burst == 0 {
            problems.push(format!("{field}.burst must be at least 1"));
        }
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            problems.push(format!(
                "{field}.per_second must be a positive number, got {}",
                self.per_second
            ));
        }
    }
}

/// Buckets for each operation. `describe` and `list_owned` share one bucket, as
/// they share the cloud's describe/list limit.
///
/// Cloud limits are per account and region and shared with every other client
/// there: configure a share of them ([`RateLimits::scaled`]), not all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// [`Backend::launch`].
    pub launch: BucketConfig,
    /// [`Backend::describe`] and [`Backend::list_owned`] (`list_owned` costs one token).
    pub describe: BucketConfig,
    /// [`Backend::terminate`].
    pub terminate: BucketConfig,
}

impl Default for RateLimits {
    /// The tighter of [`RateLimits::ecs_fargate`] and [`RateLimits::ec2`] for
    /// each operation: launch 5 burst / 2 per s per request, describe 100 / 20
    /// per request, terminate 100 / 5 per request.
    fn default() -> Self {
        Self {
            launch: BucketConfig::new(5, 2.0, Cost::Batch),
            describe: BucketConfig::new(100, 20.0, Cost::Batch),
            terminate: BucketConfig::new(100, 5.0, Cost::Batch),
        }
    }
}

impl RateLimits {
    /// AWS's ECS limits for Fargate (per account and region): task launches
    /// 100 burst / 20 per s (tighter than RunTask's 100 / 40 requests);
    /// DescribeTasks/ListTasks 100 / 20 requests; StopTask shares RunTask's
    /// 100 / 40 and stops one task per request.
    pub fn ecs_fargate() -> Self {
        Self {
            launch: BucketConfig::new(100, 20.0, Cost::Item),
            describe: BucketConfig::new(100, 20.0, Cost::Batch),
            terminate: BucketConfig::new(100, 40.0, Cost::Item),
        }
    }

    /// AWS's EC2 limits (per account and region): RunInstances 5 burst / 2 per s
    /// requests; DescribeInstances with filters 100 / 20; TerminateInstances
    /// 100 / 5.
    pub fn ec2() -> Self {
        Self {
            launch: BucketConfig::new(5, 2.0, Cost::Batch),
            describe: BucketConfig::new(100, 20.0, Cost::Batch),
            terminate: BucketConfig::new(100, 5.0, Cost::Batch),
        }
    }

    /// These limits times `factor` (bursts rounded up, at least 1): e.g. `0.5`
    /// to leave half of the account's budget to other clients.
    pub fn scaled(self, factor: f64) -> Self {
        let scale = |b: BucketConfig| BucketConfig {
            burst: ((f64::from(b.burst) * factor).ceil() as u32).max(1),
            per_second: b.per_second * factor,
            cost: b.cost,
        };
        Self {
            launch: scale(self.launch),
            describe: scale(self.describe),
            terminate: scale(self.terminate),
        }
    }

    /// Every problem at once, each naming its field (`launch.per_second`…).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        self.launch.check("launch", &mut problems);
        self.describe.check("describe", &mut problems);
        self.terminate.check("terminate", &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A token bucket that lends: a caller takes its tokens at once, going into debt
/// if need be, and waits until the debt would be repaid. Callers are served in
/// arrival order and a cost above the burst still gets through.
#[derive(Debug)]
struct Bucket {
    config: BucketConfig,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn new(config: BucketConfig) -> Self {
        Self {
            config,
            tokens: f64::from(config.burst),
            last: None,
        }
    }

    fn reserve(&mut self, cost: u64, now: Instant) -> Duration {
        let burst = f64::from(self.config.burst);
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.config.per_second;
            self.tokens = (self.tokens + refill).min(burst);
        }
        self.last = Some(now);
        self.tokens -= cost as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-self.tokens / self.config.per_second)
                .unwrap_or(Duration::MAX)
        }
    }
}

/// Spaces calls to the inner backend with a token bucket per operation
/// ([`RateLimits`]), so that bursts of reconcile work stay under the cloud's API
/// limits instead of being throttled. Waits in tokio time before each call;
/// nothing is refused.
#[derive(Debug)]
pub struct RateLimitBackend<B: Backend + ?Sized> {
    inner: Arc<B>,
    limits: RateLimits,
    launch: Mutex<Bucket>,
    describe: Mutex<Bucket>,
    terminate: Mutex<Bucket>,
}

impl<B: Backend + ?Sized> RateLimitBackend<B> {
    /// Wraps `inner`. Errors name every invalid field of `limits`.
    pub fn new(inner: Arc<B>, limits: RateLimits) -> Result<Self, Vec<String>> {
        limits.validate()?;
        Ok(Self {
            inner,
            limits,
            launch: Mutex::new(Bucket::new(limits.launch)),
            describe: Mutex::new(Bucket::new(limits.describe)),
            terminate: Mutex::new(Bucket::new(limits.terminate)),
        })
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<B> {
        &self.inner
    }

    /// The limits in force.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    async fn acquire(&self, bucket: &Mutex<Bucket>, items: usize, batch_limit: usize) {
        let cost = {
            let b = bucket.lock().unwrap_or_else(|e| e.into_inner());
            match b.config.cost {
                Cost::Call => 1,
                Cost::Item => items as u64,
                Cost::Batch => items.div_ceil(batch_limit.max(1)) as u64,
            }
        };
        if cost == 0 {
            return;
        }
        let wait = bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(cost, Instant::now());
        if !wait.is_zero() {
            tracing::trace!(
                backend = self.inner.kind(),
                wait_ms = wait.as_millis() as u64,
                "rate limited"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for RateLimitBackend<B> {
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
        let limit = self.inner.capabilities().max_launch_batch;
        self.acquire(&self.launch, batch.agents.len(), limit).await;
        self.inner.launch(batch).await
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        let limit = self.inner.capabilities().max_describe_batch;
        self.acquire(&self.describe, ids.len(), limit).await;
        self.inner.describe(ids).await
    }

    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        let limit = self.inner.capabilities().max_terminate_batch;
        self.acquire(&self.terminate, ids.len(), limit).await;
        self.inner.terminate(ids, reason).await
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        self.acquire(&self.describe, 1, 1).await;
        self.inner.list_owned().await
    }
}
