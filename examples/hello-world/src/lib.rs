//! The seed's scenario, end to end, without AWS or Jenkins: a job asks for label
//! `linux` and runs `echo Hello world` on an on-demand Fargate agent.
//!
//! The fake controller (`testkit::fake_jenkins`, real HTTP) plays Jenkins, moto
//! plays ECS (its own account on the shared server), and the real reconcile loop
//! of the `jenkins-cloud` program (`commands::setup_with`, the HTTP Jenkins
//! client, `FargateBackend`) does the work. The "agent" reads its name and secret
//! from the task's container overrides in moto and connects through the fake's
//! hook, as the `jenkins/inbound-agent` image would over WebSocket.
#![deny(missing_docs)]

use std::time::Duration;

use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use jenkins_cloud_cli::commands;
use jenkins_cloud_cli::config::Config;
use jenkins_cloud_core::backend::{Backend, OwnerId};
use jenkins_cloud_core::testkit::fake_jenkins::{FakeJenkins, FakeJenkinsConfig};
use jenkins_cloud_core::testkit::moto::{moto, ACCOUNT_HEADER};
use jenkins_cloud_fargate::interceptors::FixedHeader;
use jenkins_cloud_fargate::{FargateBackend, FargateConfig};

/// What happened, for checks.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The agent's task.
    pub task_arn: String,
    /// The agent (node) name.
    pub agent: String,
    /// The build ran to its end on the agent.
    pub build_finished: bool,
    /// The task was stopped by the loop.
    pub task_stopped: bool,
    /// The node was deleted by the loop.
    pub node_deleted: bool,
    /// The agent secret (never printed; kept so a test can check that).
    pub secret_for_check: String,
}

fn creds() -> Credentials {
    Credentials::new("testing", "testing", None, None, "hello-world")
}

fn mask(secret: &str) -> String {
    format!("****({} characters, not shown)", secret.len())
}

