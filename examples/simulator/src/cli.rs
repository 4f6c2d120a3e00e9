//! The command line of the simulator, shared by `jenkins-cloud-sim` and
//! `jenkins-cloud simulate`: options, their checking, and the run that prints a
//! table or JSON (plus an SVG chart when asked).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::import::{import_jenkins, ImportOptions};
use crate::{Model, SimOptions, SimTemplate, StrategyKind, Trace};
use clap::{Args, ValueEnum};

/// Output format of `simulate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimFormat {
    /// A comparison table.
    Table,
    /// The full report as JSON.
    Json,
}

/// The simulator's options (`jenkins-cloud-sim` and `jenkins-cloud simulate`).
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Trace file (CSV `submit_s,label,duration_s[,task]` or JSON); default: the built-in day.
    #[arg(long, conflicts_with = "jenkins_history")]
    pub trace: Option<PathBuf>,
    /// Jenkins build history (`/api/json?tree=jobs[name,builds[timestamp,duration,builtOn],jobs[…]]`) to replay.
    #[arg(long)]
    pub jenkins_history: Option<PathBuf>,
    /// With --jenkins-history: NODE=LABEL maps a node name (or name prefix) to a label expression.
    #[arg(long = "node-label", value_name = "NODE=LABEL")]
    pub node_labels: Vec<String>,
    /// With --jenkins-history: label for unmapped nodes (default: any node).
    #[arg(long)]
    pub default_label: Option<String>,
    /// Latency and cost model (JSON); default: the built-in AWS model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Templates (JSON list of {name, labels, profile, executors}); default: built-in
    /// for the built-in trace, one per label (profile --profile) otherwise.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Profile of derived templates.
    #[arg(long, default_value = "fargate-small")]
    pub profile: String,
    /// Strategies, comma-separated (default, one-shot, warm-pool, jenkins-standard, amazon-ecs, oracle).
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<String>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds between reconcile passes.
    #[arg(long, default_value_t = 1.0)]
    pub poll_interval: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SimFormat::Table)]
    pub format: SimFormat,
    /// Write an SVG chart here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl Default for SimulateArgs {
    fn default() -> Self {
        Self {
            trace: None,
            jenkins_history: None,
            node_labels: Vec::new(),
            default_label: None,
            model: None,
            templates: None,
            profile: "fargate-small".to_owned(),
            strategies: Vec::new(),
            seed: 1,
            poll_interval: 1.0,
            format: SimFormat::Table,
            svg: None,
            quiet: true,
        }
    }
}

/// Largest trace, history or model file read: 256 MiB.
pub const MAX_INPUT_BYTES: u64 = 256 << 20;

fn read(path: &Path) -> Result<String, String> {
    jenkins_cloud_core::files::read_text(path, MAX_INPUT_BYTES)
}

/// The simulator options of `args` (files read and checked; each error names
/// the option or file).
pub fn options(args: &SimulateArgs) -> Result<SimOptions, String> {
    let mut o = SimOptions::default();
    let mut custom_trace = true;
    if let Some(path) = &args.trace {
        o.trace =
            Trace::parse(&read(path)?).map_err(|e| format!("--trace {}: {e}", path.display()))?;
    } else if let Some(path) = &args.jenkins_history {
        let mut import = ImportOptions {
            default_label: args.default_label.clone(),
            ..ImportOptions::default()
        };
        for pair in &args.node_labels {
            let (node, label) = pair
                .split_once('=')
                .ok_or_else(|| format!("--node-label `{pair}`: expected NODE=LABEL"))?;
            import.node_labels.insert(node.to_owned(), label.to_owned());
        }
        let imported = import_jenkins(&read(path)?, &import)
            .map_err(|e| format!("--jenkins-history {}: {e}", path.display()))?;
        eprintln!(
            "imported {} builds of {} jobs ({} skipped)",
            imported.trace.builds.len(),
            imported.jobs,
            imported.skipped
        );
        o.trace = imported.trace;
    } else {
        custom_trace = false;
    }
    if let Some(path) = &args.model {
        o.model =
            Model::parse(&read(path)?).map_err(|e| format!("--model {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.templates {
        o.templates = serde_json::from_str(&read(path)?)
            .map_err(|e| format!("--templates {}: {e}", path.display()))?;
    } else if custom_trace {
        o.templates = SimTemplate::derive(&o.trace, &args.profile)
            .map_err(|e| format!("--profile: {}", e.0))?;
    }
    if !args.strategies.is_empty() {
        o.strategies = args
            .strategies
            .iter()
            .map(|s| StrategyKind::from_name(s.trim()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--strategies: {}", e.0))?;
    }
    if !(args.poll_interval.is_finite() && args.poll_interval > 0.0) {
        return Err(format!(
            "--poll-interval: must be above zero, found {}",
            args.poll_interval
        ));
    }
    o.seed = args.seed;
    o.poll_interval = Duration::from_secs_f64(args.poll_interval);
    Ok(o)
}

/// Runs the simulation and returns what to print on stdout (the table or the
/// JSON report); writes the SVG chart when asked. A progress line goes to
/// stderr unless `quiet` or stderr is not a terminal (captured output gets no
/// carriage returns or escape sequences).
pub fn simulate(args: &SimulateArgs) -> Result<String, String> {
    use std::io::{IsTerminal as _, Write as _};
    let options = options(args)?;
    let started = std::time::Instant::now();
    let quiet = args.quiet || !std::io::stderr().is_terminal();
    let result = crate::run_with_progress(&options, |progress| {
        if quiet {
            return;
        }
        let parts: Vec<String> = progress
            .iter()
            .map(|p| {
                let (h, m) = (p.simulated_s / 3600, p.simulated_s % 3600 / 60);
                format!(
                    "{} {h:02}:{m:02}{}",
                    p.strategy,
                    if p.done { " done" } else { "" }
                )
            })
            .collect();
        eprint!(
            "\r\x1b[2K[{:>4.0}s] {}",
            started.elapsed().as_secs_f64(),
            parts.join(" | ")
        );
        let _ = std::io::stderr().flush();
    });
    if !quiet {
        eprintln!();
    }
    let report = result.map_err(|e| format!("simulation failed: {e}"))?;
    let mut out = match args.format {
        SimFormat::Table => report.table(),
        SimFormat::Json => format!("{}\n", report.to_json()),
    };
    if let Some(path) = &args.svg {
        std::fs::write(path, crate::svg::chart(&report, &options.trace))
            .map_err(|e| format!("--svg {}: {e}", path.display()))?;
    } else if args.format == SimFormat::Table {
        out.push_str("(--svg PATH writes a chart, --format json the full report)\n");
    }
    Ok(out)
}
