//! One chaos world: the in-memory cloud and controller, the production layer
//! stack with fault injection, seeded templates and a seeded workload.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jenkins_cloud_core::backend::{
    AgentLaunch, AgentTransport, Backend, CloudState, JenkinsEndpoint, LaunchBatch, OwnerId,
};
use jenkins_cloud_core::jenkins::{JenkinsApi, NodeMarker, NodeSpec};
use jenkins_cloud_core::label::{LabelExpr, LabelSet};
use jenkins_cloud_core::layer::{
    FaultBackend, FaultConfig, FaultJenkins, JenkinsFaultConfig, JenkinsOpFaults, OpFaults,
    RetryBackend, RetryPolicy,
};
use jenkins_cloud_core::memory::{
    Latency, MemoryBackend, MemoryCloud, MemoryJenkins, Submission, WarmPool,
};
use jenkins_cloud_core::reconcile::{Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::NoDelay;
use jenkins_cloud_core::template::{AgentTemplate, NodeMode};
use jenkins_cloud_core::{ErrorClass, Secret};

use super::ticks::Ticks;

/// Time between passes.
pub const POLL: Duration = Duration::from_secs(10);
/// Builds are submitted during this window.
pub const WORKLOAD_WINDOW: Duration = Duration::from_secs(30 * 60);
/// The foreign static agent (not ours, no marker).
pub const STATIC_NODE: &str = "static-win";
/// A node another jenkins-cloud owner created.
pub const FOREIGN_NODE: &str = "other-linux-aaaaaa";
/// The other owner.
pub const OTHER_OWNER: &str = "other";

/// A build of the workload, submitted at `at` after the start.
#[derive(Debug, Clone)]
pub struct Planned {
    pub at: Duration,
    pub submission: Submission,
}

/// One seeded world.
pub struct World {
    pub seed: u64,
    pub rng: fastrand::Rng,
    pub owner: OwnerId,
    pub cloud: MemoryCloud,
    pub jenkins: MemoryJenkins,
    pub memory: MemoryBackend,
    pub faults: Arc<FaultBackend<MemoryBackend>>,
    pub retry: Arc<RetryBackend<FaultBackend<MemoryBackend>>>,
    pub faulty_jenkins: Arc<FaultJenkins<MemoryJenkins>>,
    pub templates: Vec<AgentTemplate>,
    pub global_cap: u32,
    pub workload: Vec<Planned>,
    /// Probability per pass of a restart (half of them kill a pass midway).
    pub restart_rate: f64,
    /// Probability per pass of a spot interruption.
    pub interrupt_rate: f64,
    /// The foreign owner's instance.
    pub foreign_instance: jenkins_cloud_core::backend::CloudId,
    /// Agents whose instance was interrupted.
    pub interrupted: std::collections::BTreeSet<String>,
    /// When the world was made.
    pub t0: tokio::time::Instant,
    /// The backend's warm pool, in about a third of the seeds: terminated
    /// instances are stopped and restarted (same cloud id) for new agents.
    pub warm_pool: Option<WarmPool>,
    /// Queue items of the `broken` template, in about a quarter of the seeds:
    /// a template whose every resource dies before its agent connects (an
    /// image that cannot be pulled) while the faults last.
    pub broken_items: u64,
    /// The instance cap of the `overflow` template, in a third of the seeds:
    /// same labels as `linux`, after it in the configuration.
    pub overflow_cap: Option<u32>,
    incarnation: u64,
}

/// What [`World::interrupt_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// No instance of ours to hit, or the pick was already stopping.
    NoTarget,
    /// A pending or running instance was interrupted.
    Hit,
    /// The pick was a warm-pool member (stopping or stopped): refused.
    RefusedPoolMember,
}

/// In about a third of the seeds, a warm pool of 1–4 stopped instances per
/// template, restarting in 5–20 s (up to 40 s more).
fn warm_pool(rng: &mut fastrand::Rng) -> Option<WarmPool> {
    if rng.u32(0..3) != 0 {
        return None;
    }
    let min = Duration::from_secs(rng.u64(5..=20));
    Some(WarmPool {
        max_stopped: rng.usize(1..=4),
        restart_latency: Latency::Uniform {
            min,
            max: min + Duration::from_secs(rng.u64(0..=40)),
        },
    })
}

