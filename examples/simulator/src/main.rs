//! `jenkins-cloud-sim`: compares provisioning strategies on a workload. With no
//! arguments it runs the built-in day with every strategy.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use jenkins_cloud_sim::import::{import_jenkins, ImportOptions};
use jenkins_cloud_sim::{Model, SimOptions, SimTemplate, StrategyKind, Trace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// Simulate elastic Jenkins agents: the real reconcile loop over an in-memory
/// Jenkins and cloud, strategies side by side, in simulated time.
#[derive(Debug, Parser)]
#[command(name = "jenkins-cloud-sim")]
struct Cli {
    /// Trace file (CSV `submit_s,label,duration_s[,task]` or JSON); default: the built-in day.
    #[arg(long, conflicts_with = "jenkins_history")]
    trace: Option<PathBuf>,
    /// Jenkins build history (`/api/json?tree=jobs[name,builds[timestamp,duration,builtOn],jobs[…]]`) to replay.
    #[arg(long)]
    jenkins_history: Option<PathBuf>,
    /// With --jenkins-history: NODE=LABEL maps a node name (or name prefix) to a label expression.
    #[arg(long = "node-label", value_name = "NODE=LABEL")]
    node_labels: Vec<String>,
    /// With --jenkins-history: label for unmapped nodes (default: any node).
    #[arg(long)]
    default_label: Option<String>,
    /// Latency and cost model (JSON); default: the built-in models/aws.json.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Templates (JSON list of {name, labels, profile, executors}); default: built-in
    /// for the built-in trace, one per label (profile --profile) otherwise.
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Profile of derived templates.
    #[arg(long, default_value = "fargate-small")]
    profile: String,
    /// Strategies, comma-separated (default, one-shot, warm-pool, jenkins-standard, amazon-ecs, oracle).
    #[arg(long, value_delimiter = ',')]
    strategies: Vec<String>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between reconcile passes.
    #[arg(long, default_value_t = 1.0)]
    poll_interval: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write an SVG chart here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn options(cli: &Cli) -> Result<SimOptions, String> {
    let mut o = SimOptions::default();
    let mut custom_trace = true;
    if let Some(path) = &cli.trace {
        o.trace = Trace::parse(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    } else if let Some(path) = &cli.jenkins_history {
        let mut import = ImportOptions {
            default_label: cli.default_label.clone(),
            ..ImportOptions::default()
        };
        for pair in &cli.node_labels {
            let (node, label) = pair
                .split_once('=')
                .ok_or_else(|| format!("--node-label `{pair}`: expected NODE=LABEL"))?;
            import.node_labels.insert(node.to_owned(), label.to_owned());
        }
        let imported = import_jenkins(&read(path)?, &import)
            .map_err(|e| format!("{}: {e}", path.display()))?;
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
    if let Some(path) = &cli.model {
        o.model = Model::parse(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &cli.templates {
        o.templates = serde_json::from_str(&read(path)?)
            .map_err(|e| format!("{}: templates: {e}", path.display()))?;
    } else if custom_trace {
        o.templates = SimTemplate::derive(&o.trace, &cli.profile).map_err(|e| e.0)?;
    }
    if !cli.strategies.is_empty() {
        o.strategies = cli
            .strategies
            .iter()
            .map(|s| StrategyKind::from_name(s.trim()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.0)?;
    }
    if !(cli.poll_interval.is_finite() && cli.poll_interval > 0.0) {
        return Err(format!(
            "--poll-interval: must be above zero, found {}",
            cli.poll_interval
        ));
    }
    o.seed = cli.seed;
    o.poll_interval = Duration::from_secs_f64(cli.poll_interval);
    Ok(o)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = match options(&cli) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let quiet = cli.quiet;
    let result = jenkins_cloud_sim::run_with_progress(&options, |progress| {
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
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.format {
        Format::Table => print!("{}", report.table()),
        Format::Json => println!("{}", report.to_json()),
    }
    if let Some(path) = &cli.svg {
        if let Err(e) = std::fs::write(path, jenkins_cloud_sim::svg::chart(&report, &options.trace))
        {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    } else if cli.format == Format::Table {
        println!("(--svg PATH writes a chart, --format json the full report)");
    }
    ExitCode::SUCCESS
}
