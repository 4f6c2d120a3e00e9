//! Placeholder: a faithful model of Jenkins core's NodeProvisioner is being written.
use tokio::time::Instant;

use crate::strategy::{PoolView, ProvisioningStrategy};

/// Jenkins core's `NodeProvisioner` with its `StandardStrategy`.
#[derive(Debug, Default)]
pub struct JenkinsStandard;

impl ProvisioningStrategy for JenkinsStandard {
    fn name(&self) -> &str {
        "jenkins-standard"
    }
    fn agents_to_launch(&mut self, _template: &str, _pool: &PoolView, _now: Instant) -> u32 {
        0
    }
}
