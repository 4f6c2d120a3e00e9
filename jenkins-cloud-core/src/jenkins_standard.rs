//! A faithful model of Jenkins core's `NodeProvisioner` with its `StandardStrategy`
//! (`core/src/main/java/hudson/slaves/NodeProvisioner.java` and
//! `hudson/model/LoadStatistics.java`), as a baseline to compare against.
//!
//! What Jenkins does, per label, every [`TICK`] (10 s):
//!
//! 1. `LoadStatistics` updates exponential moving averages (EMAs) of the label's
//!    queue length, available (idle) executors and connecting executors:
//!    `avg = DECAY·avg + (1 − DECAY)·x`, every average starting at 0.
//! 2. `NodeProvisioner.update()` takes a snapshot of planned capacity (executors of
//!    launches not yet done) and updates its EMA the same way.
//! 3. If the queue is no longer than the available executors, nothing happens.
//! 4. `StandardStrategy.apply`: with `online` the online executors,
//!    `needSome = available + connecting == 0 && online + planned == 0 && queue > 0`.
//!    Provisioning is considered only when `max(available, avg available) < MARGIN`
//!    or `needSome`. Then, conservatively,
//!    `excess = min(avg queue, queue) − max(avg planned, planned) − min(avg connecting, connecting)`,
//!    raised to 1 when `needSome`; with `m = MARGIN + (MARGIN0 − MARGIN)·MARGIN_DECAY^online`,
//!    it provisions `floor(excess + m)` executors when `excess > 1 − m`.
//!
//! The consequences (derived from the formulas, checked by the tests): with no
//! executor at all a queued item gets an agent at the next tick (≤ 10 s); with
//! busy executors online the averaged queue must climb past `1 − m`, which takes
//! 12 ticks with one online executor (m = 0.3) and 22 ticks with ten or more
//! (m ≈ 0.1): 110–220 s after the first tick that sees the item.
//!
//! Mapping from [`PoolView`]: available = `idle_executors`; connecting =
//! `starting_executors`; planned capacity = `launching_executors`; online =
//! idle + busy; queue length = `queued`. Executors are turned into agents with
//! `ceil(executors / executors_per_agent)`, as cloud plugins' `provision` loops do.
//!
//! Choices where our setting differs from a controller's:
//! * Timing: the first tick for a template happens at the first call that sees
//!   it, then every [`TICK`]. Jenkins' first tick comes 100 s after *controller*
//!   start (`NodeProvisionerInvoker.INITIALDELAY`), a warm-up for static agents;
//!   afterwards its ticks are global, so a label that appears later is reviewed
//!   within 10 s. We model a controller that has been running for a while:
//!   adding 100 s per template would break the ≤ 10 s delay from zero executors.
//! * Jenkins updates `LoadStatistics` on its own 10 s timer with a random phase;
//!   we update every average at the tick itself, just before deciding (the
//!   fastest phase: real Jenkins can be up to one tick slower).
//! * When several ticks passed between two calls, the averages are updated once
//!   per tick with the same snapshot, and a single decision is taken at the end.
//! * Only this strategy runs, so Jenkins' `additionalPlannedCapacity` is 0.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::strategy::{PoolView, ProvisioningStrategy};

/// Period of Jenkins' load statistics and provisioner (`LoadStatistics.CLOCK`).
pub const TICK: Duration = Duration::from_secs(10);
/// Weight of the old value in each moving average (`LoadStatistics.DECAY`).
pub const DECAY: f32 = 0.9;
/// Margin `m` reached with many online executors (`NodeProvisioner.MARGIN`).
pub const MARGIN: f32 = 0.1;
/// Margin `m` with no online executor (`NodeProvisioner.MARGIN0`).
pub const MARGIN0: f32 = 0.5;
/// How fast the margin falls from `MARGIN0` to `MARGIN` per online executor
/// (`NodeProvisioner.MARGIN_DECAY`).
pub const MARGIN_DECAY: f32 = 0.5;

/// After this many missed ticks every average has converged (0.9^400 is below
/// `f32` precision): more are not replayed.
const MAX_CATCH_UP_TICKS: u64 = 400;

/// One exponential moving average (`hudson.model.TimeSeries`), starting at 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Ema(f32);

