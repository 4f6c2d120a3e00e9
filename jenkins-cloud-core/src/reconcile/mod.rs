//! The reconcile loop: observe → plan → act, once per pass.
//!
//! * **observe** reads the queue, our Jenkins nodes and every backend's owned
//!   resources, and folds them into the agent records ([`state::absorb`]). If
//!   Jenkins cannot be read, the pass stops there and changes nothing. If one
//!   backend cannot be read, only its templates are frozen for the pass (no
//!   launch, no retirement: acting on a partial view could delete healthy
//!   agents); the other backends are served as usual. Agents that die or time
//!   out before running a build count as failed launches of their template
//!   (backoff by error class, reset when one of its agents connects).
//! * **plan** ([`plan::plan`]) is a pure function of the records, the demand, the
//!   templates and the caps, returning [`Action`]s.
//! * **act** carries them out in batches and reports what succeeded and failed.
//!
//! Time comes from tokio (`tokio::time::Instant`), so tests and the simulator run
//! the loop in paused time. The loop keeps no state that cannot be rebuilt: after
//! a restart, the node markers and cloud tags give back every agent, so nothing
//! is launched twice and nothing is forgotten.

mod act;
mod backoff;
mod health;
pub mod plan;
pub mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::time::Instant;

pub use act::{client_token, ActReport, Launched, StepError};
pub use backoff::{Backoff, BackoffPolicy, Hold};
pub use health::{CloudRead, TemplateHealth};
pub use plan::{Action, Caps, Plan, Spilled, MAX_QUEUE_ITEMS_PER_PASS};
pub use state::{Agent, Observation};

use crate::backend::{Backend, CloudState, JenkinsEndpoint, OwnerId};
use crate::jenkins::{Demand, JenkinsApi, JenkinsError};
use crate::strategy::ProvisioningStrategy;
use crate::template::AgentTemplate;

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Whose nodes and resources these are.
    pub owner: OwnerId,
    /// First part of node names (`<prefix>-<template>-<random>`); usually the owner id.
    pub node_prefix: String,
    /// Where agents connect.
    pub endpoint: JenkinsEndpoint,
    /// Caps across templates.
    pub caps: Caps,
    /// Time between passes.
    pub poll_interval: Duration,
    /// How long a node may lack a cloud resource (or the reverse) before it is an orphan.
    pub orphan_grace: Duration,
    /// How long before re-sending a termination that has not taken effect.
    pub terminate_retry: Duration,
    /// Launch backoff after errors.
    pub backoff: BackoffPolicy,
    /// Seed for agent name suffixes (`None`: random).
    pub seed: Option<u64>,
    /// Most Jenkins calls (node creation, secret) in flight at once when a
    /// pass launches many agents.
    pub jenkins_concurrency: usize,
}

impl ReconcileConfig {
    /// Defaults: 10 s passes, 60 s orphan grace, 60 s termination retry, at
    /// most [`DEFAULT_LAUNCHES_PER_PASS`] launches per pass, no global cap.
    pub fn new(owner: OwnerId, endpoint: JenkinsEndpoint) -> Self {
        Self {
            node_prefix: owner.as_str().to_owned(),
            owner,
            endpoint,
            caps: Caps {
                launches_per_pass: Some(DEFAULT_LAUNCHES_PER_PASS),
                ..Caps::default()
            },
            poll_interval: Duration::from_secs(10),
            orphan_grace: Duration::from_secs(60),
            terminate_retry: Duration::from_secs(60),
            backoff: BackoffPolicy::default(),
            seed: None,
            jenkins_concurrency: 8,
        }
    }
}

/// Default bound of launches per pass ([`Caps::launches_per_pass`]): 100, the
/// Fargate launch burst of an account (AWS ECS service quotas: 100 tasks burst,
/// 20 per second).
pub const DEFAULT_LAUNCHES_PER_PASS: u32 = 100;

/// A template and the backend that runs its agents.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The template.
    pub template: Arc<AgentTemplate>,
    /// Its backend (several pools may share one).
    pub backend: Arc<dyn Backend>,
}

/// Why a pass could not observe; nothing was changed.
///
/// Only Jenkins, the source of demand, stops a pass: a backend that cannot be
/// read freezes its own templates and is reported by [`Reconciler::cloud_reads`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// Jenkins could not be read.
    #[error("reading Jenkins failed: {0}")]
    Jenkins(#[from] JenkinsError),
}

/// What one pass saw, decided and did.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    /// The plan.
    pub plan: Plan,
    /// What was done.
    pub act: ActReport,
}

/// Maps tokio time to wall-clock time: wall = epoch + (now − start). In paused
/// time (tests, simulator) wall time advances with the simulated clock.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    epoch_ms: u64,
    start: Instant,
}

impl WallClock {
    fn now_ms(&self, now: Instant) -> u64 {
        self.epoch_ms + now.duration_since(self.start).as_millis() as u64
    }
}

