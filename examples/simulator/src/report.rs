//! Results: per-strategy figures, the table, JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::SimOptions;

/// Queue-wait distribution, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WaitStats {
    /// Waits counted (every queue item, retries included; items never started
    /// count with their wait up to the end).
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Longest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl WaitStats {
    /// Nearest-rank percentiles of `waits` (sorted in place).
    pub fn of(waits: &mut [f64]) -> WaitStats {
        if waits.is_empty() {
            return WaitStats::default();
        }
        waits.sort_by(f64::total_cmp);
        let rank =
            |p: f64| waits[((p * waits.len() as f64).ceil() as usize).clamp(1, waits.len()) - 1];
        WaitStats {
            count: waits.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: waits[waits.len() - 1],
            mean: waits.iter().sum::<f64>() / waits.len() as f64,
        }
    }
}

/// One point of the over-time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Seconds since the start of the trace.
    pub t_s: u64,
    /// Items waiting in the queue.
    pub queued: u64,
    /// Builds running.
    pub running: u64,
    /// Agents (cloud instances) pending or running.
    pub agents: u64,
}

/// What one strategy did on the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyReport {
    /// Strategy name.
    pub name: String,
    /// Queue waits.
    pub waits: WaitStats,
    /// Hours instances existed (pending, running, stopping).
    pub agent_hours: f64,
    /// Executor-hours running without a build (includes the agent's connect time).
    pub idle_agent_hours: f64,
    /// Dollars, with per-second billing and the per-instance minimum.
    pub cost: f64,
    /// Agents launched.
    pub launches: u64,
    /// Launches divided by the trace's builds.
    pub launches_per_build: f64,
    /// Launched agents that never ran a build.
    pub launches_never_used: u64,
    /// Builds started (retries included).
    pub builds_started: u64,
    /// Builds aborted by a lost agent (spot interruption); they are re-queued.
    pub builds_aborted: u64,
    /// Queue items that never started.
    pub unstarted: u64,
    /// Builds still running when the simulation stopped.
    pub cut: u64,
    /// Reconcile passes that failed to observe.
    pub failed_passes: u64,
    /// Simulated time, seconds.
    pub simulated_s: u64,
    /// Over-time samples.
    pub samples: Vec<Sample>,
    /// Wall-clock time the simulation took (not in JSON: not deterministic).
    #[serde(skip)]
    pub wall: Duration,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Seed used.
    pub seed: u64,
    /// Builds in the trace.
    pub builds: usize,
    /// Total build time in the trace, hours.
    pub build_hours: f64,
    /// Reconcile poll interval, seconds.
    pub poll_interval_s: f64,
    /// Templates (name → profile).
    pub templates: Vec<(String, String)>,
    /// One entry per strategy, in the order asked.
    pub strategies: Vec<StrategyReport>,
}

impl Report {
    pub(crate) fn new(options: &SimOptions, strategies: Vec<StrategyReport>) -> Report {
        Report {
            seed: options.seed,
            builds: options.trace.builds.len(),
            build_hours: options.trace.build_seconds() / 3600.0,
            poll_interval_s: options.poll_interval.as_secs_f64(),
            templates: options
                .templates
                .iter()
                .map(|t| (t.name.clone(), t.profile.clone()))
                .collect(),
            strategies,
        }
    }

    /// A strategy's report by name.
    pub fn strategy(&self, name: &str) -> Option<&StrategyReport> {
        self.strategies.iter().find(|s| s.name == name)
    }

    /// The report as pretty JSON (deterministic for a seed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }

    /// The plain-text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} builds, {:.1} build-hours, seed {}, poll {}s",
            self.builds, self.build_hours, self.seed, self.poll_interval_s
        );
        let _ = writeln!(
            out,
            "{:<17} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>9} {:>8} {:>8} {:>7} {:>6}",
            "strategy",
            "p50 s",
            "p95 s",
            "p99 s",
            "max s",
            "agent-h",
            "idle-h",
            "cost $",
            "launches",
            "per build",
            "unused",
            "wall s"
        );
        for s in &self.strategies {
            let _ = writeln!(
                out,
                "{:<17} {:>7.1} {:>7.1} {:>7.1} {:>7.0} {:>8.1} {:>8.1} {:>9.2} {:>8} {:>8.2} {:>7} {:>6.1}",
                s.name,
                s.waits.p50,
                s.waits.p95,
                s.waits.p99,
                s.waits.max,
                s.agent_hours,
                s.idle_agent_hours,
                s.cost,
                s.launches,
                s.launches_per_build,
                s.launches_never_used,
                s.wall.as_secs_f64()
            );
        }
        let notes: Vec<String> = self
            .strategies
            .iter()
            .filter(|s| s.unstarted + s.cut + s.builds_aborted + s.failed_passes > 0)
            .map(|s| {
                format!(
                    "{}: {} never started, {} cut at the end, {} aborted by interruptions (re-queued), {} failed passes",
                    s.name, s.unstarted, s.cut, s.builds_aborted, s.failed_passes
                )
            })
            .collect();
        for n in notes {
            let _ = writeln!(out, "  {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut w: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = WaitStats::of(&mut w);
        assert_eq!(
            (s.p50, s.p95, s.p99, s.max, s.count),
            (50.0, 95.0, 99.0, 100.0, 100)
        );
        assert_eq!(WaitStats::of(&mut []), WaitStats::default());
        assert_eq!(WaitStats::of(&mut [7.0]).p99, 7.0);
    }
}
