//! jenkins-cloud backend for AWS EC2: Jenkins inbound agents on EC2 instances.
//!
//! [`Ec2Backend`] implements core's [`Backend`](jenkins_cloud_core::Backend) on
//! `aws-sdk-ec2` (and `aws-sdk-ssm` for agent secrets and AMI parameters):
//!
//! * **Templates** ([`spec::Ec2Spec`]): AMI by id, by name/owner filter (newest
//!   wins) or by SSM parameter; instance types tried in order on capacity errors;
//!   subnets spread over and fallen back across; IMDSv2 by default; root volume;
//!   extra tags on instance, volumes and network interfaces; spot with a real
//!   on-demand fallback (no spot options sent); an optional warm pool of
//!   stopped instances, bounded per template by `warm_pool_max`.
//! * **Agent start** ([`userdata`]): user data installs Java if needed,
//!   downloads `agent.jar` from the controller and runs it over WebSocket as a
//!   restarting systemd service; on Windows (`platform`, or a Windows AMI)
//!   PowerShell user data runs it from a scheduled task at every boot. The
//!   secret goes through a per-agent SSM SecureString parameter by default,
//!   never through user data.
//! * **Security groups** by id or by name ([`groups`]: names resolved in the
//!   first subnet's VPC).
//! * **Launch**: one RunInstances per agent (user data is per request), paced to
//!   EC2's request bucket (5 burst, 2/s), with a ClientToken per attempt;
//!   errors classified as capacity / throttled / transient / permanent.
//! * **Ownership**: every call is scoped by the owner tag; an instance without it
//!   is never touched.
//!
//! `docs/ec2.md` covers setup, IAM permissions and troubleshooting.
#![deny(missing_docs)]

pub mod api;
pub mod backend;
pub mod error;
pub mod groups;
pub mod iam;
pub mod launch;
pub mod pacing;
pub mod sdk;
pub mod spec;
pub mod state;
pub mod userdata;

#[cfg(test)]
mod tests;

pub use backend::{secret_parameter_name, Ec2Backend};
pub use error::Ec2Error;
pub use spec::Ec2Spec;

/// Instance tag naming the SSM parameter with the agent's secret (empty once retired).
pub const SECRET_PARAMETER_TAG: &str = "jenkins-cloud:secret-parameter";
/// Instance tag saying what retiring does: `terminate` or `stop` (warm pool).
pub const RETIRE_TAG: &str = "jenkins-cloud:retire";
/// Instance tag with the template's `warm_pool_max` when the instance was last
/// launched or started: the bound used when it retires, unless this process has
/// launched for the template since (then that newer bound wins).
pub const POOL_MAX_TAG: &str = "jenkins-cloud:warm-pool-max";
/// Instance tag with a fingerprint of the launch settings; the warm pool only
/// reuses instances whose fingerprint matches.
pub const SPEC_TAG: &str = "jenkins-cloud:launch-fingerprint";