fn backend_faults(rng: &mut fastrand::Rng) -> FaultConfig {
    let k = 0.5 + rng.f64(); // intensity 0.5–1.5
    let base = OpFaults {
        throttled: 0.04 * k,
        transient: 0.04 * k,
        timeout: 0.02 * k,
        timeout_delay: Duration::from_secs(5),
        slow: 0.05 * k,
        slow_delay: Duration::from_secs(2),
        ..OpFaults::default()
    };
    FaultConfig {
        launch: OpFaults {
            capacity: 0.04 * k,
            permanent: 0.01 * k,
            partial: 0.05 * k,
            partial_class: if rng.bool() {
                ErrorClass::Capacity
            } else {
                ErrorClass::Transient
            },
            ..base
        },
        describe: base,
        terminate: OpFaults {
            partial: 0.05 * k,
            partial_class: ErrorClass::Transient,
            ..base
        },
        list_owned: base,
    }
}

fn jenkins_faults(rng: &mut fastrand::Rng) -> JenkinsFaultConfig {
    let k = 0.5 + rng.f64();
    let faults = JenkinsOpFaults {
        throttled: 0.01 * k,
        server_error: 0.03 * k,
        html: 0.02 * k,
        timeout: 0.02 * k,
        timeout_delay: Duration::from_secs(5),
        slow: 0.05 * k,
        slow_delay: Duration::from_millis(500),
    };
    JenkinsFaultConfig {
        outage: 0.002 * k,
        outage_duration: Duration::from_secs(20 + rng.u64(0..100)),
        ..JenkinsFaultConfig::uniform(faults)
    }
}

fn templates(rng: &mut fastrand::Rng) -> Vec<AgentTemplate> {
    let mut linux = AgentTemplate::new("linux", LabelSet::parse("linux docker"));
    linux.instance_cap = Some(rng.u32(2..=5));
    linux.retention.idle_timeout = Some(Duration::from_secs(rng.u64(60..=240)));
    let mut oneshot = AgentTemplate::new("oneshot", LabelSet::parse("ephemeral"));
    oneshot.mode = NodeMode::Exclusive;
    oneshot.retention.one_shot = true;
    let mut out = vec![linux, oneshot];
    if rng.bool() {
        let mut arm = AgentTemplate::new("arm", LabelSet::parse("arm64"));
        arm.executors = 2;
        arm.retention.idle_timeout = Some(Duration::from_secs(rng.u64(60..=180)));
        out.push(arm);
    }
    out
}

fn workload(rng: &mut fastrand::Rng, with_arm: bool) -> Vec<Planned> {
    let n = rng.usize(5..=40);
    let mut builds: Vec<Planned> = (0..n)
        .map(|i| {
            let roll = rng.u32(0..100);
            let label = match roll {
                0..=44 => Some("linux"),
                45..=74 => Some("ephemeral"),
                75..=89 if with_arm => Some("arm64"),
                75..=89 => Some("linux&&docker"),
                _ => None,
            };
            let label: Option<LabelExpr> = label.map(|l| l.parse().expect("test label"));
            let duration = Duration::from_secs(rng.u64(20..=600));
            Planned {
                at: Duration::from_secs(rng.u64(0..WORKLOAD_WINDOW.as_secs())),
                submission: Submission::new(format!("job-{i}"), label, duration)
                    .retry_on_agent_loss(),
            }
        })
        .collect();
    builds.sort_by_key(|p| p.at);
    builds
}

/// The stop reason of a `broken` resource (ECS, image not found).
pub const PULL_ERROR: &str =
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): not found";

/// Adds the `broken` template (label `broken`, resources that take 60 s to
/// start, so the harness fails each before its agent connects) and 1–4 builds
/// for it; returns their number.
fn broken(
    rng: &mut fastrand::Rng,
    templates: &mut Vec<AgentTemplate>,
    workload: &mut Vec<Planned>,
    memory: &MemoryBackend,
) -> u64 {
    templates.push(AgentTemplate::new("broken", LabelSet::parse("broken")));
    let _ = memory
        .clone()
        .with_template_start_latency("broken", Latency::Fixed(Duration::from_secs(60)));
    let n = rng.u64(1..=4);
    for i in 0..n {
        workload.push(Planned {
            at: Duration::from_secs(rng.u64(0..WORKLOAD_WINDOW.as_secs() / 2)),
            submission: Submission::new(
                format!("broken-{i}"),
                Some("broken".parse().expect("test label")),
                Duration::from_secs(30),
            ),
        });
    }
    workload.sort_by_key(|p| p.at);
    n
}

impl World {
    /// Fails every pending or running `broken` resource with [`PULL_ERROR`];
    /// returns how many.
    pub fn fail_broken(&self) -> u64 {
        let mut failed = 0;
        for r in self.cloud.instances() {
            if r.owner == self.owner
                && r.instance.template == "broken"
                && matches!(r.instance.state, CloudState::Pending | CloudState::Running)
                && self.memory.interrupt(&r.instance.id, PULL_ERROR)
            {
                failed += 1;
            }
        }
        failed
    }

