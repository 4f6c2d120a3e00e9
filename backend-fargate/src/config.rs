//! Backend configuration and construction of the ECS client.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use jenkins_cloud_core::backend::OwnerId;

use crate::rate::Backoff;

/// Settings of a [`FargateBackend`](crate::FargateBackend).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FargateConfig {
    /// Whose tasks these are (ECS `startedBy` and the owner tag).
    pub owner: OwnerId,
    /// Clusters this backend launches into and scans for its tasks (recovery,
    /// orphans). A template's `spec.cluster` must be one of them.
    pub clusters: Vec<String>,
    /// Prefix of task-definition families: `{prefix}-{owner}-{template}`.
    pub family_prefix: String,
    /// Region; `None` uses the default chain (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Endpoint override (emulators, VPC interface endpoints).
    pub endpoint_url: Option<String>,
    /// RunTask + StopTask calls per second (ECS allows 40/s shared, per account).
    pub run_rate_per_sec: f64,
    /// Burst of RunTask + StopTask calls (ECS allows 100).
    pub run_burst: u32,
    /// DescribeTasks + ListTasks calls per second (ECS allows 20/s).
    pub describe_rate_per_sec: f64,
    /// Burst of DescribeTasks + ListTasks calls (ECS allows 100).
    pub describe_burst: u32,
    /// TagResource calls per second (batched launches bind each task to its
    /// agent with one TagResource; a bucket of its own, not RunTask's).
    pub tag_rate_per_sec: f64,
    /// Burst of TagResource calls.
    pub tag_burst: u32,
    /// RunTask / StopTask calls in flight at once.
    pub concurrency: usize,
    /// Backoff after a throttled call.
    pub backoff: Backoff,
    /// SDK attempts per call (adaptive retry mode) for clients built by
    /// [`FargateBackend::from_env`](crate::FargateBackend::from_env).
    pub sdk_max_attempts: u32,
}

impl FargateConfig {
    /// Defaults: family prefix `jenkins-cloud`, half of ECS's rate limits (other
    /// users of the account keep the rest), 10 calls in flight.
    pub fn new(owner: OwnerId, clusters: Vec<String>) -> Self {
        Self {
            owner,
            clusters,
            family_prefix: "jenkins-cloud".to_owned(),
            region: None,
            endpoint_url: None,
            run_rate_per_sec: 20.0,
            run_burst: 40,
            describe_rate_per_sec: 10.0,
            describe_burst: 50,
            tag_rate_per_sec: 10.0,
            tag_burst: 20,
            concurrency: 10,
            backoff: Backoff::default(),
            sdk_max_attempts: 3,
        }
    }

    /// Problems with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.clusters.is_empty() {
            p.push("clusters: at least one cluster is required".to_owned());
        }
        if self.family_prefix.is_empty()
            || self.family_prefix.len() > 100
            || !self
                .family_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            p.push(format!(
                "family_prefix: `{}` must be 1–100 letters, digits, - or _",
                self.family_prefix
            ));
        }
        let positive = |r: f64| r.is_finite() && r > 0.0;
        if !positive(self.run_rate_per_sec) || !positive(self.describe_rate_per_sec) {
            p.push("run_rate_per_sec / describe_rate_per_sec: must be above 0".to_owned());
        }
        if !positive(self.tag_rate_per_sec) {
            p.push("tag_rate_per_sec: must be above 0".to_owned());
        }
        if self.concurrency == 0 {
            p.push("concurrency: must be at least 1".to_owned());
        }
        p
    }

    /// Whether `cluster` (name or ARN) is one of ours.
    pub fn has_cluster(&self, cluster: &str) -> bool {
        let name = |c: &str| c.rsplit_once("cluster/").map_or(c, |(_, n)| n).to_owned();
        self.clusters.iter().any(|c| name(c) == name(cluster))
    }
}

/// Loads AWS settings from the default chain (environment, profile, ECS task
/// role, instance metadata) with adaptive retries (client-side rate limiting).
pub(crate) async fn sdk_config(config: &FargateConfig) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(
        RetryConfig::adaptive()
            .with_max_attempts(config.sdk_max_attempts.max(1))
            .with_max_backoff(Duration::from_secs(20)),
    );
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    loader.load().await
}
