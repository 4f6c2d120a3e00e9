//! [`MemoryBackend`]: a complete [`Backend`] over a [`MemoryCloud`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::cloud::{Instance, MemoryCloud, StateSeconds};
use super::spec::MemorySpec;
use super::warm_pool::{Restart, WarmPool};
use super::MemoryJenkins;
use crate::backend::{
    Backend, BackendError, Capabilities, CloudId, CloudInstance, LaunchBatch, LaunchOutcome,
    OwnerId, TerminateOutcome,
};
use crate::error::ErrorClass;
use crate::template::AgentTemplate;

/// Prefix of every memory-cloud id (`mem-00000001`…).
pub const ID_PREFIX: &str = "mem-";

/// A delay: fixed, or drawn uniformly (whole milliseconds) from the backend's
/// seeded random generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Between `min` and `max` inclusive.
    Uniform {
        /// Shortest.
        min: Duration,
        /// Longest.
        max: Duration,
    },
}

impl Latency {
    pub(super) fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } if max > min => {
                let span = (max - min).as_millis() as u64;
                min + Duration::from_millis(rng.u64(0..=span))
            }
            Latency::Uniform { min, .. } => min,
        }
    }

    /// The longest delay this can produce.
    pub fn max(&self) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => min.max(max),
        }
    }
}

/// Default start latency (launch → running): 30 s, like a Fargate task with a
/// cached image.
pub const DEFAULT_START_LATENCY: Duration = Duration::from_secs(30);
/// Default stop latency (terminate → terminated): 10 s.
pub const DEFAULT_STOP_LATENCY: Duration = Duration::from_secs(10);
/// Default connect latency (running → agent connected): 5 s of JVM start.
pub const DEFAULT_CONNECT_LATENCY: Duration = Duration::from_secs(5);

/// Call and launch counters of one [`MemoryBackend`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// [`Backend::launch`] calls.
    pub launch_calls: u64,
    /// Cloud requests those calls made (batches split at `max_launch_batch`).
    pub launch_requests: u64,
    /// [`Backend::describe`] calls.
    pub describe_calls: u64,
    /// [`Backend::terminate`] calls.
    pub terminate_calls: u64,
    /// [`Backend::list_owned`] calls.
    pub list_calls: u64,
    /// Instances ever created (warm-pool restarts not included).
    pub launched: u64,
    /// Launches served by restarting a stopped warm-pool instance.
    pub restarted: u64,
    /// Launches answered from an earlier one with the same client token.
    pub idempotent_replays: u64,
    /// Agents whose launch failed, by error class.
    pub launch_failures: BTreeMap<ErrorClass, u64>,
    /// Instances this backend asked to stop (first request only), into the
    /// warm pool or not.
    pub terminated: u64,
    /// Of those, the ones stopped into the warm pool instead of terminated.
    pub pooled: u64,
}

struct Config {
    capabilities: Capabilities,
    start_latency: Latency,
    template_start: BTreeMap<String, Latency>,
    stop_latency: Duration,
    connect_latency: Duration,
    rng: fastrand::Rng,
    failure_rate: Option<(f64, ErrorClass)>,
    fail_next: Vec<ErrorClass>,
    warm_pool: Option<WarmPool>,
    stats: BackendStats,
}

/// An in-memory [`Backend`]: instances go Pending → Running after a start
/// latency, Stopping → Terminated after a stop latency, and are forgotten after
/// the cloud's retention period. Everything uses tokio time and a seeded random
/// generator, so a run is deterministic for a given seed (use
/// `#[tokio::test(start_paused = true)]` to skip the waiting).
///
/// * Several backends (owners) can share one [`MemoryCloud`]
///   ([`MemoryBackend::on_cloud`]).
/// * Failure injection: [`fail_next_launches`](Self::fail_next_launches),
///   [`with_failure_rate`](Self::with_failure_rate), a capacity limit on the
///   cloud ([`MemoryCloud::set_capacity_limit`]), and
///   [`interrupt`](Self::interrupt) for a spot interruption.
/// * Client tokens are idempotent per owner: the same token returns the same
///   instance; the same token for another agent name is `Permanent`.
/// * Template spec: an object with optional `start_latency_ms`,
///   `stop_latency_ms` and `connect_latency_ms` (non-negative integers);
///   any other key is rejected, naming `spec.<key>`.
/// * Agent link: with [`connect_agents_to`](Self::connect_agents_to), each
///   agent connects to a [`MemoryJenkins`] with its launch secret a connect
///   latency after its instance runs, and disconnects when the instance stops
///   or fails.
/// * Warm pool (opt-in, [`with_warm_pool`](Self::with_warm_pool)): terminate
///   stops instances into a bounded pool and launch restarts them, as EC2 does;
///   see [`WarmPool`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use jenkins_cloud_core::backend::{Backend, OwnerId};
/// use jenkins_cloud_core::memory::MemoryBackend;
/// let backend = MemoryBackend::new(OwnerId::new("ci").unwrap());
/// assert!(backend.list_owned().await.unwrap().is_empty());
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    owner: OwnerId,
    cloud: MemoryCloud,
    config: Arc<Mutex<Config>>,
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("owner", &self.owner)
            .field("cloud", &self.cloud)
            .finish_non_exhaustive()
    }
}

