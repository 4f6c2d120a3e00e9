//! `plan` and `run --once` against the fake Jenkins controller (over HTTP, with
//! the real client) and the in-memory backend.

use std::sync::Arc;

use jenkins_cloud_cli::commands::{self, plan, run};
use jenkins_cloud_cli::config::Config;
use jenkins_cloud_cli::metrics::Metrics;
use jenkins_cloud_core::backend::Backend;
use jenkins_cloud_core::memory::MemoryBackend;
use jenkins_cloud_core::testkit::fake_jenkins::{FakeJenkins, FakeJenkinsConfig};

const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";

fn config(url: &str) -> Config {
    let text = format!(
        r#"owner: ci-test
jenkins: {{url: "{url}", user: admin, token_env: JC_PLAN_RUN_TEST_TOKEN}}
clouds:
  - name: mem
    kind: memory
    templates:
      - name: linux
        labels: linux
"#
    );
    Config::parse(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

async fn fixture() -> (FakeJenkins, Config, Arc<MemoryBackend>) {
    std::env::set_var("JC_PLAN_RUN_TEST_TOKEN", TOKEN);
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let config = config(fake.url());
    let backend = Arc::new(MemoryBackend::new(config.owner.clone()));
    (fake, config, backend)
}

#[tokio::test]
async fn plan_shows_demand_and_launches_but_changes_nothing() {
    let (fake, config, backend) = fixture().await;
    let a = fake.queue_freestyle("build-a", "linux");
    let b = fake.queue_pipeline("build-b", "linux");
    let other = fake.queue_freestyle("build-win", "windows");
    let nodes_before = fake.nodes();
    let queue_before = fake.queue_items();
    let jenkins = commands::open_jenkins(&config).unwrap();
    let mut setup =
        commands::setup_with(&config, jenkins, vec![backend.clone() as Arc<dyn Backend>]);

    let out = plan::plan(&mut setup).await.unwrap();
    let json = serde_json::to_value(&out).unwrap();
    let linux = json["demand"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["label"] == "linux")
        .unwrap();
    assert_eq!(linux["count"], 2);
    let mut items: Vec<u64> = linux["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    items.sort();
    assert_eq!(items, [a, b]);
    assert_eq!(out.unmatched, [other]);
    let launch = &json["actions"][0];
    assert_eq!(launch["kind"], "launch");
    assert_eq!(launch["template"], "linux");
    assert_eq!(launch["count"], 2);
    assert!(render_has(&plan::render_text(&out), "launch 2 x linux"));

    assert_eq!(fake.nodes(), nodes_before, "plan created or changed nodes");
    assert_eq!(fake.queue_items().len(), queue_before.len());
    assert!(
        backend.list_owned().await.unwrap().is_empty(),
        "plan launched something"
    );
    assert_eq!(backend.stats().launch_calls, 0);
}

fn render_has(text: &str, needle: &str) -> bool {
    text.contains(needle)
}

#[tokio::test]
async fn run_once_creates_nodes_and_launches_for_the_queue() {
    let (fake, config, backend) = fixture().await;
    let a = fake.queue_freestyle("build-a", "linux");
    let jenkins = commands::open_jenkins(&config).unwrap();
    let mut setup =
        commands::setup_with(&config, jenkins, vec![backend.clone() as Arc<dyn Backend>]);
    let metrics = Metrics::default();

    let report = run::once(&mut setup, &metrics).await.unwrap();
    assert_eq!(report.act.launched.len(), 1, "{:?}", report.act.errors);
    assert_eq!(report.act.launched[0].serves, [a]);
    let name = &report.act.launched[0].agent;
    let node = fake.node(name).expect("node created in Jenkins");
    assert!(node.labels.contains("linux") || format!("{node:?}").contains("linux"));
    let owned = backend.list_owned().await.unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(&owned[0].agent_name, name);

    let text = metrics.render();
    assert!(
        text.contains("jenkins_cloud_launches_total{template=\"linux\"} 1"),
        "{text}"
    );
    assert!(text.contains("jenkins_cloud_cloud_calls_total{backend=\"memory\",operation=\"launch\",outcome=\"ok\"} 1"), "{text}");
    assert!(!text.contains(TOKEN));
}
