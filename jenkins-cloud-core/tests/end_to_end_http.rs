//! End to end over real HTTP: the reconcile loop with the Jenkins HTTP client
//! against the fake controller, and the in-memory backend. The "agents" connect
//! through the fake's hook with the secret the loop fetched over HTTP and handed
//! to the backend; builds run; idle agents are drained and deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jenkins_cloud_core::backend::{AgentTransport, Backend, CloudState, JenkinsEndpoint, OwnerId};
use jenkins_cloud_core::jenkins::client::{JenkinsClient, JenkinsClientConfig};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::memory::{Latency, MemoryBackend};
use jenkins_cloud_core::reconcile::{Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::NoDelay;
use jenkins_cloud_core::template::AgentTemplate;
use jenkins_cloud_core::testkit::fake_jenkins::{AgentConnection, FakeJenkins, FakeJenkinsConfig};
use jenkins_cloud_core::Secret;

const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_provisions_runs_and_retires_agents_over_http() {
    let fake = FakeJenkins::start(FakeJenkinsConfig {
        build_duration: Some(Duration::from_millis(400)),
        ..Default::default()
    })
    .await;
    let owner = OwnerId::new("ci").unwrap();
    let client = JenkinsClient::new(JenkinsClientConfig::new(
        fake.url(),
        "admin",
        Secret::new(TOKEN),
        owner.clone(),
    ))
    .unwrap();
    let backend = Arc::new(
        MemoryBackend::new(owner.clone())
            .with_start_latency(Latency::Fixed(Duration::from_millis(200)))
            .with_stop_latency(Duration::from_millis(50)),
    );
    let mut linux = AgentTemplate::new("linux", LabelSet::parse("linux docker"));
    linux.retention.idle_timeout = Some(Duration::from_millis(500));
    let mut arm = AgentTemplate::new("arm", LabelSet::parse("arm64"));
    arm.retention.idle_timeout = Some(Duration::from_millis(500));
    let endpoint = JenkinsEndpoint {
        url: fake.url().to_owned(),
        transport: AgentTransport::WebSocket,
    };
    let mut config = ReconcileConfig::new(owner.clone(), endpoint);
    config.seed = Some(3);
    let pools = vec![
        Pool {
            template: Arc::new(linux),
            backend: backend.clone(),
        },
        Pool {
            template: Arc::new(arm),
            backend: backend.clone(),
        },
    ];
    let mut r = Reconciler::new(config, Arc::new(client), pools, Box::new(NoDelay));

    // A static agent that is not ours must survive everything.
    let static_node =
        jenkins_cloud_core::testkit::fake_jenkins::FakeNode::new("static-1", "windows");
    fake.add_node(static_node);

    let mut queued = BTreeSet::new();
    for i in 0..3 {
        queued.insert(fake.queue_freestyle(&format!("app-{i}"), "linux&&docker"));
    }
    queued.insert(fake.queue_pipeline("deploy", "arm64"));

    let mut connections: BTreeMap<String, AgentConnection> = BTreeMap::new();
    let mut built_on: BTreeMap<u64, String> = BTreeMap::new();
    let mut launched = BTreeSet::new();
    for _ in 0..60 {
        let report = r.run_once().await.expect("pass");
        launched.extend(report.act.launched.iter().map(|l| l.agent.clone()));
        // Agents whose resource runs connect with the secret they were launched with;
        // agents whose resource stopped go away.
        for instance in backend.list_owned().await.unwrap() {
            let name = instance.agent_name.clone();
            match instance.state {
                CloudState::Running if !connections.contains_key(&name) => {
                    // The secret the loop fetched over HTTP and launched the agent with.
                    let secret = backend
                        .cloud()
                        .instances()
                        .into_iter()
                        .find(|r| r.instance.agent_name == name)
                        .map(|r| r.secret)
                        .expect("launched instance");
                    let conn = fake
                        .connect_agent(&name, secret.expose())
                        .expect("agent connects");
                    assert!(
                        fake.connect_agent(&name, secret.expose()).is_err(),
                        "second connection refused"
                    );
                    connections.insert(name, conn);
                }
                CloudState::Stopping | CloudState::Terminated => {
                    if let Some(conn) = connections.remove(&name) {
                        fake.disconnect(&conn);
                    }
                }
                _ => {}
            }
        }
        for b in fake.builds() {
            built_on.insert(b.queue_id, b.node);
        }
        let done = fake.queue_items().is_empty()
            && fake.builds().is_empty()
            && fake.nodes().iter().all(|n| n.name == "static-1")
            && backend
                .list_owned()
                .await
                .unwrap()
                .iter()
                .all(|i| i.state.is_gone());
        if done && built_on.len() == queued.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(
        launched.len(),
        4,
        "one agent per queued build: {launched:?}"
    );
    assert_eq!(
        built_on.keys().copied().collect::<BTreeSet<_>>(),
        queued,
        "every build ran"
    );
    for (item, node) in &built_on {
        assert!(
            launched.contains(node),
            "item {item} ran on our agent, not {node}"
        );
    }
    let arm_agent = launched.iter().filter(|n| n.starts_with("ci-arm-")).count();
    assert_eq!(arm_agent, 1, "the arm64 pipeline got an arm agent");
    let names: Vec<_> = fake.nodes().into_iter().map(|n| n.name).collect();
    assert_eq!(
        names,
        vec!["static-1".to_string()],
        "our idle nodes were deleted, the static one kept"
    );
    assert!(backend
        .list_owned()
        .await
        .unwrap()
        .iter()
        .all(|i| i.state.is_gone()));
    assert!(
        backend
            .cloud()
            .instances()
            .iter()
            .all(|i| i.stop_reason.as_deref() == Some("drained and idle")),
        "each agent was drained before it was stopped"
    );
}
