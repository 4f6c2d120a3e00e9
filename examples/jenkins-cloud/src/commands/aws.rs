//! AWS SDK clients for a cloud of the configuration: region and endpoint from
//! the file, credentials from the default chain, plus [`AwsHooks`] for tests
//! (an extra header such as moto's `x-moto-account-id`, static credentials,
//! no retries).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use jenkins_cloud_fargate::interceptors::FixedHeader;

use crate::config::CloudSettings;

/// Changes to how AWS clients are built; the default changes nothing.
#[derive(Debug, Clone, Default)]
pub struct AwsHooks {
    /// A header added to every request (`x-moto-account-id` in tests).
    pub extra_header: Option<(&'static str, String)>,
    /// Use fixed dummy credentials instead of the default chain (emulators).
    pub static_credentials: bool,
    /// Do not retry failed calls (tests: fail fast).
    pub no_retries: bool,
    /// These credentials instead of the default chain (tests: a user of the
    /// emulator's IAM).
    pub credentials: Option<aws_sdk_ecs::config::Credentials>,
}

impl AwsHooks {
    /// Hooks for an emulator such as moto: dummy credentials, no retries, and
    /// every request in the account `account` (sent as `header`).
    pub fn emulator(header: &'static str, account: impl Into<String>) -> Self {
        Self {
            extra_header: Some((header, account.into())),
            static_credentials: true,
            no_retries: true,
            credentials: None,
        }
    }
}

/// The shared SDK configuration of a cloud (region, credentials, retries).
pub async fn sdk_config(cloud: &CloudSettings, hooks: &AwsHooks) -> SdkConfig {
    let retry = if hooks.no_retries {
        RetryConfig::disabled()
    } else {
        RetryConfig::adaptive()
            .with_max_attempts(3)
            .with_max_backoff(Duration::from_secs(20))
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry);
    if let Some(region) = &cloud.region {
        loader = loader.region(Region::new(region.clone()));
    } else if hooks.static_credentials {
        loader = loader.region(Region::new("us-east-1"));
    }
    if let Some(url) = &cloud.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(creds) = &hooks.credentials {
        loader = loader.credentials_provider(creds.clone());
    } else if hooks.static_credentials {
        loader = loader.credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "jenkins-cloud-static",
        ));
    }
    loader.load().await
}

/// The clients of one cloud.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// ECS.
    pub ecs: aws_sdk_ecs::Client,
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// SSM.
    pub ssm: aws_sdk_ssm::Client,
}

/// ECS, EC2 and SSM clients of `cloud`, with the hooks applied.
pub async fn clients(cloud: &CloudSettings, hooks: &AwsHooks) -> AwsClients {
    let conf = sdk_config(cloud, hooks).await;
    let header = hooks
        .extra_header
        .as_ref()
        .map(|(name, value)| FixedHeader::new(name, value.clone()));
    let mut ecs = aws_sdk_ecs::config::Builder::from(&conf);
    let mut ec2 = aws_sdk_ec2::config::Builder::from(&conf);
    let mut ssm = aws_sdk_ssm::config::Builder::from(&conf);
    if let Some(h) = header {
        ecs = ecs.interceptor(h.clone());
        ec2 = ec2.interceptor(h.clone());
        ssm = ssm.interceptor(h);
    }
    AwsClients {
        ecs: aws_sdk_ecs::Client::from_conf(ecs.build()),
        ec2: aws_sdk_ec2::Client::from_conf(ec2.build()),
        ssm: aws_sdk_ssm::Client::from_conf(ssm.build()),
    }
}
