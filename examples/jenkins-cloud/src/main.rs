//! `jenkins-cloud`: elastic Jenkins agents on AWS Fargate and EC2.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use jenkins_cloud_cli::commands::aws::AwsHooks;
use jenkins_cloud_cli::commands::simulate::SimulateArgs;
use jenkins_cloud_cli::commands::{self, check, iam, import_jcasc, plan, run, simulate};
use jenkins_cloud_cli::config::Config;
use jenkins_cloud_cli::metrics::{self, Metrics};

#[derive(Parser)]
#[command(name = "jenkins-cloud", version, about)]
struct Cli {
    /// Configuration file.
    #[arg(short, long, global = true, default_value = "jenkins-cloud.yaml")]
    config: PathBuf,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum PolicyFormat {
    Json,
    Terraform,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// One reconcile pass, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Show what a pass would do; change nothing.
    Plan {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Validate the configuration file.
    Validate,
    /// Print the least-privilege IAM policy of the configuration.
    IamPolicy {
        /// `json` (an IAM policy document) or `terraform` (an
        /// `aws_iam_policy_document` data source).
        #[arg(long, value_enum, default_value = "json")]
        format: PolicyFormat,
    },
    /// Validate, then probe Jenkins and every cloud (read-only); non-zero exit on FAIL.
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Compare provisioning strategies in simulated time (no config, AWS or Jenkins).
    Simulate(SimulateArgs),
    /// Convert the amazon-ecs / ec2 plugin clouds of a JCasC file to this program's YAML.
    ImportJcasc {
        /// The JCasC file (`jenkins.yaml`).
        file: PathBuf,
        /// Write the configuration here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Keep JCasC variables (`${VAR}`) in fields copied as text instead
        /// of resolving them from the environment now.
        #[arg(long)]
        keep_variables: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: a log shipper reading a pipe
    // or file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn execute(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Command::Simulate(args) => {
            let args = args.clone();
            let out = tokio::task::spawn_blocking(move || simulate::simulate(&args))
                .await
                .map_err(|e| format!("simulation crashed: {e}"))?
                .map_err(|e| e.to_string())?;
            print!("{out}");
            return Ok(());
        }
        Command::ImportJcasc {
            file,
            output,
            keep_variables,
        } => {
            let text = jenkins_cloud_core::files::read_text(file, 16 << 20)
                .map_err(|e| format!("import-jcasc: {e}"))?;
            let options = import_jcasc::ImportOptions {
                keep_variables: *keep_variables,
            };
            let imported = import_jcasc::import_with(
                &text,
                &file.display().to_string(),
                &options,
                &jenkins_cloud_cli::config::process_env,
            )
            .map_err(|e| e.to_string())?;
            for note in &imported.notes {
                eprintln!("{note}");
            }
            eprintln!("\nBefore the first run:");
            for (i, step) in imported.checklist.iter().enumerate() {
                eprintln!("  {}. {step}", i + 1);
            }
            match output {
                Some(path) => std::fs::write(path, &imported.yaml)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
                None => print!("{}", imported.yaml),
            }
            return Ok(());
        }
        _ => {}
    }
    let config = Config::load(&cli.config).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Simulate(_) | Command::ImportJcasc { .. } => Ok(()),
        Command::Check { format } => {
            let report = check::check(&config, &AwsHooks::default()).await;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                ),
                Format::Text => print!("{}", report.render_text()),
            }
            if report.has_failures() {
                return Err(format!(
                    "check: {} failure(s)",
                    report.count(check::Level::Fail)
                ));
            }
            Ok(())
        }
        Command::Validate => {
            println!(
                "{}: ok ({} template(s))",
                config.file,
                config.templates().count()
            );
            Ok(())
        }
        Command::IamPolicy { format } => {
            let policy = iam::policy(&config);
            match format {
                PolicyFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&policy).map_err(|e| e.to_string())?
                ),
                PolicyFormat::Terraform => print!("{}", iam::terraform(&policy, "jenkins_cloud")),
            }
            Ok(())
        }
        Command::Plan { format } => {
            let mut setup = commands::setup_access(&config, commands::Access::ReadOnly)
                .await
                .map_err(|e| e.to_string())?;
            let out = plan::plan(&mut setup).await.map_err(|e| e.to_string())?;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
                ),
                Format::Text => print!("{}", plan::render_text(&out)),
            }
            Ok(())
        }
        Command::Run { once } => {
            let mut setup = commands::setup(&config).await.map_err(|e| e.to_string())?;
            run::prune_pools(&config, &setup.ec2).await;
            let metrics = Arc::new(Metrics::default());
            if let Some(addr) = config.metrics_address {
                let m = Arc::clone(&metrics);
                tokio::spawn(async move {
                    if let Err(e) = metrics::serve(addr, m).await {
                        tracing::error!(%addr, error = %e, "metrics listener failed");
                    }
                });
            }
            if once {
                let report = run::once(&mut setup, &metrics)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            let jenkins = commands::open_jenkins(&config).map_err(|e| e.to_string())?;
            run::daemon(
                &mut setup,
                metrics,
                config.on_shutdown,
                jenkins,
                shutdown_signal(),
            )
            .await;
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested: finishing the current pass");
}