    /// Builds the world of `seed` (call inside a paused tokio runtime).
    pub async fn new(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let owner = OwnerId::new("ci").unwrap();
        let cloud = MemoryCloud::new();
        cloud.set_retention(Duration::from_secs(600));
        let jenkins = MemoryJenkins::new(owner.clone());
        let memory = MemoryBackend::on_cloud(cloud.clone(), owner.clone())
            .with_seed(seed)
            .with_start_latency(Latency::Uniform {
                min: Duration::from_secs(5),
                max: Duration::from_secs(60),
            });
        memory.connect_agents_to(&jenkins);
        let faults = Arc::new(
            FaultBackend::new(Arc::new(memory.clone()), backend_faults(&mut rng), seed)
                .expect("valid backend faults"),
        );
        let retry = Arc::new(RetryBackend::with_seed(
            faults.clone(),
            RetryPolicy::default(),
            seed,
        ));
        let faulty_jenkins = Arc::new(
            FaultJenkins::new(Arc::new(jenkins.clone()), jenkins_faults(&mut rng), seed)
                .expect("valid Jenkins faults"),
        );
        let templates = templates(&mut rng);
        let with_arm = templates.len() == 3;
        let global_cap = rng.u32(4..=8);
        let workload = workload(&mut rng, with_arm);
        let restart_rate = 0.01 + 0.04 * rng.f64();
        let interrupt_rate = 0.01 + 0.04 * rng.f64();
        // Drawn last, so the other settings of a seed are those of runs
        // without a pool.
        let warm_pool = warm_pool(&mut rng);
        if let Some(pool) = warm_pool {
            // The configuration is shared by every clone of the backend.
            let _ = memory.clone().with_warm_pool(pool);
        }
        // Drawn after the pool, for the same reason.
        let mut templates = templates;
        let mut workload = workload;
        let broken_items = if rng.u32(0..4) == 0 {
            broken(&mut rng, &mut templates, &mut workload, &memory)
        } else {
            0
        };
        // Drawn last too: in a third of the seeds a second template takes
        // the `linux` builds the first cannot take (spill).
        let overflow_cap = (rng.u32(0..3) == 0).then(|| {
            let cap = rng.u32(1..=3);
            let mut t = AgentTemplate::new("overflow", LabelSet::parse("linux docker"));
            t.instance_cap = Some(cap);
            t.retention.idle_timeout = Some(Duration::from_secs(120));
            templates.push(t);
            cap
        });
        let foreign_instance = foreign_resources(&cloud, &jenkins).await;
        Self {
            seed,
            rng,
            owner,
            cloud,
            jenkins,
            memory,
            faults,
            retry,
            faulty_jenkins,
            templates,
            global_cap,
            workload,
            restart_rate,
            interrupt_rate,
            foreign_instance,
            interrupted: Default::default(),
            t0: tokio::time::Instant::now(),
            warm_pool,
            broken_items,
            overflow_cap,
            incarnation: 0,
        }
    }

    fn config(&mut self) -> ReconcileConfig {
        let endpoint = JenkinsEndpoint {
            url: "https://jenkins.example/".into(),
            transport: AgentTransport::WebSocket,
        };
        let mut config = ReconcileConfig::new(self.owner.clone(), endpoint);
        config.poll_interval = POLL;
        config.caps.global = Some(self.global_cap);
        // Each incarnation of the program draws its own names, as a real
        // process with a random seed would.
        self.incarnation += 1;
        config.seed = Some(self.seed.wrapping_mul(1_000_003) ^ self.incarnation);
        config
    }

    fn reconciler_over(
        &mut self,
        backend: Arc<dyn Backend>,
        jenkins: Arc<dyn JenkinsApi>,
    ) -> Reconciler {
        let config = self.config();
        let pools = self
            .templates
            .iter()
            .map(|t| Pool {
                template: Arc::new(t.clone()),
                backend: Arc::clone(&backend),
            })
            .collect();
        Reconciler::new(config, jenkins, pools, Box::new(NoDelay))
    }

    /// A (re)started program over the faulty stack: fault injection, retries,
    /// the faulty controller. Nothing of an earlier incarnation survives.
    pub fn faulty_reconciler(&mut self) -> Reconciler {
        let backend: Arc<dyn Backend> = Arc::new(Ticks(self.retry.clone()));
        let jenkins: Arc<dyn JenkinsApi> = Arc::new(Ticks(self.faulty_jenkins.clone()));
        self.reconciler_over(backend, jenkins)
    }

