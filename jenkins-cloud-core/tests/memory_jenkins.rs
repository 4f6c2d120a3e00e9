//! MemoryJenkins alone and linked to MemoryBackend, in paused tokio time.

use std::time::Duration;

use jenkins_cloud_core::backend::{
    AgentLaunch, AgentTransport, Backend, CloudId, JenkinsEndpoint, LaunchBatch, OwnerId,
};
use jenkins_cloud_core::jenkins::{JenkinsApi, JenkinsError, NodeMarker, NodeSpec, Requirement};
use jenkins_cloud_core::label::{LabelExpr, LabelSet};
use jenkins_cloud_core::memory::{
    BuildOutcome, Latency, MemoryBackend, MemoryJenkins, Submission, DEFAULT_EPOCH_SECS,
};
use jenkins_cloud_core::template::{AgentTemplate, NodeMode};
use jenkins_cloud_core::{ErrorClass, Secret};
use tokio::time::{sleep, Instant};

const S: fn(u64) -> Duration = Duration::from_secs;

fn owner(s: &str) -> OwnerId {
    OwnerId::new(s).unwrap()
}

fn label(s: &str) -> Option<LabelExpr> {
    Some(s.parse().unwrap())
}

fn spec(owner: &OwnerId, name: &str, labels: &str, executors: u32, mode: NodeMode) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        marker: NodeMarker {
            owner: owner.clone(),
            template: "t".into(),
            created_at_ms: 1,
        },
        labels: LabelSet::parse(labels),
        executors,
        remote_fs: "/home/jenkins/agent".into(),
        mode,
        web_socket: true,
    }
}

/// Creates a node and connects its agent at once with the right secret.
async fn online(j: &MemoryJenkins, name: &str, labels: &str, executors: u32, mode: NodeMode) {
    j.create_node(&spec(j.owner(), name, labels, executors, mode))
        .await
        .unwrap();
    let secret = j.agent_secret(name).await.unwrap();
    j.connect_agent(name, &secret).unwrap();
}

#[tokio::test(start_paused = true)]
async fn secrets_are_stable_hmac_hex_per_name_and_key() {
    let j = MemoryJenkins::new(owner("ci"));
    for n in ["a", "b"] {
        j.create_node(&spec(j.owner(), n, "", 1, NodeMode::Normal))
            .await
            .unwrap();
    }
    let a = j.agent_secret("a").await.unwrap();
    assert_eq!(a.expose().len(), 64);
    assert!(a
        .expose()
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(j.agent_secret("a").await.unwrap(), a);
    assert_ne!(j.agent_secret("b").await.unwrap(), a);
    let other = MemoryJenkins::new(owner("ci")).with_key(b"another key");
    other
        .create_node(&spec(other.owner(), "a", "", 1, NodeMode::Normal))
        .await
        .unwrap();
    assert_ne!(other.agent_secret("a").await.unwrap(), a);
    assert!(matches!(
        j.agent_secret("zz").await,
        Err(JenkinsError::NotFound { .. })
    ));
    assert!(!format!("{j:?}").contains(a.expose()));
}

#[tokio::test(start_paused = true)]
async fn create_node_refuses_duplicates_bad_names_and_zero_executors() {
    let j = MemoryJenkins::new(owner("ci"));
    j.create_node(&spec(j.owner(), "n1", "", 1, NodeMode::Normal))
        .await
        .unwrap();
    let dup = j
        .create_node(&spec(j.owner(), "n1", "", 1, NodeMode::Normal))
        .await
        .unwrap_err();
    assert_eq!(
        dup,
        JenkinsError::Conflict {
            message: "Agent called ‘n1’ already exists".into()
        }
    );
    let bad = j
        .create_node(&spec(j.owner(), "a/b", "", 1, NodeMode::Normal))
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, JenkinsError::BadRequest { message } if message.contains("`/` at position 1")),
        "{bad}"
    );
    let zero = j
        .create_node(&spec(j.owner(), "n2", "", 0, NodeMode::Normal))
        .await
        .unwrap_err();
    assert!(matches!(zero, JenkinsError::BadRequest { .. }));
    assert_eq!(j.node_names(), ["n1"]);
}