impl MemoryBackend {
    /// A backend for `owner` over a cloud of its own.
    pub fn new(owner: OwnerId) -> Self {
        Self::on_cloud(MemoryCloud::new(), owner)
    }

    /// A backend for `owner` over a shared cloud.
    pub fn on_cloud(cloud: MemoryCloud, owner: OwnerId) -> Self {
        Self {
            owner,
            cloud,
            config: Arc::new(Mutex::new(Config {
                capabilities: Capabilities::new(10, 100, 100),
                start_latency: Latency::Fixed(DEFAULT_START_LATENCY),
                template_start: BTreeMap::new(),
                stop_latency: DEFAULT_STOP_LATENCY,
                connect_latency: DEFAULT_CONNECT_LATENCY,
                rng: fastrand::Rng::with_seed(0),
                failure_rate: None,
                fail_next: Vec::new(),
                warm_pool: None,
                stats: BackendStats::default(),
            })),
        }
    }

    fn config(&self) -> MutexGuard<'_, Config> {
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with(self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config());
        self
    }

    /// Seeds the random generator (latency ranges, failure rate). Default seed 0.
    pub fn with_seed(self, seed: u64) -> Self {
        self.with(|c| c.rng = fastrand::Rng::with_seed(seed))
    }

    /// Batch limits and features reported (default 10 / 100 / 100, no spot).
    pub fn with_capabilities(self, capabilities: Capabilities) -> Self {
        self.with(|c| c.capabilities = capabilities)
    }

    /// Default start latency ([`DEFAULT_START_LATENCY`] unless set).
    pub fn with_start_latency(self, latency: Latency) -> Self {
        self.with(|c| c.start_latency = latency)
    }

    /// Start latency for one template (a spec `start_latency_ms` still wins).
    pub fn with_template_start_latency(
        self,
        template: impl Into<String>,
        latency: Latency,
    ) -> Self {
        self.with(|c| {
            c.template_start.insert(template.into(), latency);
        })
    }

    /// Stop latency ([`DEFAULT_STOP_LATENCY`] unless set).
    pub fn with_stop_latency(self, latency: Duration) -> Self {
        self.with(|c| c.stop_latency = latency)
    }

    /// Delay from running to the agent connecting ([`DEFAULT_CONNECT_LATENCY`]).
    pub fn with_connect_latency(self, latency: Duration) -> Self {
        self.with(|c| c.connect_latency = latency)
    }

    /// Keeps a warm pool of stopped instances (see [`WarmPool`]): terminate
    /// stops instead while the pool has room, launch restarts a stopped one.
    /// [`Capabilities::stop_resume`] is reported from then on.
    pub fn with_warm_pool(self, pool: WarmPool) -> Self {
        self.with(|c| c.warm_pool = Some(pool))
    }

    /// Each agent launch fails with `class` with probability `rate` (0–1),
    /// drawn from the seeded generator.
    pub fn with_failure_rate(self, rate: f64, class: ErrorClass) -> Self {
        self.with(|c| c.failure_rate = Some((rate.clamp(0.0, 1.0), class)))
    }

    /// The next `n` agent launches (in request order, over calls) fail with `class`.
    pub fn fail_next_launches(&self, n: usize, class: ErrorClass) {
        self.config()
            .fail_next
            .extend(std::iter::repeat_n(class, n));
    }

    /// Agents of instances launched from now on connect to `jenkins` (sets the
    /// link on the whole cloud; see [`MemoryCloud::connect_agents_to`]).
    pub fn connect_agents_to(&self, jenkins: &MemoryJenkins) {
        self.cloud.connect_agents_to(jenkins);
    }

    /// Makes one of this owner's pending or running instances fail now with
    /// `reason`, like a spot interruption. Returns whether it did.
    pub fn interrupt(&self, id: &CloudId, reason: &str) -> bool {
        let owned = self
            .cloud
            .lock()
            .instances
            .get(id)
            .is_some_and(|i| i.owner == self.owner);
        owned && self.cloud.interrupt(id, reason)
    }

    /// The cloud this backend works in.
    pub fn cloud(&self) -> &MemoryCloud {
        &self.cloud
    }

    /// Call counters.
    pub fn stats(&self) -> BackendStats {
        self.config().stats.clone()
    }

    /// Time this owner's instances spent in each state (see
    /// [`MemoryCloud::instance_seconds`]).
    pub fn instance_seconds(&self) -> StateSeconds {
        self.cloud.instance_seconds(Some(&self.owner))
    }

    /// The longest start (or warm-pool restart) plus stop plus connect latency
    /// any launch can get from this backend's settings (spec overrides
    /// excluded): how long to wait for things to settle.
    pub fn max_settle_time(&self) -> Duration {
        let c = self.config();
        let restart = c
            .warm_pool
            .map_or(Duration::ZERO, |p| p.restart_latency.max());
        let start = c
            .template_start
            .values()
            .map(Latency::max)
            .fold(c.start_latency.max().max(restart), Duration::max);
        start + c.stop_latency + c.connect_latency
    }

    fn launch_one(
        &self,
        cfg: &mut Config,
        spec: &MemorySpec,
        batch: &LaunchBatch<'_>,
        index: usize,
        now: Instant,
    ) -> Result<CloudId, BackendError> {
        let agent = &batch.agents[index];
        if agent.agent_name.is_empty() {
            return Err(BackendError::permanent(format!(
                "agents[{index}].agent_name: must not be empty"
            )));
        }
        let token = &agent.client_token;
        if token.is_empty() || token.len() > 64 || !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(BackendError::permanent(format!(
                "agents[{index}].client_token: must be 1-64 printable ASCII characters"
            )));
        }
        let mut cloud = self.cloud.lock_at(now);
        if let Some((id, name)) = cloud.tokens.get(&(self.owner.clone(), token.clone())) {
            if *name != agent.agent_name {
                return Err(BackendError::permanent(format!(
                    "agents[{index}].client_token: already used to launch another agent"
                )));
            }
            cfg.stats.idempotent_replays += 1;
            return Ok(id.clone());
        }
        if !cfg.fail_next.is_empty() {
            let class = cfg.fail_next.remove(0);
            return Err(BackendError::of_class(class, "injected launch failure"));
        }
        if let Some((rate, class)) = cfg.failure_rate {
            if cfg.rng.f64() < rate {
                return Err(BackendError::of_class(
                    class,
                    "injected random launch failure",
                ));
            }
        }
        if let Some(limit) = cloud.capacity_limit {
            if cloud.active_count() >= limit {
                return Err(BackendError::capacity(format!(
                    "the memory cloud is full ({limit} instances)"
                )));
            }
        }
        let connect = spec.connect_latency.unwrap_or(cfg.connect_latency);
        let stop_latency = spec.stop_latency.unwrap_or(cfg.stop_latency);
        let template = &batch.template.name;
        if let Some(pool) = cfg.warm_pool {
            if let Some(id) = cloud.stopped_member(&self.owner, template, now) {
                let running_at = now + pool.restart_latency.sample(&mut cfg.rng);
                let restart = Restart {
                    agent_name: &agent.agent_name,
                    secret: &agent.secret,
                    client_token: token,
                    running_at,
                    connect_at: running_at + connect,
                    stop_latency,
                };
                cloud.restart(&id, restart, now);
                cfg.stats.restarted += 1;
                return Ok(id);
            }
        }
        let start = match spec.start_latency {
            Some(d) => d,
            None => {
                let latency = cfg
                    .template_start
                    .get(&batch.template.name)
                    .copied()
                    .unwrap_or(cfg.start_latency);
                latency.sample(&mut cfg.rng)
            }
        };
        let running_at = now + start;
        let connect_at = running_at + connect;
        let id = CloudId(format!("{ID_PREFIX}{:08}", cloud.next_id));
        cloud.next_id += 1;
        let session = cloud
            .jenkins
            .as_ref()
            .map(|j| j.start_agent_session(&agent.agent_name, &agent.secret, connect_at));
        cloud.instances.insert(
            id.clone(),
            Instance {
                owner: self.owner.clone(),
                agent_name: agent.agent_name.clone(),
                template: batch.template.name.clone(),
                client_token: token.clone(),
                secret: agent.secret.clone(),
                launched_at: now,
                running_at,
                stop_latency,
                stop_requested: None,
                pooled: false,
                earlier: StateSeconds::default(),
                stop_reason: None,
                failed: None,
                session,
            },
        );
        cloud.tokens.insert(
            (self.owner.clone(), token.clone()),
            (id.clone(), agent.agent_name.clone()),
        );
        cfg.stats.launched += 1;
        Ok(id)
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> &str {
        "memory"
    }

    fn owner(&self) -> &OwnerId {
        &self.owner
    }

    fn capabilities(&self) -> Capabilities {
        let c = self.config();
        let stop_resume = c.capabilities.stop_resume || c.warm_pool.is_some();
        c.capabilities.clone().with_stop_resume(stop_resume)
    }

    fn validate_template(&self, template: &AgentTemplate) -> Result<(), Vec<String>> {
        MemorySpec::parse(&template.spec).map(|_| ())
    }

    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        let now = Instant::now();
        let mut cfg = self.config();
        let per_request = cfg.capabilities.max_launch_batch.max(1);
        cfg.stats.launch_calls += 1;
        let outcomes: Vec<LaunchOutcome> = match MemorySpec::parse(&batch.template.spec) {
            Err(problems) => {
                let message = format!(
                    "invalid template `{}`: {}",
                    batch.template.name,
                    problems.join("; ")
                );
                batch
                    .agents
                    .iter()
                    .map(|a| LaunchOutcome {
                        agent_name: a.agent_name.clone(),
                        result: Err(BackendError::permanent(message.clone())),
                    })
                    .collect()
            }
            Ok(spec) => {
                cfg.stats.launch_requests += batch.agents.len().div_ceil(per_request) as u64;
                (0..batch.agents.len())
                    .map(|i| LaunchOutcome {
                        agent_name: batch.agents[i].agent_name.clone(),
                        result: self.launch_one(&mut cfg, &spec, &batch, i, now),
                    })
                    .collect()
            }
        };
        for o in &outcomes {
            if let Err(e) = &o.result {
                *cfg.stats.launch_failures.entry(e.class()).or_default() += 1;
            }
        }
        outcomes
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        self.config().stats.describe_calls += 1;
        let now = Instant::now();
        let cloud = self.cloud.lock_at(now);
        Ok(ids
            .iter()
            .filter_map(|id| {
                let inst = cloud.instances.get(id).filter(|i| i.owner == self.owner)?;
                Some(cloud.describe(id, inst, now))
            })
            .collect())
    }

    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        let mut cfg = self.config();
        cfg.stats.terminate_calls += 1;
        let now = Instant::now();
        let mut cloud = self.cloud.lock_at(now);
        ids.iter()
            .map(|id| {
                let result = match cloud.instances.get(id) {
                    _ if !id.0.starts_with(ID_PREFIX) => Err(BackendError::permanent(format!(
                        "`{id}` is not a memory-cloud id"
                    ))),
                    // Unknown: never existed or forgotten after retention; gone either way.
                    None => Ok(()),
                    Some(i) if i.owner != self.owner => Err(BackendError::permanent(format!(
                        "`{id}` does not carry this owner's tag; left untouched"
                    ))),
                    Some(i) => {
                        if i.is_active() {
                            let pooled = cfg.warm_pool.is_some_and(|p| {
                                cloud.pool_members(&self.owner, &i.template) < p.max_stopped
                            });
                            cfg.stats.terminated += 1;
                            cfg.stats.pooled += u64::from(pooled);
                            cloud.stop(id, reason, pooled, now);
                        }
                        Ok(())
                    }
                };
                TerminateOutcome {
                    id: id.clone(),
                    result,
                }
            })
            .collect()
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        self.config().stats.list_calls += 1;
        let now = Instant::now();
        let cloud = self.cloud.lock_at(now);
        Ok(cloud
            .instances
            .iter()
            .filter(|(_, i)| i.owner == self.owner)
            .map(|(id, i)| cloud.describe(id, i, now))
            .collect())
    }
}
