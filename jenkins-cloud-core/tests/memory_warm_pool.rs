//! MemoryBackend's warm pool (EC2-like stop/restart), alone and under the real
//! reconcile loop, in paused time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jenkins_cloud_core::backend::{
    AgentLaunch, AgentTransport, Backend, BackendError, Capabilities, CloudId, CloudInstance,
    CloudState, JenkinsEndpoint, LaunchBatch, LaunchOutcome, OwnerId, TerminateOutcome,
};
use jenkins_cloud_core::jenkins::{JenkinsApi, NodeMarker, NodeSpec};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::lifecycle::AgentState;
use jenkins_cloud_core::memory::{
    BuildOutcome, BuildRecord, Latency, MemoryBackend, MemoryCloud, MemoryJenkins, StateSeconds,
    WarmPool,
};
use jenkins_cloud_core::reconcile::{Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::NoDelay;
use jenkins_cloud_core::template::{AgentTemplate, NodeMode};
use jenkins_cloud_core::{ErrorClass, Secret};
use tokio::time::{sleep, Instant};

const S: fn(u64) -> Duration = Duration::from_secs;

/// Start 30 s, stop 10 s, connect 5 s, restart 21 s.
fn pooled(max_stopped: usize) -> MemoryBackend {
    MemoryBackend::new(OwnerId::new("ci").unwrap())
        .with_start_latency(Latency::Fixed(S(30)))
        .with_stop_latency(S(10))
        .with_connect_latency(S(5))
        .with_warm_pool(WarmPool {
            max_stopped,
            restart_latency: Latency::Fixed(S(21)),
        })
}

fn template(name: &str) -> AgentTemplate {
    AgentTemplate::new(name, LabelSet::parse("linux"))
}

fn agent(name: &str) -> AgentLaunch {
    AgentLaunch {
        agent_name: name.into(),
        secret: Secret::new(format!("secret-of-{name}")),
        client_token: format!("token-{name}"),
    }
}

async fn try_launch_all(
    b: &MemoryBackend,
    t: &AgentTemplate,
    agents: &[AgentLaunch],
) -> Vec<Result<CloudId, BackendError>> {
    let jenkins = JenkinsEndpoint {
        url: "http://j.invalid/".into(),
        transport: AgentTransport::WebSocket,
    };
    b.launch(LaunchBatch {
        template: t,
        jenkins: &jenkins,
        agents,
    })
    .await
    .into_iter()
    .map(|o| o.result)
    .collect()
}

async fn launch_all(b: &MemoryBackend, t: &AgentTemplate, agents: &[AgentLaunch]) -> Vec<CloudId> {
    let results = try_launch_all(b, t, agents).await;
    results.into_iter().map(Result::unwrap).collect()
}

async fn launch(b: &MemoryBackend, t: &AgentTemplate, name: &str) -> CloudId {
    launch_all(b, t, &[agent(name)]).await.remove(0)
}

async fn terminate(b: &MemoryBackend, ids: &[CloudId]) {
    for o in b.terminate(ids, "idle").await {
        o.result.unwrap();
    }
}

async fn describe(b: &MemoryBackend, id: &CloudId) -> CloudInstance {
    b.describe(std::slice::from_ref(id))
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test(start_paused = true)]
async fn terminate_stops_into_the_pool_and_clears_the_agent() {
    let b = pooled(5);
    assert!(b.capabilities().stop_resume);
    let id = launch(&b, &template("t"), "a").await;
    sleep(S(40)).await;
    terminate(&b, std::slice::from_ref(&id)).await;
    let inst = describe(&b, &id).await;
    assert_eq!(inst.state, CloudState::Stopping);
    assert_eq!(inst.agent_name, "", "a pool member is no agent");
    sleep(S(10)).await;
    assert_eq!(describe(&b, &id).await.state, CloudState::Stopped);
    // Never forgotten, holds no capacity, cannot be interrupted, terminating
    // it again changes nothing.
    sleep(S(2 * 3600)).await;
    assert_eq!(describe(&b, &id).await.state, CloudState::Stopped);
    assert_eq!(b.cloud().active_count(), 0);
    assert!(!b.interrupt(&id, "spot"));
    terminate(&b, std::slice::from_ref(&id)).await;
    assert_eq!(describe(&b, &id).await.state, CloudState::Stopped);
    let stats = b.stats();
    assert_eq!((stats.terminated, stats.pooled), (1, 1));
    let listed = b.list_owned().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, CloudState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn the_pool_is_bounded_per_template_and_the_rest_terminate() {
    let b = pooled(2);
    let (t, u) = (template("t"), template("u"));
    let ids = launch_all(&b, &t, &[agent("a"), agent("b"), agent("c")]).await;
    let other = launch(&b, &u, "d").await;
    sleep(S(40)).await;
    terminate(&b, &ids).await;
    terminate(&b, std::slice::from_ref(&other)).await;
    sleep(S(10)).await;
    let states: Vec<CloudState> = b
        .describe(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.state)
        .collect();
    assert_eq!(
        states,
        vec![
            CloudState::Stopped,
            CloudState::Stopped,
            CloudState::Terminated
        ]
    );
    assert_eq!(
        describe(&b, &other).await.state,
        CloudState::Stopped,
        "another template has a pool of its own"
    );
    assert_eq!((b.stats().terminated, b.stats().pooled), (4, 3));
    // The terminated one is forgotten after retention; the pooled ones are not.
    sleep(S(3601)).await;
    assert_eq!(b.list_owned().await.unwrap().len(), 3);
}

async fn node_for(jenkins: &MemoryJenkins, owner: &OwnerId, name: &str) -> AgentLaunch {
    let spec = NodeSpec {
        name: name.into(),
        marker: NodeMarker {
            owner: owner.clone(),
            template: "t".into(),
            created_at_ms: 1_735_689_600_000,
        },
        labels: LabelSet::parse("linux"),
        executors: 1,
        remote_fs: "/home/jenkins/agent".into(),
        mode: NodeMode::Normal,
        web_socket: true,
    };
    jenkins.create_node(&spec).await.unwrap();
    AgentLaunch {
        agent_name: name.into(),
        secret: jenkins.agent_secret(name).await.unwrap(),
        client_token: format!("token-{name}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_launch_restarts_a_stopped_instance_and_its_new_agent_connects() {
    let owner = OwnerId::new("ci").unwrap();
    let jenkins = MemoryJenkins::new(owner.clone());
    let b = pooled(5);
    b.connect_agents_to(&jenkins);
    let t = template("t");
    let first = node_for(&jenkins, &owner, "ci-t-1").await;
    let id = launch_all(&b, &t, std::slice::from_ref(&first))
        .await
        .remove(0);
    sleep(S(36)).await;
    assert!(jenkins.is_connected("ci-t-1"));
    terminate(&b, std::slice::from_ref(&id)).await;
    jenkins.delete_node("ci-t-1").await.unwrap();
    sleep(S(10)).await;
    assert!(!jenkins.is_connected("ci-t-1"));

    let second = node_for(&jenkins, &owner, "ci-t-2").await;
    assert_ne!(first.secret, second.secret);
    let again = launch_all(&b, &t, std::slice::from_ref(&second))
        .await
        .remove(0);
    assert_eq!(again, id, "the stopped instance is reused");
    let inst = describe(&b, &id).await;
    assert_eq!(
        (inst.state, inst.agent_name.as_str()),
        (CloudState::Pending, "ci-t-2")
    );
    sleep(S(20)).await;
    assert_eq!(describe(&b, &id).await.state, CloudState::Pending);
    sleep(S(1)).await;
    assert_eq!(
        describe(&b, &id).await.state,
        CloudState::Running,
        "after 21 s"
    );
    sleep(S(4)).await;
    assert!(!jenkins.is_connected("ci-t-2"));
    sleep(S(1)).await;
    assert!(jenkins.is_connected("ci-t-2"), "connects 5 s after running");
    assert!(
        jenkins.refused_connections().is_empty(),
        "with the new secret"
    );
    let record = b.cloud().instances().remove(0);
    assert_eq!(record.secret, second.secret);
    assert_eq!(record.client_token, "token-ci-t-2");
    let stats = b.stats();
    assert_eq!((stats.launched, stats.restarted), (1, 1));
    // Client tokens stay idempotent: the same token, the same instance.
    let replay = launch_all(&b, &t, std::slice::from_ref(&second))
        .await
        .remove(0);
    assert_eq!(replay, id);
    assert_eq!(b.stats().idempotent_replays, 1);
    assert_eq!(b.stats().restarted, 1);
    // The first life's token no longer leads to the instance, now another agent's.
    let old = launch_all(&b, &t, std::slice::from_ref(&first))
        .await
        .remove(0);
    assert_ne!(old, id, "an earlier life's token replayed to the new agent");
    assert_eq!(b.stats().idempotent_replays, 1);
}

#[tokio::test(start_paused = true)]
async fn only_stopped_members_of_the_same_template_are_reused() {
    let b = pooled(5);
    let (t, u) = (template("t"), template("u"));
    let id = launch(&b, &t, "a").await;
    sleep(S(40)).await;
    terminate(&b, std::slice::from_ref(&id)).await;
    // Still stopping: a new instance.
    let fresh = launch(&b, &t, "b").await;
    assert_ne!(fresh, id);
    sleep(S(10)).await;
    // Another template: a new instance.
    let other = launch(&b, &u, "c").await;
    assert_ne!(other, id);
    // Same template, stopped: reused.
    assert_eq!(launch(&b, &t, "d").await, id);
    assert_eq!((b.stats().launched, b.stats().restarted), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn restarts_obey_the_capacity_limit_and_injected_failures() {
    let b = pooled(5);
    let t = template("t");
    let id = launch(&b, &t, "a").await;
    sleep(S(40)).await;
    terminate(&b, std::slice::from_ref(&id)).await;
    sleep(S(10)).await;
    b.cloud().set_capacity_limit(Some(1));
    let busy = launch(&b, &t, "b").await;
    assert_eq!(busy, id, "a stopped member holds no capacity");
    let full = try_launch_all(&b, &t, &[agent("c")]).await.remove(0);
    assert_eq!(full.unwrap_err().class(), ErrorClass::Capacity);
    b.cloud().set_capacity_limit(None);
    terminate(&b, std::slice::from_ref(&id)).await;
    sleep(S(10)).await;
    b.fail_next_launches(1, ErrorClass::Transient);
    let failed = try_launch_all(&b, &t, &[agent("d")]).await.remove(0);
    assert_eq!(failed.unwrap_err().class(), ErrorClass::Transient);
    assert_eq!(
        describe(&b, &id).await.state,
        CloudState::Stopped,
        "still pooled"
    );
}

#[tokio::test(start_paused = true)]
async fn stopped_time_is_counted_apart_over_several_lives() {
    let b = pooled(5);
    let t = template("t");
    // Life 1: pending 30, running 70, stopping 10, stopped 100.
    let id = launch(&b, &t, "a").await;
    sleep(S(100)).await;
    terminate(&b, std::slice::from_ref(&id)).await;
    sleep(S(110)).await;
    assert_eq!(
        b.instance_seconds(),
        StateSeconds {
            pending: S(30),
            running: S(70),
            stopping: S(10),
            stopped: S(100),
        }
    );
    // Life 2: pending 21, running 79, stopping 10, stopped 50 (still).
    assert_eq!(launch(&b, &t, "b").await, id);
    sleep(S(100)).await;
    terminate(&b, std::slice::from_ref(&id)).await;
    sleep(S(60)).await;
    let two = StateSeconds {
        pending: S(51),
        running: S(149),
        stopping: S(20),
        stopped: S(150),
    };
    assert_eq!(b.instance_seconds(), two);
    assert_eq!(
        two.total(),
        S(220),
        "total is compute time, stopped excluded"
    );
    // Life 3: pending 21, running 19, then a spot interruption; the failed
    // instance is forgotten after retention and keeps every life's time.
    assert_eq!(launch(&b, &t, "c").await, id);
    sleep(S(40)).await;
    assert!(b.interrupt(&id, "spot"));
    sleep(S(4000)).await;
    assert!(
        b.list_owned().await.unwrap().is_empty(),
        "forgotten after retention"
    );
    assert_eq!(
        b.instance_seconds(),
        StateSeconds {
            pending: S(72),
            running: S(168),
            stopping: S(20),
            stopped: S(150),
        },
        "a forgotten instance keeps every life's time"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_pool_nothing_changes() {
    let b = MemoryBackend::new(OwnerId::new("ci").unwrap());
    assert!(!b.capabilities().stop_resume);
    let t = template("t");
    let id = launch(&b, &t, "a").await;
    sleep(S(40)).await;
    terminate(&b, std::slice::from_ref(&id)).await;
    sleep(S(10)).await;
    let inst = describe(&b, &id).await;
    assert_eq!(
        (inst.state, inst.agent_name.as_str()),
        (CloudState::Terminated, "a")
    );
    assert_ne!(launch(&b, &t, "b").await, id);
    let stats = b.stats();
    assert_eq!((stats.launched, stats.restarted, stats.pooled), (2, 0, 0));
    assert_eq!(b.instance_seconds().stopped, Duration::ZERO);
}

/// A backend that refuses (and records) any terminate of a warm-pool member,
/// delegating everything else.
#[derive(Debug)]
struct NoPoolTerminates {
    inner: MemoryBackend,
    refused: Mutex<Vec<CloudInstance>>,
}

#[async_trait]
impl Backend for NoPoolTerminates {
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    fn owner(&self) -> &OwnerId {
        self.inner.owner()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn validate_template(&self, template: &AgentTemplate) -> Result<(), Vec<String>> {
        self.inner.validate_template(template)
    }
    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        self.inner.launch(batch).await
    }
    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        self.inner.describe(ids).await
    }
    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        let members: Vec<CloudInstance> = self
            .inner
            .describe(ids)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.agent_name.is_empty())
            .collect();
        if !members.is_empty() {
            self.refused.lock().unwrap().extend(members);
        }
        self.inner.terminate(ids, reason).await
    }
    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        self.inner.list_owned().await
    }
}

/// The reconcile loop over a pooled backend: agents retire idle into the pool,
/// the next burst restarts them, and pool members are never taken for agents
/// or orphans.
#[tokio::test(start_paused = true)]
async fn the_reconcile_loop_reuses_pooled_instances() {
    const POLL: Duration = Duration::from_secs(1);
    let owner = OwnerId::new("ci").unwrap();
    let jenkins = MemoryJenkins::new(owner.clone());
    let cloud = MemoryCloud::new();
    let backend = MemoryBackend::on_cloud(cloud.clone(), owner.clone())
        .with_start_latency(Latency::Fixed(S(27)))
        .with_stop_latency(S(20))
        .with_connect_latency(S(10))
        .with_warm_pool(WarmPool {
            max_stopped: 4,
            restart_latency: Latency::Fixed(S(21)),
        });
    backend.connect_agents_to(&jenkins);
    let checked = Arc::new(NoPoolTerminates {
        inner: backend.clone(),
        refused: Mutex::new(Vec::new()),
    });
    let mut t = template("linux");
    t.retention.idle_timeout = Some(S(60));
    let mut config = ReconcileConfig::new(
        owner.clone(),
        JenkinsEndpoint {
            url: "https://jenkins.example/".into(),
            transport: AgentTransport::WebSocket,
        },
    );
    config.poll_interval = POLL;
    config.seed = Some(42);
    let mut r = Reconciler::new(
        config,
        Arc::new(jenkins.clone()),
        vec![Pool {
            template: Arc::new(t),
            backend: checked.clone(),
        }],
        Box::new(NoDelay),
    );
    let submit = |n: usize| {
        for i in 0..n {
            jenkins.submit(format!("job-{i}"), Some("linux".parse().unwrap()), S(120));
        }
    };
    let start = Instant::now();
    submit(6);
    let mut split = None;
    let mut max_pooled = 0;
    while start.elapsed() < S(30 * 60) {
        if split.is_none() && start.elapsed() >= S(10 * 60) {
            split = Some(jenkins.history().len());
            submit(6);
        }
        let before = backend
            .list_owned()
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.agent_name.is_empty())
            .count();
        let pass = r.run_once().await.expect("pass");
        assert!(pass.act.errors.is_empty(), "{:?}", pass.act.errors);
        // The loop reports the pool it observed (before acting).
        assert_eq!(
            r.warm_pool().get("linux").copied().unwrap_or(0),
            before,
            "{:?}",
            r.warm_pool()
        );
        // No agent record and no node for a pool member.
        let members: Vec<CloudInstance> = backend
            .list_owned()
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.agent_name.is_empty())
            .collect();
        max_pooled = max_pooled.max(members.len());
        for member in &members {
            assert!(
                matches!(member.state, CloudState::Stopping | CloudState::Stopped),
                "{member:?}"
            );
            for a in r
                .agents()
                .filter(|a| a.cloud_id.as_ref() == Some(&member.id))
            {
                assert_eq!(a.state, AgentState::Terminating, "{a:?} holds {member:?}");
            }
        }
        assert_eq!(
            jenkins.node_names().len(),
            r.agents().filter(|a| a.node_exists).count()
        );
        sleep(POLL).await;
    }
    assert_eq!(max_pooled, 4, "the pool filled up to its bound");
    assert!(
        checked.refused.lock().unwrap().is_empty(),
        "no terminate of a pool member"
    );
    let history = jenkins.history();
    assert_eq!(history.len(), 12);
    assert!(history.iter().all(|b| b.outcome == BuildOutcome::Succeeded));
    let split = split.unwrap();
    let waits = |records: &[BuildRecord]| -> Vec<Duration> {
        let mut w: Vec<Duration> = records
            .iter()
            .map(|b| b.started_at.unwrap() - b.submitted_at)
            .collect();
        w.sort();
        w
    };
    // First burst: a fresh start (27 s) + connect (10 s), within a poll.
    for w in waits(&history[..split]) {
        assert!(w >= S(37) && w <= S(38), "first burst waited {w:?}");
    }
    // Second burst: four restarts (21 s + 10 s), two fresh launches.
    let second = waits(&history[split..]);
    for w in &second[..4] {
        assert!(*w >= S(31) && *w <= S(32), "restart waited {w:?}");
    }
    for w in &second[4..] {
        assert!(*w >= S(37) && *w <= S(38), "fresh launch waited {w:?}");
    }
    let stats = backend.stats();
    assert_eq!(stats.launched, 8, "6 fresh, then only 2 more");
    assert_eq!(stats.restarted, 4);
    assert_eq!((stats.terminated, stats.pooled), (12, 8));
    // Everything retired again: four in the pool, the rest terminated.
    assert_eq!(cloud.active_count(), 0);
    assert!(jenkins.node_names().is_empty());
    assert_eq!(r.agents().count(), 0);
    let listed = backend.list_owned().await.unwrap();
    let stopped = listed
        .iter()
        .filter(|i| i.state == CloudState::Stopped)
        .count();
    assert_eq!(stopped, 4);
    assert!(listed
        .iter()
        .all(|i| i.state == CloudState::Stopped || i.state.is_gone()));
    assert!(backend.instance_seconds().stopped > Duration::ZERO);
    assert!(jenkins.refused_connections().is_empty());
}