#[tokio::test(start_paused = true)]
async fn demand_reports_queued_items_with_exact_labels_and_wall_time() {
    let j = MemoryJenkins::new(owner("ci"));
    sleep(S(7)).await;
    let a = j.submit("job-a", None, S(60));
    let b = j.submit("job-b", label("linux&&docker"), S(60));
    let d = j.demand().await.unwrap();
    assert_eq!(d.items.iter().map(|i| i.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(d.items[0].requirement, Requirement::AnyNode);
    assert_eq!(
        d.items[1].requirement,
        Requirement::Label("linux&&docker".parse().unwrap())
    );
    assert_eq!(d.items[1].task, "job-b");
    assert_eq!(
        d.items[0].in_queue_since_ms,
        (DEFAULT_EPOCH_SECS + 7) * 1000
    );
    assert!(d.unattributed.is_empty());
}

#[tokio::test(start_paused = true)]
async fn assignment_follows_labels_modes_and_node_names() {
    let j = MemoryJenkins::new(owner("ci"));
    online(&j, "excl", "docker", 1, NodeMode::Exclusive).await;
    online(&j, "norm", "linux", 1, NodeMode::Normal).await;
    let unlabelled = j.submit("u", None, S(100));
    let by_name = j.submit("n", label("excl"), S(100));
    let unmatched = j.submit("x", label("windows"), S(100));
    let h = j.history();
    assert_eq!(
        h[0].node.as_deref(),
        Some("norm"),
        "no label: only NORMAL nodes"
    );
    assert_eq!(
        h[1].node.as_deref(),
        Some("excl"),
        "a node's name is one of its labels"
    );
    assert_eq!(h[2].outcome, BuildOutcome::Queued);
    assert_eq!(
        j.demand()
            .await
            .unwrap()
            .items
            .iter()
            .map(|i| i.id)
            .collect::<Vec<_>>(),
        [unmatched]
    );
    // Both busy: the next docker item waits for the exclusive node to finish.
    let docker = j.submit("d", label("docker"), S(10));
    sleep(S(100)).await;
    let h = j.history();
    assert_eq!(h[0].outcome, BuildOutcome::Succeeded);
    assert_eq!(h[0].finished_at, Some(h[0].started_at.unwrap() + S(100)));
    let d = j.item(docker).unwrap();
    assert_eq!(d.node.as_deref(), Some("excl"));
    assert_eq!(d.wait(Instant::now()), S(100));
    assert_eq!(d.url.as_deref(), Some("job/d/1/"));
    let _ = (unlabelled, by_name);
}

#[tokio::test(start_paused = true)]
async fn oldest_item_first_and_first_node_by_name() {
    let j = MemoryJenkins::new(owner("ci"));
    let first = j.submit("a", None, S(5));
    let second = j.submit("a", None, S(5));
    online(&j, "zeta", "", 1, NodeMode::Normal).await;
    online(&j, "alpha", "", 1, NodeMode::Normal).await;
    // zeta came online first and took the oldest item; alpha the next one.
    assert_eq!(j.item(first).unwrap().node.as_deref(), Some("zeta"));
    assert_eq!(j.item(second).unwrap().node.as_deref(), Some("alpha"));
    sleep(S(5)).await;
    let third = j.submit("a", None, S(5));
    assert_eq!(j.item(third).unwrap().node.as_deref(), Some("alpha"));
    assert_eq!(j.item(third).unwrap().url.as_deref(), Some("job/a/3/"));
}

#[tokio::test(start_paused = true)]
async fn nodes_lists_only_ours_with_jenkins_offline_flags() {
    let ours = MemoryJenkins::new(owner("ci"));
    let theirs = ours.view_as(owner("other"));
    ours.add_static_node("static-1", "linux", 2, NodeMode::Normal);
    theirs
        .create_node(&spec(theirs.owner(), "their-1", "", 1, NodeMode::Normal))
        .await
        .unwrap();
    ours.create_node(&spec(ours.owner(), "never", "", 1, NodeMode::Normal))
        .await
        .unwrap();
    online(&ours, "busy", "x", 2, NodeMode::Exclusive).await;
    ours.submit("job", label("x"), S(50));
    let nodes = ours.nodes().await.unwrap();
    assert_eq!(
        nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["busy", "never"]
    );
    let (busy, never) = (&nodes[0], &nodes[1]);
    assert!(!busy.offline && !busy.temporarily_offline);
    assert_eq!((busy.executors, busy.busy_executors), (2, 1));
    assert_eq!(busy.current_builds, ["job/job/1/"]);
    assert!(never.offline && !never.temporarily_offline && !never.is_connected());
    assert_eq!(
        theirs
            .nodes()
            .await
            .unwrap()
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["their-1"]
    );

    ours.drain_node("busy", "retiring").await.unwrap();
    let busy = ours.nodes().await.unwrap().remove(0);
    assert!(busy.offline && busy.temporarily_offline && busy.is_connected());
    for foreign in ["static-1", "their-1"] {
        assert_eq!(
            ours.drain_node(foreign, "r").await,
            Err(JenkinsError::NotOwned {
                name: foreign.into()
            })
        );
        assert_eq!(
            ours.delete_node(foreign).await,
            Err(JenkinsError::NotOwned {
                name: foreign.into()
            })
        );
    }
    assert!(matches!(
        ours.drain_node("nope", "r").await,
        Err(JenkinsError::NotFound { .. })
    ));
    assert_eq!(ours.delete_node("nope").await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_drained_node_finishes_its_build_and_takes_no_new_one() {
    let j = MemoryJenkins::new(owner("ci"));
    online(&j, "n", "", 2, NodeMode::Normal).await;
    let running = j.submit("a", None, S(30));
    j.drain_node("n", "retire").await.unwrap();
    let waiting = j.submit("b", None, S(30));
    sleep(S(31)).await;
    assert_eq!(j.item(running).unwrap().outcome, BuildOutcome::Succeeded);
    assert_eq!(j.item(waiting).unwrap().outcome, BuildOutcome::Queued);
}

#[tokio::test(start_paused = true)]
async fn deleting_a_busy_node_aborts_its_build_without_requeue_unless_asked() {
    let j = MemoryJenkins::new(owner("ci"));
    online(&j, "n", "", 2, NodeMode::Normal).await;
    let plain = j.submit("a", None, S(30));
    let retried = j.submit_with(Submission::new("b", None, S(30)).retry_on_agent_loss());
    sleep(S(10)).await;
    j.delete_node("n").await.unwrap();
    j.delete_node("n").await.unwrap();
    let h = j.history();
    assert!(
        matches!(&h[0].outcome, BuildOutcome::Aborted(r) if r.contains("was deleted")),
        "{:?}",
        h[0]
    );
    assert_eq!(h[0].finished_at, Some(h[0].started_at.unwrap() + S(10)));
    assert!(matches!(h[1].outcome, BuildOutcome::Aborted(_)));
    assert_eq!(h.len(), 3, "only the retrying build is queued again");
    assert_eq!(
        (h[2].retry_of, &h[2].outcome),
        (Some(retried), &BuildOutcome::Queued)
    );
    let stats = j.stats();
    assert_eq!(
        (stats.builds_aborted, stats.requeued, stats.builds_succeeded),
        (2, 1, 0)
    );
    assert_eq!(j.demand().await.unwrap().items.len(), 1);
    let _ = plain;
}

#[tokio::test(start_paused = true)]
async fn connections_are_refused_for_unknown_nodes_wrong_secrets_and_duplicates() {
    let j = MemoryJenkins::new(owner("ci"));
    assert_eq!(
        j.connect_agent("ghost", &Secret::new("x")),
        Err("no such node".into())
    );
    j.create_node(&spec(j.owner(), "n", "", 1, NodeMode::Normal))
        .await
        .unwrap();
    assert_eq!(
        j.connect_agent("n", &Secret::new("0".repeat(64))),
        Err("wrong secret".into())
    );
    assert!(!j.is_connected("n"));
    let secret = j.agent_secret("n").await.unwrap();
    j.connect_agent("n", &secret).unwrap();
    assert_eq!(
        j.connect_agent("n", &secret),
        Err("already connected".into())
    );
    let refused = j.refused_connections();
    assert_eq!(
        refused
            .iter()
            .map(|r| r.reason.as_str())
            .collect::<Vec<_>>(),
        ["no such node", "wrong secret", "already connected"]
    );
    assert_eq!((j.stats().connects, j.stats().refused), (1, 3));
}

fn endpoint() -> JenkinsEndpoint {
    JenkinsEndpoint {
        url: "http://jenkins.invalid/".into(),
        transport: AgentTransport::WebSocket,
    }
}

/// Creates node `name` in Jenkins and launches its agent with `secret`.
async fn launch_agent(
    j: &MemoryJenkins,
    b: &MemoryBackend,
    name: &str,
    secret: Option<Secret>,
) -> CloudId {
    j.create_node(&spec(j.owner(), name, "linux", 1, NodeMode::Normal))
        .await
        .unwrap();
    let secret = match secret {
        Some(s) => s,
        None => j.agent_secret(name).await.unwrap(),
    };
    let template = AgentTemplate::new("t", LabelSet::parse("linux"));
    let agents = [AgentLaunch {
        agent_name: name.into(),
        secret,
        client_token: format!("tok-{name}"),
    }];
    let out = b
        .launch(LaunchBatch {
            template: &template,
            jenkins: &endpoint(),
            agents: &agents,
        })
        .await;
    out[0].result.clone().unwrap()
}

#[tokio::test(start_paused = true)]
async fn linked_agents_connect_after_start_and_connect_latency_and_run_builds() {
    let o = owner("ci");
    let j = MemoryJenkins::new(o.clone());
    let b = MemoryBackend::new(o)
        .with_start_latency(Latency::Fixed(S(30)))
        .with_connect_latency(S(5));
    b.connect_agents_to(&j);
    let t0 = Instant::now();
    let item = j.submit("job", label("linux"), S(60));
    launch_agent(&j, &b, "agent-1", None).await;
    sleep(S(34)).await;
    assert!(!j.is_connected("agent-1"));
    sleep(S(1)).await;
    assert!(j.is_connected("agent-1"));
    let rec = j.item(item).unwrap();
    assert_eq!(
        rec.started_at,
        Some(t0 + S(35)),
        "starts the instant the agent connects"
    );
    sleep(S(60)).await;
    assert_eq!(j.item(item).unwrap().outcome, BuildOutcome::Succeeded);
    assert_eq!(j.item(item).unwrap().finished_at, Some(t0 + S(95)));
}

#[tokio::test(start_paused = true)]
async fn a_wrong_secret_is_refused_and_the_agent_never_connects() {
    let o = owner("ci");
    let j = MemoryJenkins::new(o.clone());
    let b = MemoryBackend::new(o);
    b.connect_agents_to(&j);
    let id = launch_agent(&j, &b, "agent-1", Some(Secret::new("f".repeat(64)))).await;
    sleep(S(60)).await;
    assert!(!j.is_connected("agent-1"));
    assert_eq!(j.refused_connections()[0].reason, "wrong secret");
    assert_eq!(
        b.describe(&[id]).await.unwrap()[0].state,
        jenkins_cloud_core::backend::CloudState::Running
    );
}

#[tokio::test(start_paused = true)]
async fn an_interruption_aborts_the_build_and_retry_requeues_it() {
    let o = owner("ci");
    let j = MemoryJenkins::new(o.clone());
    let b = MemoryBackend::new(o);
    b.connect_agents_to(&j);
    let id = launch_agent(&j, &b, "agent-1", None).await;
    let item = j.submit_with(Submission::new("job", None, S(600)).retry_on_agent_loss());
    sleep(S(100)).await;
    assert_eq!(j.item(item).unwrap().node.as_deref(), Some("agent-1"));
    assert!(b.interrupt(&id, "Spot interruption"));
    assert!(!j.is_connected("agent-1"));
    let h = j.history();
    assert!(matches!(&h[0].outcome, BuildOutcome::Aborted(r) if r.contains("went offline")));
    assert_eq!(h[1].retry_of, Some(item));
    // A fresh agent picks up the retry.
    launch_agent(&j, &b, "agent-2", None).await;
    sleep(S(40)).await;
    assert_eq!(j.history()[1].node.as_deref(), Some("agent-2"));
    assert!(j
        .nodes()
        .await
        .unwrap()
        .iter()
        .any(|n| n.name == "agent-1" && n.offline));
}

#[tokio::test(start_paused = true)]
async fn terminating_an_instance_disconnects_its_agent() {
    let o = owner("ci");
    let j = MemoryJenkins::new(o.clone());
    let b = MemoryBackend::new(o);
    b.connect_agents_to(&j);
    let id = launch_agent(&j, &b, "agent-1", None).await;
    let item = j.submit("job", None, S(600));
    sleep(S(40)).await;
    assert!(j.is_connected("agent-1"));
    b.terminate(std::slice::from_ref(&id), "idle").await;
    assert!(!j.is_connected("agent-1"));
    assert!(matches!(
        j.item(item).unwrap().outcome,
        BuildOutcome::Aborted(_)
    ));
    // Terminated before running: never connects at all.
    let early = launch_agent(&j, &b, "agent-2", None).await;
    b.terminate(&[early], "not needed").await;
    sleep(S(120)).await;
    assert!(!j.is_connected("agent-2"));
    assert_eq!(j.stats().connects, 1);
}

/// One simulated hour with random latencies and failures, as a simulator runs it.
async fn simulate(seed: u64) -> (Vec<(u64, Option<String>, Option<Instant>)>, u64) {
    let o = owner("sim");
    let j = MemoryJenkins::new(o.clone());
    let b = MemoryBackend::new(o)
        .with_seed(seed)
        .with_start_latency(Latency::Uniform {
            min: S(20),
            max: S(90),
        })
        .with_failure_rate(0.3, ErrorClass::Capacity);
    b.connect_agents_to(&j);
    let mut rng = fastrand::Rng::with_seed(seed);
    let template = AgentTemplate::new("t", LabelSet::parse("linux"));
    for step in 0..60u32 {
        j.submit(
            format!("job-{}", rng.u8(..4)),
            label("linux"),
            S(rng.u64(30..400)),
        );
        let name = format!("agent-{step}");
        j.create_node(&spec(j.owner(), &name, "linux", 1, NodeMode::Normal))
            .await
            .unwrap();
        let secret = j.agent_secret(&name).await.unwrap();
        let agents = [AgentLaunch {
            agent_name: name.clone(),
            secret,
            client_token: name,
        }];
        b.launch(LaunchBatch {
            template: &template,
            jenkins: &endpoint(),
            agents: &agents,
        })
        .await;
        sleep(S(60)).await;
    }
    let h = j
        .history()
        .into_iter()
        .map(|r| (r.id, r.node, r.started_at))
        .collect();
    (h, b.stats().launched)
}

#[tokio::test(start_paused = true)]
async fn simulations_are_deterministic_per_seed() {
    let base = Instant::now();
    let rel = |v: Vec<(u64, Option<String>, Option<Instant>)>| {
        v.into_iter()
            .map(|(id, n, s)| (id, n, s.map(|s| s - base)))
            .collect::<Vec<_>>()
    };
    let (a, launched_a) = simulate(42).await;
    let started = Instant::now();
    let (b, launched_b) = simulate(42).await;
    let shift = started - base;
    let b: Vec<_> = b
        .into_iter()
        .map(|(id, n, s)| (id, n, s.map(|s| s - shift)))
        .collect();
    assert_eq!(rel(a.clone()), rel(b));
    assert_eq!(launched_a, launched_b);
    assert!(
        launched_a < 60 && launched_a > 20,
        "failure rate applied: {launched_a}"
    );
    assert!(a.iter().filter(|(_, n, _)| n.is_some()).count() > 10);
    let (c, _) = simulate(7).await;
    assert_ne!(
        a.iter().map(|x| x.1.clone()).collect::<Vec<_>>(),
        c.iter().map(|x| x.1.clone()).collect::<Vec<_>>()
    );
}
