//! The shared in-memory cloud: every owner's instances, capacity, retention and
//! the link to an in-memory controller.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Add;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::backend::{CloudId, CloudInstance, CloudState, OwnerId};
use crate::memory::MemoryJenkins;
use crate::secret::Secret;

/// The wall-clock time tokio time zero maps to by default: 2025-01-01T00:00:00Z.
pub const DEFAULT_EPOCH_SECS: u64 = 1_735_689_600;

/// How long gone (terminated or failed) instances stay listed by default, as ECS
/// keeps stopped tasks for about an hour.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// Time spent by instances in each billable state, summed over every life of
/// an instance a warm pool stopped and restarted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSeconds {
    /// Launched or restarted, not running yet (Fargate bills image pulls: this
    /// costs too).
    pub pending: Duration,
    /// Running.
    pub running: Duration,
    /// Stopping (towards terminated, or towards stopped in a warm pool).
    pub stopping: Duration,
    /// Stopped in a warm pool ([`WarmPool`](super::WarmPool)): no compute, only
    /// storage is billed. Zero without a warm pool.
    pub stopped: Duration,
}

impl StateSeconds {
    /// Pending + running + stopping: the instance's compute time (`stopped`
    /// excluded).
    pub fn total(&self) -> Duration {
        self.pending + self.running + self.stopping
    }
}

impl Add for StateSeconds {
    type Output = StateSeconds;
    fn add(self, o: StateSeconds) -> StateSeconds {
        StateSeconds {
            pending: self.pending + o.pending,
            running: self.running + o.running,
            stopping: self.stopping + o.stopping,
            stopped: self.stopped + o.stopped,
        }
    }
}

/// One instance as the cloud itself sees it (any owner), for tests and simulators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// The owner tag.
    pub owner: OwnerId,
    /// The instance as its owner's backend would describe it.
    pub instance: CloudInstance,
    /// The client token it was launched with.
    pub client_token: String,
    /// The reason given to terminate it, if it was terminated.
    pub stop_reason: Option<String>,
    /// The agent secret it was started with (what a container or instance
    /// would hold in its environment); for tests that play the agent.
    pub secret: Secret,
}

#[derive(Debug)]
pub(super) struct Instance {
    pub(super) owner: OwnerId,
    pub(super) agent_name: String,
    pub(super) template: String,
    pub(super) client_token: String,
    pub(super) secret: Secret,
    /// Start of the current life: the launch, or the last warm-pool restart.
    pub(super) launched_at: Instant,
    pub(super) running_at: Instant,
    pub(super) stop_latency: Duration,
    pub(super) stop_requested: Option<Instant>,
    /// The requested stop leads to `Stopped` in the warm pool, not `Terminated`.
    pub(super) pooled: bool,
    /// Time spent in the lives before the current one (warm-pool restarts).
    pub(super) earlier: StateSeconds,
    pub(super) stop_reason: Option<String>,
    pub(super) failed: Option<(Instant, String)>,
    pub(super) session: Option<u64>,
}

impl Instance {
    pub(super) fn state(&self, now: Instant) -> CloudState {
        if let Some((at, reason)) = &self.failed {
            if *at <= now {
                return CloudState::Failed(reason.clone());
            }
        }
        match self.stop_requested {
            Some(at) if at + self.stop_latency <= now && self.pooled => CloudState::Stopped,
            Some(at) if at + self.stop_latency <= now => CloudState::Terminated,
            Some(_) => CloudState::Stopping,
            None if self.running_at <= now => CloudState::Running,
            None => CloudState::Pending,
        }
    }

    /// Pending or running: holds capacity and may still do work.
    pub(super) fn is_active(&self) -> bool {
        self.failed.is_none() && self.stop_requested.is_none()
    }

    /// When the instance was gone for good; `None` while alive or in a warm
    /// pool (never forgotten).
    fn gone_at(&self) -> Option<Instant> {
        match (&self.failed, self.stop_requested) {
            (Some((at, _)), _) => Some(*at),
            (None, Some(_)) if self.pooled => None,
            (None, Some(at)) => Some(at + self.stop_latency),
            (None, None) => None,
        }
    }

