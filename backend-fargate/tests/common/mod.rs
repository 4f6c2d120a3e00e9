//! Test harness: a Fargate backend on the shared moto server, in an account of
//! its own, with a VPC (DNS hostnames on), a subnet, a security group and a
//! cluster. The conformance suite hooks in through [`MotoEnv::new`].
#![allow(dead_code)]

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use jenkins_cloud_core::backend::{AgentLaunch, AgentTransport, JenkinsEndpoint, OwnerId};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::testkit::moto::{moto, ACCOUNT_HEADER};
use jenkins_cloud_core::{AgentTemplate, Secret};
use jenkins_cloud_fargate::interceptors::{CallCounter, FixedHeader};
use jenkins_cloud_fargate::{FargateBackend, FargateConfig};
use serde_json::json;

/// One test's world in moto.
pub struct MotoEnv {
    pub endpoint: String,
    pub account: String,
    pub ecs: aws_sdk_ecs::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub subnet: String,
    pub security_group: String,
    pub cluster: String,
}

fn creds() -> Credentials {
    Credentials::new("testing", "testing", None, None, "static-test")
}

impl MotoEnv {
    /// A fresh account with network and cluster `ci`.
    pub async fn new() -> Self {
        let server = moto().await;
        let account = server.fresh_account_id();
        let endpoint = server.endpoint().to_owned();
        let ecs = ecs_client(&endpoint, &account, None);
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(creds())
                .endpoint_url(&endpoint)
                .retry_config(RetryConfig::disabled())
                .interceptor(FixedHeader::new(ACCOUNT_HEADER, account.clone()))
                .build(),
        );
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .expect("CreateVpc");
        let vpc_id = vpc
            .vpc()
            .and_then(|v| v.vpc_id())
            .expect("vpc id")
            .to_owned();
        ec2.modify_vpc_attribute()
            .vpc_id(&vpc_id)
            .enable_dns_hostnames(
                aws_sdk_ec2::types::AttributeBooleanValue::builder()
                    .value(true)
                    .build(),
            )
            .send()
            .await
            .expect("ModifyVpcAttribute");
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block("10.0.0.0/20")
            .availability_zone("us-east-1a")
            .send()
            .await
            .expect("CreateSubnet");
        let subnet = subnet
            .subnet()
            .and_then(|s| s.subnet_id())
            .expect("subnet id")
            .to_owned();
        let sg = ec2
            .create_security_group()
            .group_name("agents")
            .description("jenkins agents")
            .vpc_id(&vpc_id)
            .send()
            .await
            .expect("CreateSecurityGroup");
        let security_group = sg.group_id().expect("sg id").to_owned();
        ecs.create_cluster()
            .cluster_name("ci")
            .send()
            .await
            .expect("CreateCluster");
        Self {
            endpoint,
            account,
            ecs,
            ec2,
            subnet,
            security_group,
            cluster: "ci".into(),
        }
    }

    /// A backend for `owner` in this account; its calls are counted by `counter`.
    pub fn backend(&self, owner: &str, counter: &CallCounter) -> FargateBackend {
        let client = ecs_client(&self.endpoint, &self.account, Some(counter));
        let config = FargateConfig::new(OwnerId::new(owner).unwrap(), vec![self.cluster.clone()]);
        FargateBackend::with_client(config, client).expect("backend")
    }

    /// Like [`MotoEnv::backend`], with `tweak` applied to the configuration.
    pub fn backend_with(
        &self,
        owner: &str,
        counter: &CallCounter,
        tweak: impl FnOnce(&mut FargateConfig),
    ) -> FargateBackend {
        let client = ecs_client(&self.endpoint, &self.account, Some(counter));
        let mut config =
            FargateConfig::new(OwnerId::new(owner).unwrap(), vec![self.cluster.clone()]);
        tweak(&mut config);
        FargateBackend::with_client(config, client).expect("backend")
    }

    /// [`MotoEnv::spec`] in batched-launch mode (`launch_batching`, which needs
    /// `agent_secret: fetched_by_agent` and a connect credential in `secrets`).
    pub fn batched_spec(&self) -> serde_json::Value {
        let mut spec = self.spec();
        spec["launch_batching"] = json!(true);
        spec["agent_secret"] = json!("fetched_by_agent");
        spec["execution_role_arn"] = json!("arn:aws:iam::123456789012:role/ecsTaskExecution");
        spec["secrets"] = json!({"JENKINS_CONNECT_TOKEN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:jenkins-connect"});
        spec
    }

    /// The Fargate spec of a valid template in this environment.
    pub fn spec(&self) -> serde_json::Value {
        json!({
            "cluster": self.cluster,
            "cpu": 512,
            "memory": 1024,
            "subnets": [self.subnet],
            "security_groups": [self.security_group],
            "tags": {"team": "ci"},
        })
    }

    /// A template named `name` with [`MotoEnv::spec`].
    pub fn template(&self, name: &str) -> AgentTemplate {
        let mut t = AgentTemplate::new(name, LabelSet::parse("linux"));
        t.spec = self.spec();
        t
    }
}

/// An ECS client on moto for `account`, retries off.
pub fn ecs_client(
    endpoint: &str,
    account: &str,
    counter: Option<&CallCounter>,
) -> aws_sdk_ecs::Client {
    let mut conf = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds())
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .interceptor(FixedHeader::new(ACCOUNT_HEADER, account.to_owned()));
    if let Some(counter) = counter {
        conf = conf.interceptor(counter.clone());
    }
    aws_sdk_ecs::Client::from_conf(conf.build())
}

/// Agents `prefix-0 … prefix-(n-1)` with distinct secrets and tokens.
pub fn agents(prefix: &str, n: usize) -> Vec<AgentLaunch> {
    (0..n)
        .map(|i| AgentLaunch {
            agent_name: format!("{prefix}-{i}"),
            secret: Secret::new(format!("{:064x}", i + 1)),
            client_token: format!("{prefix}-token-{i}"),
        })
        .collect()
}

/// WebSocket endpoint.
pub fn jenkins() -> JenkinsEndpoint {
    JenkinsEndpoint {
        url: "http://jenkins.internal:8080/".into(),
        transport: AgentTransport::WebSocket,
    }
}