impl Ema {
    fn update(&mut self, x: f32) {
        self.0 = self.0 * DECAY + x * (1.0 - DECAY);
    }
}

/// Per-template state: the averages and the tick clock.
#[derive(Debug, Clone)]
struct LabelState {
    next_tick: Instant,
    queue: Ema,
    available: Ema,
    connecting: Ema,
    planned: Ema,
}

/// Jenkins core's `NodeProvisioner` with its `StandardStrategy`: see the module
/// documentation for the model and the delays it yields.
#[derive(Debug, Default)]
pub struct JenkinsStandard {
    templates: HashMap<String, LabelState>,
}

impl JenkinsStandard {
    /// A strategy that has seen no template yet.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The threshold margin `m` for `online` executors (`calcThresholdMargin`).
pub fn threshold_margin(online: u32) -> f32 {
    let f = (MARGIN as f64 + (MARGIN0 - MARGIN) as f64 * (MARGIN_DECAY as f64).powf(online as f64))
        as f32;
    f.clamp(0.0, 1.0)
}

impl LabelState {
    fn new(now: Instant) -> Self {
        Self {
            next_tick: now,
            queue: Ema::default(),
            available: Ema::default(),
            connecting: Ema::default(),
            planned: Ema::default(),
        }
    }

    fn tick(&mut self, pool: &PoolView) {
        self.queue.update(pool.queued as f32);
        self.available.update(pool.idle_executors as f32);
        self.connecting.update(pool.starting_executors as f32);
        self.planned.update(pool.launching_executors as f32);
    }

    /// Executors to provision now (`StandardStrategyImpl.apply`).
    fn decide(&self, pool: &PoolView) -> u32 {
        let queue = pool.queued;
        let available_now = pool.idle_executors;
        let connecting_now = pool.starting_executors;
        let planned_now = pool.launching_executors;
        let online = pool.online_executors();
        if queue <= available_now {
            return 0;
        }
        let need_some =
            available_now + connecting_now == 0 && online + planned_now == 0 && queue > 0;
        let available = (available_now as f32).max(self.available.0);
        if !(available < MARGIN || need_some) {
            return 0;
        }
        let qlen = self.queue.0.min(queue as f32);
        let connecting = self.connecting.0.min(connecting_now as f32);
        let planned = self.planned.0.max(planned_now as f32);
        let mut excess = qlen - planned - connecting;
        if need_some && excess < 1.0 {
            excess = 1.0;
        }
        let m = threshold_margin(online);
        if excess > 1.0 - m {
            (excess + m).floor() as u32
        } else {
            0
        }
    }
}

impl ProvisioningStrategy for JenkinsStandard {
    fn name(&self) -> &str {
        "jenkins-standard"
    }

    fn agents_to_launch(&mut self, template: &str, pool: &PoolView, now: Instant) -> u32 {
        let state = self
            .templates
            .entry(template.to_owned())
            .or_insert_with(|| LabelState::new(now));
        if now < state.next_tick {
            return 0;
        }
        let due = 1 + (now - state.next_tick).as_nanos() / TICK.as_nanos();
        let due = u64::try_from(due).unwrap_or(u64::MAX);
        for _ in 0..due.min(MAX_CATCH_UP_TICKS) {
            state.tick(pool);
        }
        state.next_tick = match u32::try_from(due).ok().and_then(|n| TICK.checked_mul(n)) {
            Some(step) if due <= MAX_CATCH_UP_TICKS => state.next_tick + step,
            _ => now + TICK,
        };
        let executors = state.decide(pool);
        executors.div_ceil(pool.executors_per_agent.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_matches_jenkins() {
        assert!((threshold_margin(0) - 0.5).abs() < 1e-6);
        assert!((threshold_margin(1) - 0.3).abs() < 1e-6);
        assert!((threshold_margin(2) - 0.2).abs() < 1e-6);
        assert!((threshold_margin(1000) - 0.1).abs() < 1e-6);
    }

    #[test]
    fn ema_follows_time_series_update() {
        let mut e = Ema::default();
        e.update(1.0);
        assert!((e.0 - 0.1).abs() < 1e-6);
        e.update(1.0);
        assert!((e.0 - 0.19).abs() < 1e-6);
    }
}
