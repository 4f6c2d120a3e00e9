//! jenkins-cloud simulator: a discrete-event simulation, in tokio paused time,
//! that drives the **real** reconcile loop ([`Reconciler`](jenkins_cloud_core::reconcile::Reconciler))
//! over the in-memory Jenkins and cloud of `jenkins_cloud_core::memory`, and
//! compares provisioning strategies side by side on the same workload.
//!
//! ```no_run
//! let report = jenkins_cloud_sim::run(&jenkins_cloud_sim::SimOptions::default()).unwrap();
//! println!("{}", report.table());
//! ```
//!
//! * [`model`]: latency and cost models (a JSON file; built-in `models/aws.json`).
//! * [`trace`]: workloads (CSV / JSON files, the built-in day).
//! * [`import`]: Jenkins build history → trace.
//! * [`ecs`]: the amazon-ecs plugin's policy, a baseline.
//! * [`report`]: results, table, JSON; [`svg`]: the chart.
//!
//! Each strategy runs in a world of its own (controller, cloud, backends, loop)
//! on its own thread with a current-thread runtime in paused time; everything
//! random is seeded, so a seed gives the same [`Report`] every time.
#![deny(missing_docs)]

pub mod cli;
pub mod ecs;
pub mod import;
pub mod model;
mod oracle;
pub mod report;
pub mod svg;
pub mod trace;
mod world;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jenkins_cloud_core::label::{LabelExpr, LabelSet};
use jenkins_cloud_core::memory::{Latency, WarmPool};
use jenkins_cloud_core::retention::{MinIdleWindow, RetentionPolicy};
use serde::{Deserialize, Serialize};

pub use model::Model;
pub use report::{Report, StrategyReport};
pub use trace::Trace;

/// One agent template of a simulation: labels and the model profile its agents use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimTemplate {
    /// Template name (`a-z`, `0-9`, `-`).
    pub name: String,
    /// Labels its agents carry (space-separated).
    pub labels: String,
    /// Profile name in the model.
    pub profile: String,
    /// Executors per agent.
    #[serde(default = "one")]
    pub executors: u32,
}

fn one() -> u32 {
    1
}

impl SimTemplate {
    /// A one-executor template.
    pub fn new(name: &str, labels: &str, profile: &str) -> Self {
        Self {
            name: name.into(),
            labels: labels.into(),
            profile: profile.into(),
            executors: 1,
        }
    }

    /// The templates of the built-in scenario, matching [`Trace::builtin_day`].
    pub fn builtin() -> Vec<SimTemplate> {
        vec![
            Self::new("small", "linux small", "fargate-small"),
            Self::new("large", "linux large", "fargate-large-image"),
            Self::new("arm", "linux arm64", "fargate-arm"),
            Self::new("docker", "linux docker-host", "ec2-m6i-large"),
            Self::new("spot", "linux spot", "fargate-spot"),
        ]
    }

    /// One template per distinct label expression of `trace` (carrying the
    /// expression's atoms, so it matches), all with `profile`; a catch-all
    /// `any` template first if some builds have no label. For traces whose
    /// labels no configured template covers (imported histories).
    pub fn derive(trace: &Trace, profile: &str) -> Result<Vec<SimTemplate>, SimError> {
        let mut out: Vec<SimTemplate> = Vec::new();
        if trace.builds.iter().any(|b| b.label.is_none()) {
            out.push(Self::new("any", "any", profile));
        }
        let mut seen = std::collections::BTreeSet::new();
        for b in &trace.builds {
            let Some(text) = &b.label else { continue };
            let Ok(Some(expr)) = LabelExpr::parse_optional(text) else {
                continue;
            };
            if !seen.insert(expr.to_string()) {
                continue;
            }
            let atoms = expr.atoms().join(" ");
            if !expr.matches(&LabelSet::parse(&atoms)) {
                return Err(SimError(format!(
                    "label `{text}`: cannot derive a template for it (negations); give templates explicitly"
                )));
            }
            out.push(Self::new(&format!("t{}", out.len()), &atoms, profile));
        }
        Ok(out)
    }
}

