//! Shared support of the end-to-end and crash tests: the real `jenkins-cloud`
//! binary against the fake controller (over HTTP) and moto (Fargate).
//!
//! The program cannot send moto's account header, so every world lives in
//! moto's default account and is isolated by a cluster and an owner id of its
//! own (owner scoping: the program only lists tasks it started).
//!
//! The "agent" is [`AgentSim`]: it reads each task's container overrides from
//! moto (`JENKINS_AGENT_NAME`, `JENKINS_SECRET`), connects through the fake
//! controller's hook, and disconnects when the task stops; it also records what
//! a cloud operator would check (live tasks, duplicates, refused connections).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use jenkins_cloud_core::testkit::fake_jenkins::{
    AgentConnection, ConnectError, FakeJenkins, FakeJenkinsConfig,
};
use jenkins_cloud_core::testkit::moto::moto;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

/// The admin token of [`FakeJenkinsConfig::default`].
pub const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";
/// The environment variable the configurations read the token from.
pub const TOKEN_VAR: &str = "JC_E2E_JENKINS_TOKEN";
/// The program under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_jenkins-cloud");

fn creds() -> Credentials {
    Credentials::new("testing", "testing", None, None, "static-test")
}

/// An ECS client on moto's default account (where the program acts).
pub async fn ecs() -> aws_sdk_ecs::Client {
    let endpoint = moto().await.endpoint().to_owned();
    aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(creds())
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

/// A subnet (in a VPC with DNS hostnames) and a security group in the default
/// account, made once per test binary.
#[derive(Debug, Clone)]
pub struct Net {
    /// Subnet id.
    pub subnet: String,
    /// Security group id.
    pub security_group: String,
}

static NET: OnceCell<Net> = OnceCell::const_new();

/// The shared network of this test binary.
pub async fn net() -> &'static Net {
    NET.get_or_init(|| async {
        let endpoint = moto().await.endpoint().to_owned();
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::Config::builder()
                .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
                .region(aws_sdk_ec2::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                    "testing", "testing", None, None, "static",
                ))
                .endpoint_url(endpoint)
                .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
                .build(),
        );
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.9.0.0/16")
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
            .cidr_block("10.9.0.0/18")
            .availability_zone("us-east-1a")
            .send()
            .await
            .expect("CreateSubnet")
            .subnet()
            .and_then(|s| s.subnet_id())
            .expect("subnet id")
            .to_owned();
        let security_group = ec2
            .create_security_group()
            .group_name(format!("agents-{}", std::process::id()))
            .description("jenkins agents")
            .vpc_id(&vpc_id)
            .send()
            .await
            .expect("CreateSecurityGroup")
            .group_id()
            .expect("sg id")
            .to_owned();
        Net {
            subnet,
            security_group,
        }
    })
    .await
}

/// A task as the agent simulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// Task ARN.
    pub arn: String,
    /// `JENKINS_AGENT_NAME` of its overrides.
    pub agent: String,
    /// Every environment override (name → value).
    pub env: BTreeMap<String, String>,
    /// Tags (key → value).
    pub tags: BTreeMap<String, String>,
    /// `startedBy`.
    pub started_by: String,
    /// Neither last nor desired status is STOPPED.
    pub live: bool,
}

/// One world: a fake controller, a cluster, an owner, a configuration file.
pub struct World {
    /// The fake controller.
    pub fake: FakeJenkins,
    /// Owner id (unique per world).
    pub owner: String,
    /// ECS cluster (unique per world).
    pub cluster: String,
    /// The configuration file.
    pub config: PathBuf,
    /// ECS client in the program's account.
    pub ecs: aws_sdk_ecs::Client,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Templates of a world: `(name, labels)`, each Fargate 512/1024 with an idle
/// timeout of 1 s, plus top-level settings.
pub struct WorldSpec<'a> {
    /// Short unique tag for the owner id (≤ 20 characters, `a-z0-9-`).
    pub tag: &'a str,
    /// Templates: name and labels.
    pub templates: &'a [(&'a str, &'a str)],
    /// `caps.global`.
    pub global_cap: u32,
    /// Builds finish by themselves after this long.
    pub build_duration: Duration,
    /// Extra environment given to every template.
    pub template_env: &'a [(&'a str, &'a str)],
    /// Extra YAML settings of one template: (template name, `key: value`).
    pub template_settings: &'a [(&'a str, &'a str)],
    /// Further clouds, as YAML list items (indented two spaces).
    pub extra_clouds: &'a str,
}

