//! `jenkins-cloud-sim`: compares provisioning strategies on a workload. With no
//! arguments it runs the built-in day with every strategy.

use std::process::ExitCode;

use clap::Parser;
use jenkins_cloud_sim::cli::{simulate, SimulateArgs};

/// Simulate elastic Jenkins agents: the real reconcile loop over an in-memory
/// Jenkins and cloud, strategies side by side, in simulated time.
#[derive(Debug, Parser)]
#[command(name = "jenkins-cloud-sim")]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

fn main() -> ExitCode {
    match simulate(&Cli::parse().args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