/// A strategy compared by the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Our default: no-delay provisioning, 5-minute idle timeout.
    Default,
    /// Our default with one-shot templates (a fresh agent per build, retired
    /// after it): the recommended setting when cost matters most.
    OneShot,
    /// Our default plus warm pools: one idle agent per template at all times,
    /// four for the first template on weekdays 08:30–18:00; EC2 templates
    /// also keep up to [`EC2_WARM_POOL_STOPPED`] stopped instances to restart
    /// (when their profile has `restart_latency_s`).
    WarmPool,
    /// Jenkins core's NodeProvisioner with its StandardStrategy, 5-minute idle timeout.
    JenkinsStandard,
    /// The amazon-ecs plugin: planned capacity not subtracted, one-shot agents
    /// with 5-minute retention.
    AmazonEcs,
    /// Computed lower bound: every build waits exactly one start (+ connect)
    /// latency, costs its build time only.
    Oracle,
}

impl StrategyKind {
    /// Every strategy, in report order.
    pub const ALL: [StrategyKind; 6] = [
        StrategyKind::Default,
        StrategyKind::OneShot,
        StrategyKind::WarmPool,
        StrategyKind::JenkinsStandard,
        StrategyKind::AmazonEcs,
        StrategyKind::Oracle,
    ];

    /// The report name (`default`, `jenkins-standard`…).
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Default => "default",
            StrategyKind::OneShot => "one-shot",
            StrategyKind::WarmPool => "warm-pool",
            StrategyKind::JenkinsStandard => "jenkins-standard",
            StrategyKind::AmazonEcs => "amazon-ecs",
            StrategyKind::Oracle => "oracle",
        }
    }

    /// Parses a report name.
    pub fn from_name(name: &str) -> Result<StrategyKind, SimError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                SimError(format!(
                    "unknown strategy `{name}` (known: {})",
                    known.join(", ")
                ))
            })
    }

    /// The retention this strategy gives the template at `index`.
    pub(crate) fn retention(self, index: usize) -> RetentionPolicy {
        let mut r = RetentionPolicy::default();
        match self {
            StrategyKind::OneShot => r.one_shot = true,
            StrategyKind::WarmPool => {
                r.min_idle = 1;
                if index == 0 {
                    r.min_idle_windows = vec![MinIdleWindow {
                        window: "Mon-Fri 08:30-18:00".parse().expect("valid window"),
                        count: 4,
                    }];
                }
            }
            StrategyKind::AmazonEcs => {
                r.one_shot = true;
                r.idle_timeout = Some(Duration::from_secs(300));
            }
            StrategyKind::Default | StrategyKind::JenkinsStandard | StrategyKind::Oracle => {}
        }
        r
    }
}

/// Stopped instances the `warm-pool` strategy keeps per EC2 template: retiring
/// agents stop into the pool up to this many, launches restart them.
pub const EC2_WARM_POOL_STOPPED: usize = 10;

impl StrategyKind {
    /// The stopped-instance pool this strategy gives a template of `profile`:
    /// `warm-pool` on EC2 profiles with a restart latency, else none.
    pub(crate) fn stopped_pool(self, profile: &model::Profile) -> Option<WarmPool> {
        let (min, max) = profile.restart_range()?;
        (self == StrategyKind::WarmPool && profile.kind == model::Kind::Ec2).then_some(WarmPool {
            max_stopped: EC2_WARM_POOL_STOPPED,
            restart_latency: Latency::Uniform { min, max },
        })
    }
}

/// Everything a simulation needs. [`SimOptions::default`] is the built-in
/// scenario: the built-in day, model and templates, every strategy.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The workload.
    pub trace: Trace,
    /// Latency and cost model.
    pub model: Model,
    /// Templates, in priority order (a build goes to the first that can take it).
    pub templates: Vec<SimTemplate>,
    /// Strategies to compare.
    pub strategies: Vec<StrategyKind>,
    /// Seed of every random draw (latencies, names, interruptions).
    pub seed: u64,
    /// Time between reconcile passes (default 1 s; see `docs/simulator.md`).
    pub poll_interval: Duration,
    /// Period of the over-time samples (chart).
    pub sample_interval: Duration,
    /// After the last submission, how long to keep simulating before giving up
    /// on builds that have not finished (they are reported as unstarted or cut).
    pub max_tail: Duration,
    /// Strategies simulated at once, each on its own thread (default: the
    /// machine's parallelism). Does not change results.
    pub threads: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            trace: Trace::builtin_day(),
            model: Model::builtin(),
            templates: SimTemplate::builtin(),
            strategies: StrategyKind::ALL.to_vec(),
            seed: 1,
            poll_interval: Duration::from_secs(1),
            sample_interval: Duration::from_secs(60),
            max_tail: Duration::from_secs(12 * 3600),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A simulation that cannot run: bad templates, unknown profiles… The message