impl World {
    /// Starts the fake controller, creates the cluster and writes the configuration.
    pub async fn new(spec: WorldSpec<'_>) -> World {
        let net = net().await;
        let moto_endpoint = moto().await.endpoint().to_owned();
        let fake = FakeJenkins::start(FakeJenkinsConfig {
            build_duration: Some(spec.build_duration),
            ..FakeJenkinsConfig::default()
        })
        .await;
        let owner = format!("{}-{}", spec.tag, std::process::id() % 100_000);
        assert!(owner.len() <= 32, "owner id too long: {owner}");
        let cluster = format!("e2e-{owner}");
        let ecs = ecs().await;
        ecs.create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .expect("CreateCluster");
        let mut templates = String::new();
        for (name, labels) in spec.templates {
            templates.push_str(&format!(
                "      - name: {name}\n        labels: \"{labels}\"\n        idle_timeout: 1s\n        spec: {{cpu: 512, memory: 1024}}\n"
            ));
            for (t, setting) in spec.template_settings {
                if t == name {
                    templates.push_str(&format!("        {setting}\n"));
                }
            }
            if !spec.template_env.is_empty() {
                templates.push_str("        environment:\n");
                for (k, v) in spec.template_env {
                    templates.push_str(&format!("          {k}: \"{v}\"\n"));
                }
            }
        }
        let yaml = format!(
            r#"owner: {owner}
jenkins: {{url: "{url}", user: admin, token_env: {TOKEN_VAR}}}
poll_interval: 1s
orphan_grace: 2s
caps: {{global: {cap}}}
clouds:
  - name: fargate
    kind: fargate
    region: us-east-1
    endpoint_url: "{moto_endpoint}"
    clusters: [{cluster}]
    defaults:
      cluster: {cluster}
      subnets: [{subnet}]
      security_groups: [{sg}]
      tags: {{team: e2e}}
    templates:
{templates}{extra_clouds}"#,
            extra_clouds = spec.extra_clouds,
            url = fake.url(),
            cap = spec.global_cap,
            subnet = net.subnet,
            sg = net.security_group,
        );
        let dir = std::env::temp_dir().join(format!("jc-e2e-{owner}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("jenkins-cloud.yaml");
        std::fs::write(&config, yaml).expect("write config");
        World {
            fake,
            owner,
            cluster,
            config,
            ecs,
            dir,
        }
    }

    /// Every task of the cluster (stopped ones included) with its overrides.
    pub async fn tasks(&self) -> Vec<TaskView> {
        let mut arns = BTreeSet::new();
        for status in [
            aws_sdk_ecs::types::DesiredStatus::Running,
            aws_sdk_ecs::types::DesiredStatus::Stopped,
        ] {
            let out = self
                .ecs
                .list_tasks()
                .cluster(&self.cluster)
                .desired_status(status)
                .send()
                .await
                .expect("ListTasks");
            arns.extend(out.task_arns().iter().cloned());
        }
        let arns: Vec<String> = arns.into_iter().collect();
        let mut out = Vec::new();
        for chunk in arns.chunks(100) {
            let described = self
                .ecs
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .include(aws_sdk_ecs::types::TaskField::Tags)
                .send()
                .await
                .expect("DescribeTasks");
            for t in described.tasks() {
                let mut env = BTreeMap::new();
                if let Some(o) = t.overrides() {
                    for c in o.container_overrides() {
                        for kv in c.environment() {
                            if let (Some(k), Some(v)) = (kv.name(), kv.value()) {
                                env.insert(k.to_owned(), v.to_owned());
                            }
                        }
                    }
                }
                let tags = t
                    .tags()
                    .iter()
                    .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                    .collect();
                let stopped =
                    t.last_status() == Some("STOPPED") || t.desired_status() == Some("STOPPED");
                out.push(TaskView {
                    arn: t.task_arn().unwrap_or_default().to_owned(),
                    agent: env.get("JENKINS_AGENT_NAME").cloned().unwrap_or_default(),
                    env,
                    tags,
                    started_by: t.started_by().unwrap_or_default().to_owned(),
                    live: !stopped,
                });
            }
        }
        out
    }

    /// Live tasks only.
    pub async fn live_tasks(&self) -> Vec<TaskView> {
        self.tasks().await.into_iter().filter(|t| t.live).collect()
    }

    /// Starts `jenkins-cloud <args>` on this world's configuration.
    pub fn spawn(&self, args: &[&str], crash_point: Option<&str>) -> Program {
        Program::spawn(&self.config, args, crash_point)
    }

    /// Runs `jenkins-cloud <args>` to completion: (success, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        self.run_with(args, None).await
    }

    /// [`World::run`] with `JENKINS_CLOUD_CRASH_POINT` set to `crash_point`.
    pub async fn run_with(
        &self,
        args: &[&str],
        crash_point: Option<&str>,
    ) -> (bool, String, String) {
        let out = program_command(&self.config, args, crash_point)
            .output()
            .await
            .expect("run jenkins-cloud");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Nodes of the fake controller that this world's program created.
    pub fn our_nodes(&self) -> Vec<String> {
        self.fake
            .nodes()
            .into_iter()
            .filter(|n| n.description.contains(&format!("owner={} ", self.owner)))
            .map(|n| n.name)
            .collect()
    }
}

fn program_command(config: &PathBuf, args: &[&str], crash_point: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env(TOKEN_VAR, TOKEN)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/jc-e2e")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/jc-e2e")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("RUST_LOG", "info")
        .env_remove("JENKINS_CLOUD_CRASH_POINT")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(p) = crash_point {
        cmd.env("JENKINS_CLOUD_CRASH_POINT", p);
    }
    cmd
}

/// A running `jenkins-cloud` process whose stderr is collected.
pub struct Program {
    child: Child,
    stderr: Arc<Mutex<String>>,
    marker: tokio::sync::watch::Receiver<bool>,
}

impl Program {
    fn spawn(config: &PathBuf, args: &[&str], crash_point: Option<&str>) -> Program {
        let mut child = program_command(config, args, crash_point)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn jenkins-cloud");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, marker) = tokio::sync::watch::channel(false);
        let pipe = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with(jenkins_cloud_cli::crashpoint::MARKER) {
                    let _ = tx.send(true);
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Program {
            child,
            stderr,
            marker,
        }
    }

    /// What the process wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the crash-point marker; `Err` with stderr on timeout or exit.
    pub async fn wait_marker(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if *self.marker.borrow() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader drain the pipe.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if *self.marker.borrow() {
                    return Ok(());
                }
                return Err(format!(
                    "exited ({status}) before the marker:\n{}",
                    self.stderr()
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("no marker within {timeout:?}:\n{}", self.stderr()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL (tokio's `Child::kill`), then reaps the process.
    pub async fn sigkill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// What the agent simulator saw.
#[derive(Debug, Default, Clone)]
pub struct SimStats {
    /// Most live tasks seen at once.
    pub max_live: usize,
    /// Live tasks seen twice for one agent name at once.
    pub duplicate_live: usize,
    /// Distinct task ARNs seen (launched tasks).
    pub tasks_seen: BTreeSet<String>,
    /// Distinct agent names seen on tasks.
    pub agents_seen: BTreeSet<String>,
    /// Successful connections.
    pub connections: usize,
    /// Connections refused: (agent, error).
    pub refused: Vec<(String, String)>,
    /// Queue ids of builds seen running.
    pub served: BTreeSet<u64>,
    /// Agent names that ran a build.
    pub build_nodes: BTreeSet<String>,
    /// Queue ids of builds that ran to completion.
    pub finished: BTreeSet<u64>,
    /// Builds lost because their agent's task stopped under them.
    pub aborted: usize,
    /// Build ids aborted (not counted as finished).
    pub aborted_ids: BTreeSet<u64>,
}

/// Plays the agents of a world: every `tick`, connects each live task's agent
/// with the secret from its overrides, and disconnects agents whose task stopped.
pub struct AgentSim {
    stats: Arc<Mutex<SimStats>>,
    task: tokio::task::JoinHandle<()>,
    sampler: tokio::task::JoinHandle<()>,
}

impl AgentSim {
    /// Starts simulating over `world` (borrowed through an `Arc`).
    pub fn start(world: Arc<World>, tick: Duration) -> AgentSim {
        let stats = Arc::new(Mutex::new(SimStats::default()));
        // Builds: sampled every 20 ms (no cloud calls), so none is missed.
        let s = Arc::clone(&stats);
        let w = Arc::clone(&world);
        let sampler = tokio::spawn(async move {
            let mut running: BTreeMap<u64, u64> = BTreeMap::new();
            loop {
                let now: BTreeMap<u64, (u64, String)> = w
                    .fake
                    .builds()
                    .into_iter()
                    .map(|b| (b.id, (b.queue_id, b.node)))
                    .collect();
                {
                    let mut st = s.lock().unwrap();
                    for (id, queue_id) in &running {
                        if !now.contains_key(id) && !st.aborted_ids.contains(id) {
                            st.finished.insert(*queue_id);
                        }
                    }
                    for (queue_id, node) in now.values() {
                        st.served.insert(*queue_id);
                        st.build_nodes.insert(node.clone());
                    }
                }
                running = now.into_iter().map(|(id, (q, _))| (id, q)).collect();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let s = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            let mut conns: BTreeMap<String, (String, AgentConnection)> = BTreeMap::new();
            let mut refused_once: BTreeSet<String> = BTreeSet::new();
            loop {
                let tasks = world.tasks().await;
                let live: Vec<&TaskView> = tasks.iter().filter(|t| t.live).collect();
                {
                    let mut st = s.lock().unwrap();
                    st.max_live = st.max_live.max(live.len());
                    let mut names = BTreeSet::new();
                    for t in &live {
                        if !names.insert(t.agent.clone()) {
                            st.duplicate_live += 1;
                        }
                    }
                    for t in &tasks {
                        st.tasks_seen.insert(t.arn.clone());
                        st.agents_seen.insert(t.agent.clone());
                    }
                }
                // Agents whose task stopped lose their connection.
                let live_arns: BTreeSet<&str> = live.iter().map(|t| t.arn.as_str()).collect();
                let gone: Vec<String> = conns
                    .iter()
                    .filter(|(arn, _)| !live_arns.contains(arn.as_str()))
                    .map(|(arn, _)| arn.clone())
                    .collect();
                for arn in gone {
                    if let Some((agent, conn)) = conns.remove(&arn) {
                        {
                            let mut st = s.lock().unwrap();
                            for b in world.fake.builds() {
                                if b.node == agent {
                                    st.aborted += 1;
                                    st.aborted_ids.insert(b.id);
                                }
                            }
                        }
                        world.fake.disconnect(&conn);
                    }
                }
                for t in live {
                    if conns.contains_key(&t.arn) || refused_once.contains(&t.arn) {
                        continue;
                    }
                    let secret = t.env.get("JENKINS_SECRET").cloned().unwrap_or_default();
                    match world.fake.connect_agent(&t.agent, &secret) {
                        Ok(conn) => {
                            s.lock().unwrap().connections += 1;
                            conns.insert(t.arn.clone(), (t.agent.clone(), conn));
                        }
                        // A task started before its node? Never: the node comes
                        // first. A node deleted while its task runs: the task is
                        // an orphan; remoting would exit, so we record it once.
                        Err(e) => {
                            refused_once.insert(t.arn.clone());
                            let kind = match e {
                                ConnectError::UnknownNode(_) => "unknown node",
                                ConnectError::WrongSecret(_) => "wrong secret",
                                ConnectError::AlreadyConnected(_) => "already connected",
                            };
                            s.lock()
                                .unwrap()
                                .refused
                                .push((t.agent.clone(), kind.into()));
                        }
                    }
                }
                tokio::time::sleep(tick).await;
            }
        });
        AgentSim {
            stats,
            task,
            sampler,
        }
    }

    /// A copy of the figures so far.
    pub fn stats(&self) -> SimStats {
        self.stats.lock().unwrap().clone()
    }
}

impl Drop for AgentSim {
    fn drop(&mut self) {
        self.task.abort();
        self.sampler.abort();
    }
}

/// Polls `cond` every 100 ms until it holds; `Err(what)` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