    /// Every life's time up to `now`.
    pub(super) fn seconds(&self, now: Instant) -> StateSeconds {
        self.earlier + self.life_seconds(now)
    }

    /// The current life's time up to `now`, its stopped time included.
    pub(super) fn life_seconds(&self, now: Instant) -> StateSeconds {
        let span = |from: Instant, to: Instant| to.min(now).saturating_duration_since(from);
        let active_end = match (&self.failed, self.stop_requested) {
            (Some((at, _)), _) => *at,
            (None, Some(at)) => at,
            (None, None) => now,
        };
        let (stopping, stopped) = match (&self.failed, self.stop_requested) {
            (None, Some(at)) => {
                let stopped_at = at + self.stop_latency;
                let stopped = if self.pooled {
                    now.saturating_duration_since(stopped_at)
                } else {
                    Duration::ZERO
                };
                (span(at, stopped_at), stopped)
            }
            _ => (Duration::ZERO, Duration::ZERO),
        };
        StateSeconds {
            pending: span(self.launched_at, self.running_at.min(active_end)),
            running: span(self.running_at, active_end),
            stopping,
            stopped,
        }
    }
}

pub(super) struct CloudInner {
    epoch: SystemTime,
    base: Instant,
    pub(super) next_id: u64,
    pub(super) instances: BTreeMap<CloudId, Instance>,
    pub(super) tokens: BTreeMap<(OwnerId, String), (CloudId, String)>,
    pub(super) capacity_limit: Option<usize>,
    retention: Duration,
    pub(super) jenkins: Option<MemoryJenkins>,
    forgotten: BTreeMap<OwnerId, StateSeconds>,
}

impl CloudInner {
    pub(super) fn wall(&self, at: Instant) -> SystemTime {
        self.epoch + at.saturating_duration_since(self.base)
    }

    pub(super) fn describe(&self, id: &CloudId, inst: &Instance, now: Instant) -> CloudInstance {
        CloudInstance {
            id: id.clone(),
            agent_name: inst.agent_name.clone(),
            template: inst.template.clone(),
            state: inst.state(now),
            launched_at: Some(self.wall(inst.launched_at)),
        }
    }

    /// Forgets instances gone longer than the retention period.
    fn prune(&mut self, now: Instant) {
        let retention = self.retention;
        let expired: Vec<CloudId> = self
            .instances
            .iter()
            .filter(|(_, i)| i.gone_at().is_some_and(|g| g + retention <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(inst) = self.instances.remove(&id) {
                let acc = self.forgotten.entry(inst.owner.clone()).or_default();
                *acc = *acc + inst.seconds(now);
            }
        }
    }

    /// Stops an instance now (idempotent); disconnects its agent. `pooled`:
    /// into a warm pool (ends `Stopped`, assigned to no agent: its agent name
    /// is cleared at once, as EC2 clears the agent tag), else towards
    /// `Terminated`.
    pub(super) fn stop(&mut self, id: &CloudId, reason: &str, pooled: bool, now: Instant) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if !inst.is_active() {
            return;
        }
        inst.stop_requested = Some(now);
        inst.stop_reason = Some(reason.to_owned());
        inst.pooled = pooled;
        if pooled {
            inst.agent_name.clear();
        }
        if let (Some(session), Some(j)) = (inst.session, &self.jenkins) {
            j.end_agent_session(session, now);
        }
    }

    pub(super) fn active_count(&self) -> usize {
        self.instances.values().filter(|i| i.is_active()).count()
    }
}

/// An in-memory cloud shared by any number of [`MemoryBackend`](super::MemoryBackend)s.
///
/// Cheap to clone: clones share one store. Two backends with different owners
/// over one cloud see one set of instances, each only its own through the
/// [`Backend`](crate::backend::Backend) trait; a backend built later over the same
/// cloud (a "restarted" program) finds what the earlier one launched.
///
/// Time is tokio time (so tests can run paused); wall-clock times are derived
/// from an epoch ([`DEFAULT_EPOCH_SECS`] unless [`MemoryCloud::with_epoch`]).
#[derive(Clone)]
pub struct MemoryCloud {
    pub(super) inner: Arc<Mutex<CloudInner>>,
}