/// names the culprit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError(pub String);

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SimError {}

/// Progress of one strategy, for a progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Strategy name.
    pub strategy: &'static str,
    /// Simulated seconds done.
    pub simulated_s: u64,
    /// Whether it finished.
    pub done: bool,
}

impl SimOptions {
    /// Checks the options: templates' names, labels, profiles; the poll interval.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.templates.is_empty() {
            return Err(SimError("templates: at least one is needed".into()));
        }
        if self.poll_interval.is_zero() || self.sample_interval.is_zero() {
            return Err(SimError(
                "poll_interval and sample_interval must be above zero".into(),
            ));
        }
        for (i, t) in self.templates.iter().enumerate() {
            let valid = !t.name.is_empty()
                && t.name.len() <= 40
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return Err(SimError(format!(
                    "templates[{i}].name: `{}` must be 1-40 of a-z, 0-9, -",
                    t.name
                )));
            }
            if self.templates[..i].iter().any(|o| o.name == t.name) {
                return Err(SimError(format!(
                    "templates[{i}].name: `{}` is used twice",
                    t.name
                )));
            }
            if t.executors == 0 {
                return Err(SimError(format!(
                    "templates[{i}].executors: must be at least 1"
                )));
            }
            self.model
                .profile(&t.profile)
                .map_err(|e| SimError(format!("templates[{i}].profile: {}", e.0)))?;
        }
        Ok(())
    }
}

/// Runs every strategy of `options` and reports.
pub fn run(options: &SimOptions) -> Result<Report, SimError> {
    run_with_progress(options, |_| {})
}

/// Like [`run`], calling `progress` about four times a second (simulated time) from
/// the calling thread while the strategies run on worker threads.
pub fn run_with_progress(
    options: &SimOptions,
    mut progress: impl FnMut(&[Progress]),
) -> Result<Report, SimError> {
    options.validate()?;
    let mut strategies = Vec::new();
    for k in &options.strategies {
        if !strategies.contains(k) {
            strategies.push(*k);
        }
    }
    let simulated: Vec<StrategyKind> = strategies
        .iter()
        .copied()
        .filter(|k| *k != StrategyKind::Oracle)
        .collect();
    let clocks: Vec<AtomicU64> = simulated.iter().map(|_| AtomicU64::new(0)).collect();
    let finished: Vec<AtomicU64> = simulated.iter().map(|_| AtomicU64::new(0)).collect();
    let next = AtomicU64::new(0);
    let mut results: Vec<Option<Result<StrategyReport, SimError>>> =
        simulated.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..options.threads.clamp(1, simulated.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                        let Some(kind) = simulated.get(i) else { break };
                        let r = world::simulate(options, *kind, &clocks[i]);
                        finished[i].store(1, Ordering::SeqCst);
                        mine.push((i, r));
                    }
                    mine
                })
            })
            .collect();
        loop {
            let snapshot: Vec<Progress> = simulated
                .iter()
                .enumerate()
                .map(|(i, k)| Progress {
                    strategy: k.name(),
                    simulated_s: clocks[i].load(Ordering::Relaxed),
                    done: finished[i].load(Ordering::SeqCst) == 1,
                })
                .collect();
            progress(&snapshot);
            if snapshot.iter().all(|p| p.done) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        for w in workers {
            for (i, r) in w.join().expect("a simulation thread panicked") {
                results[i] = Some(r);
            }
        }
    });
    let mut reports = Vec::new();
    let mut by_kind = simulated.iter().zip(results);
    for kind in strategies {
        if kind == StrategyKind::Oracle {
            reports.push(oracle::oracle(options)?);
        } else {
            let (_, r) = by_kind.next().expect("one result per simulated strategy");
            reports.push(r.expect("every strategy ran")?);
        }
    }
    Ok(Report::new(options, reports))
}