/// The reconcile loop over one Jenkins and any number of pools.
#[derive(Debug)]
pub struct Reconciler {
    config: ReconcileConfig,
    jenkins: Arc<dyn JenkinsApi>,
    templates: Vec<Arc<AgentTemplate>>,
    backends: Vec<Arc<dyn Backend>>,
    template_backend: BTreeMap<String, usize>,
    instance_backend: BTreeMap<String, usize>,
    warm_pool: BTreeMap<String, usize>,
    strategy: Box<dyn ProvisioningStrategy>,
    agents: BTreeMap<String, Agent>,
    backoff: Backoff,
    /// Per backend (by index), the error of its last read.
    cloud_errors: Vec<Option<String>>,
    /// Templates whose backend could not be read in the last pass, with why.
    frozen: BTreeMap<String, String>,
    /// Per template, the problem last shown in Jenkins (without its countdown).
    reported: BTreeMap<String, Option<String>>,
    clock: WallClock,
    rng: fastrand::Rng,
}

impl Reconciler {
    /// A loop over `pools` (in priority order: a queue item goes to the first
    /// template that can take it) with wall time taken from the system clock.
    pub fn new(
        config: ReconcileConfig,
        jenkins: Arc<dyn JenkinsApi>,
        pools: Vec<Pool>,
        strategy: Box<dyn ProvisioningStrategy>,
    ) -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self::with_epoch(config, jenkins, pools, strategy, epoch_ms)
    }

    /// Like [`Reconciler::new`], with wall time starting at `epoch_ms` (ms since the
    /// Unix epoch) now: for simulations that replay a given day.
    pub fn with_epoch(
        config: ReconcileConfig,
        jenkins: Arc<dyn JenkinsApi>,
        pools: Vec<Pool>,
        strategy: Box<dyn ProvisioningStrategy>,
        epoch_ms: u64,
    ) -> Self {
        let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
        let mut template_backend = BTreeMap::new();
        for pool in &pools {
            let index = match backends.iter().position(|b| Arc::ptr_eq(b, &pool.backend)) {
                Some(i) => i,
                None => {
                    backends.push(Arc::clone(&pool.backend));
                    backends.len() - 1
                }
            };
            template_backend.insert(pool.template.name.clone(), index);
        }
        let rng = match config.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        Self {
            backoff: Backoff::new(config.backoff.clone()),
            cloud_errors: vec![None; backends.len()],
            frozen: BTreeMap::new(),
            reported: BTreeMap::new(),
            config,
            jenkins,
            templates: pools.into_iter().map(|p| p.template).collect(),
            backends,
            template_backend,
            instance_backend: BTreeMap::new(),
            warm_pool: BTreeMap::new(),
            strategy,
            agents: BTreeMap::new(),
            clock: WallClock {
                epoch_ms,
                start: Instant::now(),
            },
            rng,
        }
    }

    /// The agents currently tracked.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// Warm-pool members (stopped or stopping resources assigned to no agent,
    /// see [`CloudState::Stopped`]) per template name, as of the last
    /// successful observation. They are not agents and count toward no cap.
    pub fn warm_pool(&self) -> &BTreeMap<String, usize> {
        &self.warm_pool
    }

    /// The loop's settings.
    pub fn config(&self) -> &ReconcileConfig {
        &self.config
    }

    fn template(&self, name: &str) -> Option<(Arc<AgentTemplate>, usize)> {
        let template = self.templates.iter().find(|t| t.name == name)?;
        Some((Arc::clone(template), *self.template_backend.get(name)?))
    }

    /// Reads Jenkins and every backend and folds the result into the agent records.
    ///
    /// A backend that cannot be listed freezes only its own templates for this
    /// pass (see [`Reconciler::cloud_reads`]): their agents keep their records,
    /// and the plan neither launches nor retires any of them. Jenkins is the
    /// source of demand: when it cannot be read, the pass stops here.
    pub async fn observe(&mut self) -> Result<Demand, ObserveError> {
        let now = Instant::now();
        let demand = self.jenkins.demand().await?;
        let nodes = self.jenkins.nodes().await?;
        let mut obs = Observation {
            wall_ms: self.clock.now_ms(now),
            ..Observation::default()
        };
        for node in nodes {
            obs.nodes.insert(node.name.clone(), node);
        }
        let previous_backend = std::mem::take(&mut self.instance_backend);
        let mut warm_pool = BTreeMap::new();
        let mut failed: BTreeMap<usize, String> = BTreeMap::new();
        for index in 0..self.backends.len() {
            let listed = match self.backends[index].list_owned().await {
                Ok(listed) => {
                    self.note_cloud_read(index, None);
                    listed
                }
                Err(error) => {
                    self.note_cloud_read(index, Some(error.to_string()));
                    failed.insert(index, error.to_string());
                    continue;
                }
            };
            // Warm-pool members (stopped, assigned to no agent) are not agents.
            let (listed, pooled): (Vec<_>, Vec<_>) =
                listed.into_iter().partition(|i| !i.agent_name.is_empty());
            for member in pooled {
                if matches!(member.state, CloudState::Stopped | CloudState::Stopping) {
                    *warm_pool.entry(member.template).or_default() += 1;
                }
            }
            for instance in listed {
                let newer = match obs.instances.get(&instance.agent_name) {
                    Some(existing) => existing.state.is_gone() && !instance.state.is_gone(),
                    None => true,
                };
                if newer {
                    self.instance_backend
                        .insert(instance.agent_name.clone(), index);
                    obs.instances.insert(instance.agent_name.clone(), instance);
                }
            }
        }
        self.frozen = self.frozen_templates(&failed, &previous_backend, &obs);
        for (agent, index) in previous_backend {
            if failed.contains_key(&index) {
                self.instance_backend.entry(agent).or_insert(index);
            }
        }
        for template in self.frozen.keys() {
            if let Some(&n) = self.warm_pool.get(template) {
                warm_pool.insert(template.clone(), n);
            }
        }
        obs.frozen = self.frozen.keys().cloned().collect();
        self.warm_pool = warm_pool;
        let unconnected: BTreeSet<String> = self
            .agents
            .values()
            .filter(|a| !a.ever_connected)
            .map(|a| a.name.clone())
            .collect();
        state::absorb(&mut self.agents, &obs, now, self.config.orphan_grace);
        self.account_failures(&unconnected, now);
        self.agents
            .retain(|_, a| a.state != crate::lifecycle::AgentState::Terminated);
        Ok(demand)
    }

    /// The templates to freeze this pass: those of a backend that could not be
    /// read, and (while any could not) templates no longer configured whose
    /// agents no readable backend reports, as their resource may be on it.
    fn frozen_templates(
        &self,
        failed: &BTreeMap<usize, String>,
        previous_backend: &BTreeMap<String, usize>,
        obs: &Observation,
    ) -> BTreeMap<String, String> {
        let mut frozen = BTreeMap::new();
        if failed.is_empty() {
            return frozen;
        }
        for (template, index) in &self.template_backend {
            if let Some(error) = failed.get(index) {
                frozen.insert(template.clone(), error.clone());
            }
        }
        let unconfigured = self
            .agents
            .values()
            .map(|a| (&a.name, &a.template))
            .chain(obs.nodes.values().map(|n| (&n.name, &n.marker.template)))
            .filter(|(name, template)| {
                !self.template_backend.contains_key(*template) && !obs.instances.contains_key(*name)
            });
        for (name, template) in unconfigured {
            let error = match previous_backend.get(name) {
                Some(index) => failed.get(index).cloned(),
                None => failed.values().next().cloned(),
            };
            if let Some(error) = error {
                frozen.entry(template.clone()).or_insert(error);
            }
        }
        frozen
    }

    /// Plans for `demand` against the current records without acting.
    pub fn plan(&mut self, demand: &Demand) -> Plan {
        let now = Instant::now();
        let blocked = self.backoff.blocked_until();
        let input = plan::PlanInput {
            templates: &self.templates,
            agents: &self.agents,
            demand,
            caps: &self.config.caps,
            blocked_until: &blocked,
            frozen: &self.frozen,
            now,
            wall_secs: self.clock.now_ms(now) / 1000,
            terminate_retry: self.config.terminate_retry,
        };
        plan::plan(&input, self.strategy.as_mut())
    }

    /// Observes and plans, changing nothing (the `plan` command).
    pub async fn dry_run(&mut self) -> Result<Plan, ObserveError> {
        let demand = self.observe().await?;
        Ok(self.plan(&demand))
    }

    /// One full pass: observe, plan, act.
    pub async fn run_once(&mut self) -> Result<PassReport, ObserveError> {
        let demand = self.observe().await?;
        let plan = self.plan(&demand);
        let now = Instant::now();
        let wall_ms = self.clock.now_ms(now);
        let act = self.act(&plan.actions, now, wall_ms).await;
        let queued: BTreeMap<u64, u64> = demand
            .items
            .iter()
            .map(|i| (i.id, i.in_queue_since_ms))
            .collect();
        for launched in &act.launched {
            let oldest = launched.serves.iter().filter_map(|id| queued.get(id)).min();
            if let (Some(agent), Some(ms)) = (self.agents.get_mut(&launched.agent), oldest) {
                let waited = Duration::from_millis(wall_ms.saturating_sub(*ms));
                agent.queued_since = Some(now.checked_sub(waited).unwrap_or(now));
            }
        }
        for e in &act.errors {
            tracing::warn!(step = e.step, agent = ?e.agent, class = %e.class, error = %e.message, "step failed");
        }
        self.report_problems().await;
        Ok(PassReport { plan, act })
    }

    /// Runs passes every `poll_interval` until `shutdown` completes; the pass in
    /// progress is finished first. Each report goes to `on_pass`.
    pub async fn run<F>(
        &mut self,
        shutdown: F,
        mut on_pass: impl FnMut(&Result<PassReport, ObserveError>),
    ) where
        F: Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.config.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            let result = self.run_once().await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, "pass skipped: nothing changed");
            }
            on_pass(&result);
        }
    }
}

#[cfg(test)]
#[path = "act_tests.rs"]
mod act_tests;