/// Runs the scenario, reporting each step through `say`.
pub async fn run(say: &mut dyn FnMut(&str)) -> Result<Summary, String> {
    let server = moto().await;
    let account = server.fresh_account_id();
    let header = || FixedHeader::new(ACCOUNT_HEADER, account.clone());
    let ecs = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(creds())
            .endpoint_url(server.endpoint())
            .retry_config(RetryConfig::disabled())
            .interceptor(header())
            .build(),
    );
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "hello-world",
            ))
            .endpoint_url(server.endpoint())
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
            .interceptor(header())
            .build(),
    );
    let (subnet, sg) = network(&ec2).await?;
    ecs.create_cluster()
        .cluster_name("hello")
        .send()
        .await
        .map_err(|e| format!("CreateCluster: {e}"))?;

    let fake = FakeJenkins::start(FakeJenkinsConfig {
        build_duration: Some(Duration::from_millis(500)),
        ..FakeJenkinsConfig::default()
    })
    .await;
    let yaml = format!(
        r#"owner: hello
jenkins:
  url: "{url}"
  user: admin
  token: "11aa22bb33cc44dd55ee66ff77889900aa"
  allow_inline_token: true   # demo only: use token_env or token_file
clouds:
  - name: fargate
    kind: fargate
    clusters: [hello]
    templates:
      - name: linux
        labels: linux
        idle_timeout: 1s
        spec: {{cluster: hello, cpu: 512, memory: 1024, subnets: [{subnet}], security_groups: [{sg}]}}
"#,
        url = fake.url()
    );
    let config = Config::parse(&yaml, "hello-world.yaml").map_err(|e| e.to_string())?;
    let jenkins = commands::open_jenkins(&config).map_err(|e| e.to_string())?;
    let backend = FargateBackend::with_client(
        FargateConfig::new(
            OwnerId::new("hello").map_err(|e| e.to_string())?,
            vec!["hello".into()],
        ),
        ecs.clone(),
    )
    .map_err(|e| e.to_string())?;
    let mut setup = commands::setup_with(
        &config,
        jenkins,
        vec![std::sync::Arc::new(backend) as std::sync::Arc<dyn Backend>],
    );

    let queue_id = fake.queue_freestyle("hello", "linux");
    say(&format!(
        "job queued: `hello` (queue item {queue_id}) wants label `linux`; no agent exists"
    ));

    let mut summary = Summary::default();
    let mut conn = None;
    let mut build_seen = false;
    for _ in 0..60 {
        let report = setup
            .reconciler
            .run_once()
            .await
            .map_err(|e| format!("pass failed: {e}"))?;
        for l in &report.act.launched {
            summary.task_arn = l.cloud_id.0.clone();
            summary.agent = l.agent.clone();
            say(&format!(
                "task started: {} for agent `{}` (serves {:?})",
                l.cloud_id, l.agent, l.serves
            ));
        }
        for a in &report.act.drained {
            say(&format!("agent `{a}` idle: drained (temporarily offline)"));
        }
        for a in &report.act.terminated {
            say(&format!("agent `{a}`: task stopped, node deleted"));
        }
        if conn.is_none() && !summary.task_arn.is_empty() {
            let t = ecs
                .describe_tasks()
                .cluster("hello")
                .tasks(&summary.task_arn)
                .send()
                .await
                .map_err(|e| format!("DescribeTasks: {e}"))?;
            let env: Vec<(String, String)> = t
                .tasks()
                .iter()
                .flat_map(|t| {
                    t.overrides()
                        .map(|o| o.container_overrides())
                        .unwrap_or_default()
                })
                .flat_map(|c| c.environment())
                .filter_map(|kv| Some((kv.name()?.to_owned(), kv.value()?.to_owned())))
                .collect();
            let get = |k: &str| {
                env.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let secret = get("JENKINS_SECRET");
            summary.secret_for_check = secret.clone();
            for (k, v) in &env {
                let shown = if k == "JENKINS_SECRET" {
                    mask(v)
                } else {
                    v.clone()
                };
                say(&format!("  env {k}={shown}"));
            }
            let c = fake
                .connect_agent(&get("JENKINS_AGENT_NAME"), &secret)
                .map_err(|e| format!("agent could not connect: {e}"))?;
            say(&format!(
                "agent connected: `{}` (WebSocket to {})",
                c.name,
                get("JENKINS_URL")
            ));
            conn = Some(c);
        }
        let builds = fake.builds();
        if let Some(b) = builds.iter().find(|b| b.queue_id == queue_id) {
            if !build_seen {
                say(&format!(
                    "build {} #{} running on `{}`: + echo Hello world",
                    b.job, b.number, b.node
                ));
                say("Hello world");
                build_seen = true;
            }
        } else if build_seen && !summary.build_finished {
            summary.build_finished = true;
            say("build finished: SUCCESS");
        }
        if summary.build_finished && !summary.agent.is_empty() {
            let stopped = ecs
                .describe_tasks()
                .cluster("hello")
                .tasks(&summary.task_arn)
                .send()
                .await
                .map_err(|e| format!("DescribeTasks: {e}"))?
                .tasks()
                .iter()
                .all(|t| {
                    t.last_status() == Some("STOPPED") || t.desired_status() == Some("STOPPED")
                });
            let node_gone = fake.node(&summary.agent).is_none();
            if stopped && node_gone {
                if let Some(c) = conn.take() {
                    fake.disconnect(&c);
                }
                summary.task_stopped = true;
                summary.node_deleted = true;
                say("done: task stopped, node deleted; nothing left running");
                return Ok(summary);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!(
        "the scenario did not complete in time: {summary:?}"
    ))
}

async fn network(ec2: &aws_sdk_ec2::Client) -> Result<(String, String), String> {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .map_err(|e| format!("CreateVpc: {e}"))?;
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap_or_default()
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
        .map_err(|e| format!("ModifyVpcAttribute: {e}"))?;
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.0.0.0/20")
        .availability_zone("us-east-1a")
        .send()
        .await
        .map_err(|e| format!("CreateSubnet: {e}"))?
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap_or_default()
        .to_owned();
    let sg = ec2
        .create_security_group()
        .group_name("agents")
        .description("jenkins agents")
        .vpc_id(&vpc_id)
        .send()
        .await
        .map_err(|e| format!("CreateSecurityGroup: {e}"))?
        .group_id()
        .unwrap_or_default()
        .to_owned();
    Ok((subnet, sg))
}
