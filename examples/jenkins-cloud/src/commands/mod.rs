//! The subcommands. Each is a function over a checked [`Config`] so it can be
//! tested without the command line.
//!
//! * [`plan`]: observe and plan, change nothing.
//! * [`run`]: the daemon, or one pass with `--once`.
//! * [`iam`]: the least-privilege IAM policy of a configuration.
//! * [`check`]: probe Jenkins and the clouds with the configuration's settings
//!   ([`permissions`]: its dry-run permission probes).
//! * [`simulate`]: the simulator, with the `jenkins-cloud-sim` options.
//! * [`import_jcasc`]: convert amazon-ecs / ec2 plugin clouds from JCasC.
//! * [`aws`]: AWS clients of a cloud.

pub mod aws;
pub mod check;
pub mod iam;
pub mod import_jcasc;
pub mod permissions;
pub mod plan;
pub mod run;
pub mod simulate;

use std::collections::BTreeMap;
use std::sync::Arc;

use jenkins_cloud_core::backend::Backend;
use jenkins_cloud_core::jenkins::client::{
    DemandMode, JenkinsClient, JenkinsClientConfig, PlaceholderTemplate,
};
use jenkins_cloud_core::jenkins::JenkinsApi;
use jenkins_cloud_core::layer::{MetricsBackend, MetricsSnapshot};
use jenkins_cloud_core::memory::MemoryBackend;
use jenkins_cloud_core::reconcile::{Caps, Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::{JenkinsStandard, NoDelay, ProvisioningStrategy};
use jenkins_cloud_ec2::sdk::SdkApi;
use jenkins_cloud_ec2::Ec2Backend;
use jenkins_cloud_fargate::{FargateBackend, FargateConfig};

use self::aws::AwsHooks;

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
    /// The EC2 backends among them, unwrapped (for [`run::prune_pools`]);
    /// empty when the backends were given to [`setup_with`].
    pub ec2: Vec<Arc<Ec2Backend>>,
    /// The cloud (by name) of each template.
    pub template_cloud: BTreeMap<String, String>,
}

impl Setup {
    /// Current call counters of every backend.
    pub fn cloud_metrics(&self) -> Vec<MetricsSnapshot> {
        self.metered.iter().map(|m| m.snapshot()).collect()
    }

    /// Per cloud with templates (by name): the error of its last read, if it failed.
    pub fn cloud_reads(&self) -> Vec<(String, Option<String>)> {
        self.reconciler
            .cloud_reads()
            .into_iter()
            .filter_map(|read| {
                let cloud = read
                    .templates
                    .first()
                    .and_then(|t| self.template_cloud.get(t))?;
                Some((cloud.clone(), read.error))
            })
            .collect()
    }
}

/// Builds the backend of one cloud.
pub async fn open_backend(config: &Config, index: usize) -> Result<Arc<dyn Backend>, CommandError> {
    open_backend_with(config, index, &AwsHooks::default()).await
}

/// Builds the backend of one cloud, with AWS client hooks (tests: emulator
/// account header, static credentials).
pub async fn open_backend_with(
    config: &Config,
    index: usize,
    hooks: &AwsHooks,
) -> Result<Arc<dyn Backend>, CommandError> {
    let cloud = &config.clouds[index];
    let hooked = hooks.extra_header.is_some()
        || hooks.static_credentials
        || hooks.no_retries
        || hooks.credentials.is_some();
    match cloud.kind {
        CloudKind::Memory => Ok(Arc::new(MemoryBackend::new(config.owner.clone()))),
        CloudKind::Fargate => {
            let mut fc = FargateConfig::new(config.owner.clone(), cloud.clusters.clone());
            fc.family_prefix = cloud.family_prefix.clone();
            fc.region = cloud.region.clone();
            fc.endpoint_url = cloud.endpoint_url.clone();
            let backend = if hooked {
                let clients = aws::clients(cloud, hooks).await;
                FargateBackend::with_client(fc, clients.ecs)
            } else {
                FargateBackend::from_env(fc).await
            }
            .map_err(|e| CommandError(format!("cloud `{}`: {e}", cloud.name)))?;
            Ok(Arc::new(backend))
        }
        CloudKind::Ec2 => Ok(Arc::new(open_ec2(config, index, hooks).await)),
    }
}

