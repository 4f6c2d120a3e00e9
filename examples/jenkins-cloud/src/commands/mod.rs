//! The subcommands. Each is a function over a checked [`Config`] so it can be
//! tested without the command line.
//!
//! * [`plan`]: observe and plan, change nothing.
//! * [`run`]: the daemon, or one pass with `--once`.
//! * [`iam`]: the least-privilege IAM policy of a configuration.

pub mod iam;
pub mod plan;
pub mod run;

use std::sync::Arc;

use jenkins_cloud_core::backend::Backend;
use jenkins_cloud_core::jenkins::client::{
    JenkinsClient, JenkinsClientConfig, PlaceholderTemplate,
};
use jenkins_cloud_core::jenkins::JenkinsApi;
use jenkins_cloud_core::layer::{MetricsBackend, MetricsSnapshot};
use jenkins_cloud_core::memory::MemoryBackend;
use jenkins_cloud_core::reconcile::{Caps, Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::{JenkinsStandard, NoDelay, ProvisioningStrategy};
use jenkins_cloud_fargate::{FargateBackend, FargateConfig};

use crate::config::{CloudKind, Config, StrategyKind};

/// A failure of a command, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

/// The backends and loop built from a configuration.
pub struct Setup {
    /// The loop.
    pub reconciler: Reconciler,
    /// Per-cloud call counters.
    pub metered: Vec<Arc<MetricsBackend<dyn Backend>>>,
}

impl Setup {
    /// Current call counters of every backend.
    pub fn cloud_metrics(&self) -> Vec<MetricsSnapshot> {
        self.metered.iter().map(|m| m.snapshot()).collect()
    }
}

/// Builds the backend of one cloud.
pub async fn open_backend(config: &Config, index: usize) -> Result<Arc<dyn Backend>, CommandError> {
    let cloud = &config.clouds[index];
    match cloud.kind {
        CloudKind::Memory => Ok(Arc::new(MemoryBackend::new(config.owner.clone()))),
        CloudKind::Fargate => {
            let mut fc = FargateConfig::new(config.owner.clone(), cloud.clusters.clone());
            fc.family_prefix = cloud.family_prefix.clone();
            fc.region = cloud.region.clone();
            fc.endpoint_url = cloud.endpoint_url.clone();
            let backend = FargateBackend::from_env(fc)
                .await
                .map_err(|e| CommandError(format!("cloud `{}`: {e}", cloud.name)))?;
            Ok(Arc::new(backend))
        }
        CloudKind::Ec2 => Err(CommandError(format!(
            "cloud `{}`: the ec2 backend is not part of this build yet (branch ec2 not merged)",
            cloud.name
        ))),
    }
}

/// Builds the Jenkins client from the configuration (reads the API token).
pub fn open_jenkins(config: &Config) -> Result<Arc<dyn JenkinsApi>, CommandError> {
    let token = config.jenkins.token().map_err(CommandError)?;
    let mut jc = JenkinsClientConfig::new(
        config.jenkins.url.clone(),
        config.jenkins.user.clone(),
        token,
        config.owner.clone(),
    );
    jc.allow_insecure_http = config.jenkins.allow_insecure_http;
    jc.demand_mode = config.jenkins.demand_mode;
    jc.templates = config
        .templates()
        .map(|(_, t)| PlaceholderTemplate::from(t))
        .collect();
    let client = JenkinsClient::new(jc).map_err(|e| CommandError(format!("jenkins: {e}")))?;
    Ok(Arc::new(client))
}

/// The loop settings of a configuration.
pub fn reconcile_config(config: &Config) -> ReconcileConfig {
    let mut rc = ReconcileConfig::new(config.owner.clone(), config.jenkins.endpoint());
    rc.poll_interval = config.poll_interval;
    rc.orphan_grace = config.orphan_grace;
    rc.caps = Caps {
        global: config.global_cap,
        per_label: config.label_caps.clone(),
    };
    rc
}

fn strategy(kind: StrategyKind) -> Box<dyn ProvisioningStrategy> {
    match kind {
        StrategyKind::NoDelay => Box::new(NoDelay),
        StrategyKind::JenkinsStandard => Box::new(JenkinsStandard::new()),
    }
}

/// Builds the loop over `jenkins` and the given backends (one per cloud, in
/// order), each wrapped in a call counter.
pub fn setup_with(
    config: &Config,
    jenkins: Arc<dyn JenkinsApi>,
    backends: Vec<Arc<dyn Backend>>,
) -> Setup {
    let metered: Vec<Arc<MetricsBackend<dyn Backend>>> = backends
        .into_iter()
        .map(|b| Arc::new(MetricsBackend::new(b)))
        .collect();
    let pools = config
        .templates()
        .map(|(i, t)| Pool {
            template: Arc::new(t.clone()),
            backend: Arc::clone(&metered[i]) as Arc<dyn Backend>,
        })
        .collect();
    let reconciler = Reconciler::new(
        reconcile_config(config),
        jenkins,
        pools,
        strategy(config.strategy),
    );
    Setup {
        reconciler,
        metered,
    }
}

/// Builds the loop from the configuration alone (real Jenkins and clouds).
pub async fn setup(config: &Config) -> Result<Setup, CommandError> {
    let jenkins = open_jenkins(config)?;
    let mut backends = Vec::new();
    for i in 0..config.clouds.len() {
        backends.push(open_backend(config, i).await?);
    }
    // Test-only hook (JENKINS_CLOUD_CRASH_POINT); a no-op when unset.
    let (jenkins, backends) = crate::crashpoint::wrap_from_env(jenkins, backends)?;
    Ok(setup_with(config, jenkins, backends))
}
