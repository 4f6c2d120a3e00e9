//! `simulate`: the simulator (`jenkins_cloud_sim`) with the options of the
//! `jenkins-cloud-sim` program: the real reconcile loop over an in-memory
//! Jenkins and cloud, strategies side by side, in simulated time. No AWS, no
//! Jenkins, no configuration file needed.

pub use jenkins_cloud_sim::cli::{SimFormat, SimulateArgs};
use jenkins_cloud_sim::SimOptions;

use super::CommandError;

/// The simulator options of `args` (files read and checked; each error names
/// the option or file).
pub fn options(args: &SimulateArgs) -> Result<SimOptions, CommandError> {
    jenkins_cloud_sim::cli::options(args).map_err(CommandError)
}

/// Runs the simulation and returns what to print on stdout (the table or the
/// JSON report); writes the SVG chart when asked. Progress goes to stderr
/// unless `quiet`.
pub fn simulate(args: &SimulateArgs) -> Result<String, CommandError> {
    jenkins_cloud_sim::cli::simulate(args).map_err(CommandError)
}