impl fmt::Debug for MemoryCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryCloud")
            .field("instances", &inner.instances.len())
            .field("capacity_limit", &inner.capacity_limit)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryCloud {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryCloud {
    /// An empty cloud with the default epoch, no capacity limit and 1 h retention.
    pub fn new() -> Self {
        Self::with_epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(DEFAULT_EPOCH_SECS))
    }

    /// An empty cloud whose tokio time "now" corresponds to `epoch`.
    pub fn with_epoch(epoch: SystemTime) -> Self {
        Self {
            inner: Arc::new(Mutex::new(CloudInner {
                epoch,
                base: Instant::now(),
                next_id: 1,
                instances: BTreeMap::new(),
                tokens: BTreeMap::new(),
                capacity_limit: None,
                retention: DEFAULT_RETENTION,
                jenkins: None,
                forgotten: BTreeMap::new(),
            })),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, CloudInner> {
        // A panic while holding the lock leaves consistent data: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the store after forgetting instances past retention.
    pub(super) fn lock_at(&self, now: Instant) -> MutexGuard<'_, CloudInner> {
        let mut inner = self.lock();
        inner.prune(now);
        inner
    }

    /// At most `limit` instances pending or running at once, over all owners;
    /// launches beyond it fail with `Capacity`. `None` removes the limit.
    pub fn set_capacity_limit(&self, limit: Option<usize>) {
        self.lock().capacity_limit = limit;
    }

    /// How long terminated and failed instances stay listed.
    pub fn set_retention(&self, retention: Duration) {
        self.lock().retention = retention;
    }

    /// From now on, agents of instances launched in this cloud connect to
    /// `jenkins` once running (see [`MemoryBackend`](super::MemoryBackend)).
    pub fn connect_agents_to(&self, jenkins: &MemoryJenkins) {
        self.lock().jenkins = Some(jenkins.clone());
    }

    /// Makes a pending or running instance fail now with `reason` (a spot
    /// interruption, an image that cannot be pulled…); its agent disconnects.
    /// Returns whether the instance was pending or running (`false` for one
    /// stopping or stopped in a warm pool: it is left alone).
    pub fn interrupt(&self, id: &CloudId, reason: &str) -> bool {
        let now = Instant::now();
        let mut inner = self.lock_at(now);
        let Some(inst) = inner.instances.get_mut(id) else {
            return false;
        };
        if !inst.is_active() {
            return false;
        }
        inst.failed = Some((now, reason.to_owned()));
        if let (Some(session), Some(j)) = (inst.session, &inner.jenkins) {
            j.end_agent_session(session, now);
        }
        true
    }

    /// Every instance not yet forgotten, of every owner, in id order; warm-pool
    /// members (stopping or stopped, never forgotten) have an empty agent name.
    pub fn instances(&self) -> Vec<InstanceRecord> {
        let now = Instant::now();
        let inner = self.lock_at(now);
        inner
            .instances
            .iter()
            .map(|(id, i)| InstanceRecord {
                owner: i.owner.clone(),
                instance: inner.describe(id, i, now),
                client_token: i.client_token.clone(),
                stop_reason: i.stop_reason.clone(),
                secret: i.secret.clone(),
            })
            .collect()
    }

    /// Instances pending or running now, over all owners (stopped warm-pool
    /// members hold no capacity and are not counted).
    pub fn active_count(&self) -> usize {
        self.lock_at(Instant::now()).active_count()
    }

    /// Time spent pending, running, stopping and stopped (warm pool) by the
    /// instances of `owner` (or of every owner), over all their lives,
    /// forgotten ones included: the basis of cost.
    pub fn instance_seconds(&self, owner: Option<&OwnerId>) -> StateSeconds {
        let now = Instant::now();
        let inner = self.lock_at(now);
        let live = inner
            .instances
            .values()
            .filter(|i| owner.is_none_or(|o| &i.owner == o))
            .fold(StateSeconds::default(), |acc, i| acc + i.seconds(now));
        inner
            .forgotten
            .iter()
            .filter(|(o, _)| owner.is_none_or(|want| *o == want))
            .fold(live, |acc, (_, s)| acc + *s)
    }

    /// The wall-clock time of a tokio instant in this cloud.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        self.lock().wall(at)
    }
}
