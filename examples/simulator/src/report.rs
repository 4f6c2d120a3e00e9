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

/// Queue waits of the builds that asked for one label expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelWaits {
    /// The label expression as Jenkins would print it; [`ANY_LABEL`] for builds
    /// that asked for no label.
    pub label: String,
    /// Their waits.
    pub waits: WaitStats,
}

/// How [`LabelWaits::label`] names builds without a label expression.
pub const ANY_LABEL: &str = "(any)";

/// Groups `(label, wait)` pairs into per-label statistics, sorted by label.
pub(crate) fn waits_by_label(
    waits: impl IntoIterator<Item = (Option<String>, f64)>,
) -> Vec<LabelWaits> {
    let mut groups: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for (label, wait) in waits {
        groups
            .entry(label.unwrap_or_else(|| ANY_LABEL.to_owned()))
            .or_default()
            .push(wait);
    }
    groups
        .into_iter()
        .map(|(label, mut w)| LabelWaits {
            label,
            waits: WaitStats::of(&mut w),
        })
        .collect()
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
    /// Queue waits per label expression of the trace, sorted by label.
    pub waits_by_label: Vec<LabelWaits>,
    /// Hours instances existed (pending, running, stopping).
    pub agent_hours: f64,
    /// Executor-hours running without a build (includes the agent's connect time).
    pub idle_agent_hours: f64,
    /// Dollars, with per-second billing and the per-instance minimum.
    pub cost: f64,
    /// Instances created (restarts of stopped warm-pool instances are counted
    /// in `restarts`, not here).
    pub launches: u64,
    /// Agents served by restarting a stopped warm-pool instance (EC2).
    pub restarts: u64,
    /// Launches divided by the trace's builds.
    pub launches_per_build: f64,
    /// Agents (fresh or restarted) that never ran a build.
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

impl StrategyReport {
    /// The waits of builds that asked for `label` (as in [`LabelWaits::label`]).
    pub fn label_waits(&self, label: &str) -> Option<&WaitStats> {
        self.waits_by_label
            .iter()
            .find(|l| l.label == label)
            .map(|l| &l.waits)
    }
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
        out.push_str(&self.label_table());
        out
    }

    /// p95 queue wait per label (rows) and strategy (columns); empty when the
    /// trace has a single label.
    pub fn label_table(&self) -> String {
        let mut labels: Vec<&str> = self
            .strategies
            .iter()
            .flat_map(|s| s.waits_by_label.iter().map(|l| l.label.as_str()))
            .collect();
        labels.sort_unstable();
        labels.dedup();
        let mut out = String::new();
        if labels.len() < 2 {
            return out;
        }
        const HEADER: &str = "p95 wait s by label";
        let width = labels
            .iter()
            .map(|l| l.len())
            .max()
            .unwrap_or(0)
            .max(HEADER.len());
        let _ = write!(out, "\n{HEADER:<width$} {:>6}", "builds");
        for s in &self.strategies {
            let _ = write!(out, " {:>w$}", s.name, w = s.name.len().max(7));
        }
        out.push('\n');
        for label in labels {
            // Re-queued items add to a strategy's count: the smallest is the trace's.
            let count = self
                .strategies
                .iter()
                .filter_map(|s| s.label_waits(label))
                .map(|w| w.count)
                .min()
                .unwrap_or(0);
            let _ = write!(out, "{label:<width$} {count:>6}");
            for s in &self.strategies {
                let w = s.name.len().max(7);
                match s.label_waits(label) {
                    Some(stats) => {
                        let _ = write!(out, " {:>w$.1}", stats.p95);
                    }
                    None => {
                        let _ = write!(out, " {:>w$}", "-");
                    }
                }
            }
            out.push('\n');
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
