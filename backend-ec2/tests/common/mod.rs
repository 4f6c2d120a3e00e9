//! Test harness: an [`Ec2Backend`] on the shared moto server, in an account of
//! its own. Hooking core's conformance suite in is a matter of calling its
//! functions with `harness().await.backend`.
#![allow(dead_code)]

use std::sync::Arc;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use jenkins_cloud_core::backend::{
    AgentLaunch, AgentTransport, Backend, JenkinsEndpoint, LaunchBatch, LaunchOutcome, OwnerId,
};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::testkit::moto::{moto, ACCOUNT_HEADER};
use jenkins_cloud_core::{AgentTemplate, Secret};
use jenkins_cloud_ec2::sdk::SdkApi;
use jenkins_cloud_ec2::Ec2Backend;

/// Sends every request in one moto account.
#[derive(Debug)]
struct MotoAccount(String);

impl Intercept for MotoAccount {
    fn name(&self) -> &'static str {
        "MotoAccount"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert(ACCOUNT_HEADER, self.0.clone());
        Ok(())
    }
}

/// A backend and raw clients, all in one fresh moto account.
pub struct Harness {
    /// The backend under test (owner `ci`).
    pub backend: Ec2Backend,
    /// Raw EC2 client in the same account, for checks and foreign instances.
    pub ec2: aws_sdk_ec2::Client,
    /// Raw SSM client in the same account.
    pub ssm: aws_sdk_ssm::Client,
    /// The SdkApi the backend uses.
    pub api: Arc<SdkApi>,
}

/// A fresh account on the shared moto server with a backend owned by `owner`.
pub async fn harness_for(owner: &str) -> Harness {
    let server = moto().await;
    let account = server.fresh_account_id();
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .endpoint_url(server.endpoint())
            .retry_config(RetryConfig::disabled())
            .interceptor(MotoAccount(account.clone()))
            .build(),
    );
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .endpoint_url(server.endpoint())
            .retry_config(RetryConfig::disabled())
            .interceptor(MotoAccount(account))
            .build(),
    );
    let api = Arc::new(SdkApi::new(ec2.clone(), ssm.clone()));
    let backend = Ec2Backend::with_api(OwnerId::new(owner).unwrap(), api.clone());
    Harness {
        backend,
        ec2,
        ssm,
        api,
    }
}

/// [`harness_for`] with owner `ci`.
pub async fn harness() -> Harness {
    harness_for("ci").await
}

impl Harness {
    /// Another backend (another owner) in the same account.
    pub fn other_owner(&self, owner: &str) -> Ec2Backend {
        Ec2Backend::with_api(OwnerId::new(owner).unwrap(), self.api.clone())
    }

    /// Some Linux AMI moto knows, with its root device (moto also ships
    /// Windows AMIs, whose launches get PowerShell user data).
    pub async fn some_ami(&self) -> String {
        self.ami_of(false).await
    }

    /// Some Windows AMI moto knows (DescribeImages says `Platform: windows`).
    pub async fn windows_ami(&self) -> String {
        self.ami_of(true).await
    }

    async fn ami_of(&self, windows: bool) -> String {
        let images = self
            .ec2
            .describe_images()
            .owners("amazon")
            .send()
            .await
            .unwrap();
        images
            .images()
            .iter()
            // The SDK's enum spells it `Windows`; AWS (and moto) send `windows`.
            .filter(|i| {
                i.platform()
                    .is_some_and(|p| p.as_str().eq_ignore_ascii_case("windows"))
                    == windows
            })
            .find_map(|i| i.image_id())
            .expect("moto ships default AMIs")
            .to_owned()
    }

    /// The default VPC's subnets.
    pub async fn default_subnets(&self) -> Vec<String> {
        let out = self.ec2.describe_subnets().send().await.unwrap();
        let mut ids: Vec<String> = out
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id())
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids
    }

    /// A template for this account: moto's first AMI, two subnets, IMDSv2, tags.
    pub async fn template(&self, extra: serde_json::Value) -> AgentTemplate {
        let mut spec = serde_json::json!({
            "ami": {"id": self.some_ami().await},
            "instance_types": ["t3.small", "t3.medium"],
            "subnets": self.default_subnets().await.into_iter().take(2).collect::<Vec<_>>(),
            "tags": {"team": "ci"},
        });
        if let (Some(obj), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        let mut t = AgentTemplate::new("linux", LabelSet::parse("linux"));
        t.spec = spec;
        t
    }
}

/// Launches `agents` of template `t` through `backend`, for [`jenkins`].
pub async fn launch(
    backend: &Ec2Backend,
    t: &AgentTemplate,
    agents: &[AgentLaunch],
) -> Vec<LaunchOutcome> {
    backend
        .launch(LaunchBatch {
            template: t,
            jenkins: &jenkins(),
            agents,
        })
        .await
}

/// The controller endpoint used by the tests.
pub fn jenkins() -> JenkinsEndpoint {
    JenkinsEndpoint {
        url: "https://ci.example.com/".into(),
        transport: AgentTransport::WebSocket,
    }
}

/// An agent with a recognisable secret.
pub fn agent(name: &str) -> AgentLaunch {
    AgentLaunch {
        agent_name: name.into(),
        secret: Secret::new(secret_of(name)),
        client_token: format!("tok-{name}"),
    }
}

/// The secret [`agent`] gives `name`.
pub fn secret_of(name: &str) -> String {
    format!("{:0>64}", hex_of(name))
}

fn hex_of(s: &str) -> String {
    s.bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(64)
        .collect()
}
