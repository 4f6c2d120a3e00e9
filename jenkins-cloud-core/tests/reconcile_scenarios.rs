//! The real reconcile loop over the in-memory controller and cloud, in paused time.

use std::sync::Arc;
use std::time::Duration;

use jenkins_cloud_core::backend::{AgentTransport, Backend, JenkinsEndpoint, OwnerId};
use jenkins_cloud_core::jenkins::{JenkinsApi, NodeMarker, NodeSpec};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::memory::{BuildOutcome, MemoryBackend, MemoryCloud, MemoryJenkins};
use jenkins_cloud_core::reconcile::{Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::NoDelay;
use jenkins_cloud_core::template::{AgentTemplate, NodeMode};

const POLL: Duration = Duration::from_secs(5);

struct World {
    owner: OwnerId,
    jenkins: MemoryJenkins,
    cloud: MemoryCloud,
    backend: MemoryBackend,
}

impl World {
    fn new() -> Self {
        let owner = OwnerId::new("ci").unwrap();
        let cloud = MemoryCloud::new();
        let jenkins = MemoryJenkins::new(owner.clone());
        let backend = MemoryBackend::on_cloud(cloud.clone(), owner.clone());
        backend.connect_agents_to(&jenkins);
        Self {
            owner,
            jenkins,
            cloud,
            backend,
        }
    }

    fn reconciler(&self, templates: Vec<AgentTemplate>, caps_global: Option<u32>) -> Reconciler {
        let endpoint = JenkinsEndpoint {
            url: "https://jenkins.example/".into(),
            transport: AgentTransport::WebSocket,
        };
        let mut config = ReconcileConfig::new(self.owner.clone(), endpoint);
        config.poll_interval = POLL;
        config.caps.global = caps_global;
        config.seed = Some(42);
        let backend: Arc<dyn Backend> = Arc::new(self.backend.clone());
        let pools = templates
            .into_iter()
            .map(|t| Pool {
                template: Arc::new(t),
                backend: Arc::clone(&backend),
            })
            .collect();
        Reconciler::new(
            config,
            Arc::new(self.jenkins.clone()),
            pools,
            Box::new(NoDelay),
        )
    }

    fn submit(&self, n: usize, label: &str, duration: Duration) {
        for i in 0..n {
            self.jenkins
                .submit(format!("job-{i}"), Some(label.parse().unwrap()), duration);
        }
    }

    /// Runs passes until `done` or `limit` of simulated time; checks invariants each pass.
    async fn run(&self, r: &mut Reconciler, limit: Duration, mut check: impl FnMut(&World)) {
        let start = tokio::time::Instant::now();
        while start.elapsed() < limit {
            r.run_once().await.expect("pass");
            check(self);
            tokio::time::sleep(POLL).await;
        }
    }

    fn finished(&self) -> usize {
        self.jenkins
            .history()
            .iter()
            .filter(|b| b.outcome == BuildOutcome::Succeeded)
            .count()
    }
}

fn linux() -> AgentTemplate {
    AgentTemplate::new("linux", LabelSet::parse("linux"))
}

#[tokio::test(start_paused = true)]
async fn fifty_queued_builds_get_exactly_fifty_agents_and_all_retire() {
    let w = World::new();
    w.submit(50, "linux", Duration::from_secs(120));
    let mut r = w.reconciler(vec![linux()], None);
    w.run(&mut r, Duration::from_secs(20 * 60), |_| {}).await;
    assert_eq!(w.finished(), 50);
    assert_eq!(
        w.backend.stats().launched,
        50,
        "one agent per build, none twice"
    );
    assert_eq!(
        w.cloud.active_count(),
        0,
        "idle agents retired after the 5 min timeout"
    );
    assert!(
        w.jenkins.nodes().await.unwrap().is_empty(),
        "their nodes are deleted"
    );
    assert!(w.jenkins.refused_connections().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_idle_agent_retires_after_its_timeout_not_before() {
    let w = World::new();
    let mut t = linux();
    t.retention.idle_timeout = Some(Duration::from_secs(120));
    w.submit(1, "linux", Duration::from_secs(60));
    let mut r = w.reconciler(vec![t], None);
    // Start (30 s) + connect (5 s) + build (60 s), then 120 s idle.
    w.run(&mut r, Duration::from_secs(180), |_| {}).await;
    assert_eq!(w.finished(), 1);
    assert_eq!(w.cloud.active_count(), 1, "still within its idle timeout");
    w.run(&mut r, Duration::from_secs(60), |_| {}).await;
    assert_eq!(w.cloud.active_count(), 0);
    let stop = w.cloud.instances()[0].stop_reason.clone().unwrap();
    assert_eq!(stop, "drained and idle");
    assert_eq!(w.backend.stats().launched, 1);
}

#[tokio::test(start_paused = true)]
async fn one_shot_agents_run_exactly_one_build_each() {
    let w = World::new();
    let mut t = linux();
    t.retention.one_shot = true;
    w.submit(8, "linux", Duration::from_secs(30));
    let mut r = w.reconciler(vec![t], None);
    w.run(&mut r, Duration::from_secs(10 * 60), |_| {}).await;
    let history = w.jenkins.history();
    assert_eq!(w.finished(), 8);
    let mut nodes: Vec<_> = history.iter().map(|b| b.node.clone().unwrap()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 8, "no agent ran two builds");
    assert_eq!(w.backend.stats().launched, 8, "launches per build = 1.00");
    assert_eq!(w.cloud.active_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn caps_hold_at_every_pass_and_every_build_is_served() {
    let w = World::new();
    let mut small = linux();
    small.instance_cap = Some(5);
    let mut exclusive = AgentTemplate::new("docker", LabelSet::parse("docker"));
    exclusive.mode = NodeMode::Exclusive;
    w.submit(20, "linux", Duration::from_secs(60));
    w.submit(20, "docker", Duration::from_secs(60));
    let mut r = w.reconciler(vec![small, exclusive], Some(8));
    let mut peak = 0;
    w.run(&mut r, Duration::from_secs(30 * 60), |w| {
        let alive = w.cloud.active_count();
        peak = peak.max(alive);
        assert!(alive <= 8, "global cap exceeded: {alive}");
        let linux_alive = w
            .cloud
            .instances()
            .iter()
            .filter(|i| i.instance.template == "linux" && !i.instance.state.is_gone())
            .count();
        assert!(linux_alive <= 5, "template cap exceeded: {linux_alive}");
    })
    .await;
    assert_eq!(w.finished(), 40);
    assert_eq!(peak, 8, "the caps were reached, not avoided");
}

#[tokio::test(start_paused = true)]
async fn a_restart_mid_launch_recovers_without_duplicates() {
    let w = World::new();
    w.submit(10, "linux", Duration::from_secs(60));
    let mut first = w.reconciler(vec![linux()], None);
    first.run_once().await.unwrap();
    assert_eq!(w.backend.stats().launched, 10);
    drop(first); // the process dies: nothing of its memory survives

    // A crash between creating a node and launching it left one more node behind.
    let orphan = NodeSpec {
        name: "ci-linux-orphan".into(),
        marker: NodeMarker {
            owner: w.owner.clone(),
            template: "linux".into(),
            created_at_ms: 1_735_689_600_000,
        },
        labels: LabelSet::parse("linux"),
        executors: 1,
        remote_fs: "/home/jenkins/agent".into(),
        mode: NodeMode::Normal,
        web_socket: true,
    };
    w.jenkins.create_node(&orphan).await.unwrap();

    let mut second = w.reconciler(vec![linux()], None);
    w.run(&mut second, Duration::from_secs(15 * 60), |_| {})
        .await;
    assert_eq!(
        w.backend.stats().launched,
        10,
        "the restarted loop adopted the 10 agents"
    );
    assert_eq!(w.finished(), 10);
    let names: Vec<_> = w
        .jenkins
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert!(
        names.is_empty(),
        "orphaned and retired nodes are gone: {names:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_spot_interruption_fails_the_agent_fast_and_removes_its_node() {
    let w = World::new();
    w.submit(1, "linux", Duration::from_secs(600));
    let mut r = w.reconciler(vec![linux()], None);
    w.run(&mut r, Duration::from_secs(60), |_| {}).await;
    let id = w.cloud.instances()[0].instance.id.clone();
    assert!(w.backend.interrupt(&id, "Server.SpotInstanceTermination"));
    w.run(&mut r, Duration::from_secs(30), |_| {}).await;
    let history = w.jenkins.history();
    assert!(
        matches!(history[0].outcome, BuildOutcome::Aborted(_)),
        "{:?}",
        history[0].outcome
    );
    assert!(
        w.jenkins.nodes().await.unwrap().is_empty(),
        "the dead agent's node is removed at once"
    );
}

#[tokio::test(start_paused = true)]
async fn launched_agents_remember_when_their_builds_entered_the_queue() {
    let w = World::new();
    let submitted = tokio::time::Instant::now();
    w.submit(2, "linux", Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(7)).await;
    // Wall time of the loop must be the controller's: same epoch, same start.
    let endpoint = JenkinsEndpoint {
        url: "https://jenkins.example/".into(),
        transport: AgentTransport::WebSocket,
    };
    let config = ReconcileConfig::new(w.owner.clone(), endpoint);
    let backend: Arc<dyn Backend> = Arc::new(w.backend.clone());
    let epoch_ms = jenkins_cloud_core::memory::DEFAULT_EPOCH_SECS * 1000 + 7_000;
    let mut r = Reconciler::with_epoch(
        config,
        Arc::new(w.jenkins.clone()),
        vec![Pool {
            template: Arc::new(linux()),
            backend,
        }],
        Box::new(NoDelay),
        epoch_ms,
    );
    let report = r.run_once().await.unwrap();
    assert_eq!(report.act.launched.len(), 2);
    for agent in r.agents() {
        assert_eq!(agent.queued_since, Some(submitted), "{}", agent.name);
        assert_eq!(
            agent.launched_at.duration_since(submitted),
            Duration::from_secs(7)
        );
    }
}