    /// A program started once the faults are over: retries over the plain backend.
    pub fn calm_reconciler(&mut self) -> Reconciler {
        let backend: Arc<dyn Backend> = Arc::new(RetryBackend::with_seed(
            Arc::new(self.memory.clone()),
            RetryPolicy::default(),
            self.seed,
        ));
        let jenkins: Arc<dyn JenkinsApi> = Arc::new(self.jenkins.clone());
        self.reconciler_over(backend, jenkins)
    }

    /// Our live (not gone) instances per template, and per agent name;
    /// warm-pool members (empty agent name: assigned to no agent, holding no
    /// capacity) are not counted, see [`World::pool_members`].
    pub fn live_instances(&self) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
        let mut by_template = BTreeMap::new();
        let mut by_agent = BTreeMap::new();
        for r in self.cloud.instances() {
            if r.owner != self.owner
                || r.instance.state.is_gone()
                || r.instance.agent_name.is_empty()
            {
                continue;
            }
            *by_template.entry(r.instance.template.clone()).or_insert(0) += 1;
            *by_agent.entry(r.instance.agent_name.clone()).or_insert(0) += 1;
        }
        (by_template, by_agent)
    }

    /// Our warm-pool members: instances not gone whose agent name is empty.
    pub fn pool_members(&self) -> Vec<jenkins_cloud_core::memory::InstanceRecord> {
        self.cloud
            .instances()
            .into_iter()
            .filter(|r| {
                r.owner == self.owner
                    && !r.instance.state.is_gone()
                    && r.instance.agent_name.is_empty()
            })
            .collect()
    }

    /// Interrupts one of our instances not gone, drawn at random (warm-pool
    /// members included: they must refuse). `Err` if a pool member was hit.
    pub fn interrupt_one(&mut self) -> Result<Interruption, String> {
        let live: Vec<_> = self
            .cloud
            .instances()
            .into_iter()
            .filter(|r| r.owner == self.owner && !r.instance.state.is_gone())
            .collect();
        if live.is_empty() {
            return Ok(Interruption::NoTarget);
        }
        let pick = &live[self.rng.usize(..live.len())];
        let done = self
            .memory
            .interrupt(&pick.instance.id, "Server.SpotInstanceTermination");
        match (done, pick.instance.agent_name.is_empty()) {
            (true, true) => Err(format!(
                "warm-pool member {} ({:?}) was interrupted",
                pick.instance.id, pick.instance.state
            )),
            (true, false) => {
                self.interrupted.insert(pick.instance.agent_name.clone());
                Ok(Interruption::Hit)
            }
            (false, true) => Ok(Interruption::RefusedPoolMember),
            // Stopping towards terminated: nothing left to interrupt.
            (false, false) => Ok(Interruption::NoTarget),
        }
    }
}

/// Resources that are not ours: a static agent, a node and an instance of
/// another owner. Every one must survive the run untouched.
async fn foreign_resources(
    cloud: &MemoryCloud,
    jenkins: &MemoryJenkins,
) -> jenkins_cloud_core::backend::CloudId {
    jenkins.add_static_node(STATIC_NODE, "windows", 1, NodeMode::Exclusive);
    let other = OwnerId::new(OTHER_OWNER).unwrap();
    let spec = NodeSpec {
        name: FOREIGN_NODE.into(),
        marker: NodeMarker {
            owner: other.clone(),
            template: "linux".into(),
            created_at_ms: 0,
        },
        labels: LabelSet::parse("foreign"),
        executors: 1,
        remote_fs: "/home/jenkins/agent".into(),
        mode: NodeMode::Exclusive,
        web_socket: true,
    };
    jenkins
        .view_as(other.clone())
        .create_node(&spec)
        .await
        .expect("foreign node");
    let backend = MemoryBackend::on_cloud(cloud.clone(), other);
    let template = AgentTemplate::new("linux", LabelSet::parse("foreign"));
    let endpoint = JenkinsEndpoint {
        url: "https://jenkins.example/".into(),
        transport: AgentTransport::WebSocket,
    };
    let agents = [AgentLaunch {
        agent_name: "other-linux-bbbbbb".into(),
        secret: Secret::new("not-a-real-secret"),
        client_token: "foreign-token".into(),
    }];
    let outcome = backend
        .launch(LaunchBatch {
            template: &template,
            jenkins: &endpoint,
            agents: &agents,
        })
        .await;
    outcome[0].result.clone().expect("foreign instance")
}