/// Builds the EC2 backend of cloud `index` (which must be an EC2 cloud).
pub async fn open_ec2(config: &Config, index: usize, hooks: &AwsHooks) -> Ec2Backend {
    let clients = aws::clients(&config.clouds[index], hooks).await;
    let api = Arc::new(SdkApi::new(clients.ec2, clients.ssm));
    Ec2Backend::with_api(config.owner.clone(), api)
}

/// Builds the Jenkins client from the configuration (reads the API token).
pub fn open_jenkins(config: &Config) -> Result<Arc<dyn JenkinsApi>, CommandError> {
    Ok(Arc::new(open_jenkins_client(
        config,
        config.jenkins.demand_mode,
        Access::ReadWrite,
    )?))
}

/// Whether a command may change anything in Jenkins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `run`: creates, drains and deletes nodes.
    ReadWrite,
    /// `plan`, `check`: reads only (no placeholder is created either).
    ReadOnly,
}

/// The concrete Jenkins client of the configuration, with the given demand mode
/// (for `check`, which probes the script console itself) and access.
pub fn open_jenkins_client(
    config: &Config,
    demand_mode: DemandMode,
    access: Access,
) -> Result<JenkinsClient, CommandError> {
    let token = config.jenkins.token().map_err(CommandError)?;
    let mut jc = JenkinsClientConfig::new(
        config.jenkins.url.clone(),
        config.jenkins.user.clone(),
        token,
        config.owner.clone(),
    );
    jc.allow_insecure_http = config.jenkins.allow_insecure_http;
    jc.demand_mode = demand_mode;
    jc.read_only = access == Access::ReadOnly;
    jc.max_response_bytes = config.jenkins.max_response_bytes;
    jc.templates = config
        .templates()
        .map(|(_, t)| PlaceholderTemplate::from(t))
        .collect();
    JenkinsClient::new(jc).map_err(|e| CommandError(format!("jenkins: {e}")))
}

/// The loop settings of a configuration.
pub fn reconcile_config(config: &Config) -> ReconcileConfig {
    let mut rc = ReconcileConfig::new(config.owner.clone(), config.jenkins.endpoint());
    rc.poll_interval = config.poll_interval;
    rc.orphan_grace = config.orphan_grace;
    rc.caps = Caps {
        global: Some(config.global_cap.unwrap_or(DEFAULT_GLOBAL_CAP)),
        per_label: config.label_caps.clone(),
        ..rc.caps
    };
    rc
}

/// The global cap when the configuration sets none (`caps.global`): enough for
/// a busy controller, low enough that a runaway job or a Jenkins bug cannot
/// start thousands of agents. Raise it in the configuration.
pub const DEFAULT_GLOBAL_CAP: u32 = 100;

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
    let template_cloud = config
        .templates()
        .map(|(i, t)| (t.name.clone(), config.clouds[i].name.clone()))
        .collect();
    Setup {
        reconciler,
        metered,
        ec2: Vec::new(),
        template_cloud,
    }
}

/// Builds the loop from the configuration alone (real Jenkins and clouds).
pub async fn setup(config: &Config) -> Result<Setup, CommandError> {
    setup_access(config, Access::ReadWrite).await
}

/// [`setup`] with a Jenkins client of the given access (`plan`: read-only).
pub async fn setup_access(config: &Config, access: Access) -> Result<Setup, CommandError> {
    let jenkins: Arc<dyn JenkinsApi> = Arc::new(open_jenkins_client(
        config,
        config.jenkins.demand_mode,
        access,
    )?);
    let (mut backends, mut ec2) = (Vec::new(), Vec::new());
    for (i, cloud) in config.clouds.iter().enumerate() {
        if cloud.kind == CloudKind::Ec2 {
            let backend = Arc::new(open_ec2(config, i, &AwsHooks::default()).await);
            ec2.push(Arc::clone(&backend));
            backends.push(backend as Arc<dyn Backend>);
        } else {
            backends.push(open_backend(config, i).await?);
        }
    }
    // Test-only hook (JENKINS_CLOUD_CRASH_POINT); a no-op when unset.
    let (jenkins, backends) = crate::crashpoint::wrap_from_env(jenkins, backends)?;
    Ok(Setup {
        ec2,
        ..setup_with(config, jenkins, backends)
    })
}
