//! The Jenkins client against the fake controller over real HTTP on loopback.

use std::time::Duration;

use jenkins_cloud_core::backend::OwnerId;
use jenkins_cloud_core::jenkins::client::{
    placeholder_name, DemandMode, JenkinsClient, JenkinsClientConfig, PlaceholderTemplate,
};
use jenkins_cloud_core::jenkins::{JenkinsApi, JenkinsError, NodeMarker, NodeSpec, Requirement};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::template::NodeMode;
use jenkins_cloud_core::testkit::fake_jenkins::{
    ConnectError, FakeJenkins, FakeJenkinsConfig, FakeNode, FakeUser, AGENT_CONNECT,
};
use jenkins_cloud_core::{ErrorClass, Secret};

const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";

fn owner() -> OwnerId {
    OwnerId::new("ci").unwrap()
}

fn templates() -> Vec<PlaceholderTemplate> {
    vec![
        PlaceholderTemplate { name: "linux".into(), labels: LabelSet::parse("linux docker") },
        PlaceholderTemplate { name: "arm".into(), labels: LabelSet::parse("arm64") },
    ]
}

fn config(fake: &FakeJenkins, user: &str, token: &str) -> JenkinsClientConfig {
    let mut c = JenkinsClientConfig::new(fake.url(), user, Secret::new(token), owner());
    c.templates = templates();
    c.request_timeout = Duration::from_secs(5);
    c
}

fn client(fake: &FakeJenkins) -> JenkinsClient {
    JenkinsClient::new(config(fake, "admin", TOKEN)).unwrap()
}

fn spec(name: &str, labels: &str) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        marker: NodeMarker { owner: owner(), template: "linux".into(), created_at_ms: 1_764_000_000_000 },
        labels: LabelSet::parse(labels),
        executors: 1,
        remote_fs: "/home/jenkins/agent".into(),
        mode: NodeMode::Normal,
        web_socket: true,
    }
}

async fn fake_with_version(version: &str) -> FakeJenkins {
    FakeJenkins::start(FakeJenkinsConfig { version: version.into(), ..Default::default() }).await
}

#[tokio::test]
async fn creates_with_xml_on_new_and_form_on_old_versions() {
    for (version, via) in [("2.541.1", "xml"), ("2.539", "xml"), ("2.538", "form"), ("2.462.3", "form")] {
        let fake = fake_with_version(version).await;
        let c = client(&fake);
        c.create_node(&spec("ci-linux-abc234", "linux docker")).await.unwrap();
        assert_eq!(c.version().unwrap().to_string(), version);
        let node = fake.node("ci-linux-abc234").unwrap();
        assert_eq!(node.created_via, via, "{version}");
        assert_eq!(node.labels, LabelSet::parse("docker linux"));
        assert_eq!(node.mode, NodeMode::Normal);
        assert!(node.web_socket);
        assert_eq!(NodeMarker::parse(&node.description).unwrap().owner, owner());
        let nodes = c.nodes().await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].name, "ci-linux-abc234");
        assert!(nodes[0].offline && !nodes[0].is_connected());
        // Duplicate.
        let err = c.create_node(&spec("ci-linux-abc234", "linux")).await.unwrap_err();
        assert!(matches!(&err, JenkinsError::Conflict { message } if message.contains("already exists")), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Permanent);
    }
}

#[tokio::test]
async fn bad_names_are_refused_by_the_client_and_by_the_form_path() {
    let fake = fake_with_version("2.500").await;
    let c = client(&fake);
    let err = c.create_node(&spec("ci/bad", "linux")).await.unwrap_err();
    assert!(matches!(&err, JenkinsError::BadRequest { message } if message.contains("forbidden character")), "{err}");
    assert!(fake.nodes().is_empty());
    // The fake's own form validation (what Jenkins does): 400 with X-Error.
    let resp = reqwest::Client::new()
        .post(format!("{}computer/doCreateItem", fake.url()))
        .basic_auth("admin", Some(TOKEN))
        .form(&[("name", "a:b"), ("type", "hudson.slaves.DumbSlave$DescriptorImpl"), ("json", "{}")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers()["x-error"].to_str().unwrap().contains(':'));
    assert!(resp.headers().contains_key("x-jenkins"));
}

#[tokio::test]
async fn secret_connect_build_drain_delete() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let c = client(&fake);
    c.create_node(&spec("ci-linux-abc234", "linux")).await.unwrap();
    let secret = c.agent_secret("ci-linux-abc234").await.unwrap();
    assert_eq!(secret.expose(), fake.secret_for("ci-linux-abc234"));
    assert_eq!(secret.expose().len(), 64);
    assert!(secret.expose().chars().all(|ch| ch.is_ascii_hexdigit()));
    assert_eq!(
        fake.connect_agent("ci-linux-abc234", "0".repeat(64).as_str()),
        Err(ConnectError::WrongSecret("ci-linux-abc234".into()))
    );
    let conn = fake.connect_agent("ci-linux-abc234", secret.expose()).unwrap();
    assert_eq!(
        fake.connect_agent("ci-linux-abc234", secret.expose()),
        Err(ConnectError::AlreadyConnected("ci-linux-abc234".into()))
    );
    let node = &c.nodes().await.unwrap()[0];
    assert!(!node.offline && node.is_connected() && !node.is_busy());

    // A build with a matching label runs; one that does not match waits.
    fake.queue_freestyle("app", "linux");
    fake.queue_freestyle("gpu-job", "gpu");
    let builds = fake.builds();
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].node, "ci-linux-abc234");
    let node = &c.nodes().await.unwrap()[0];
    assert!(node.is_busy());
    assert_eq!(node.busy_executors, 1);
    assert!(node.current_builds[0].ends_with("job/app/1/"), "{:?}", node.current_builds);
    assert!(fake.finish_build(builds[0].id));
    assert!(!c.nodes().await.unwrap()[0].is_busy());

    c.drain_node("ci-linux-abc234", "idle for 5 min").await.unwrap();
    let n = fake.node("ci-linux-abc234").unwrap();
    assert!(n.temporarily_offline);
    assert_eq!(n.offline_reason.as_deref(), Some("idle for 5 min"));
    let listed = &c.nodes().await.unwrap()[0];
    assert!(listed.temporarily_offline && listed.offline);
    // A drained node takes no new build.
    fake.queue_freestyle("app", "linux");
    assert!(fake.builds().is_empty());

    c.delete_node("ci-linux-abc234").await.unwrap();
    assert!(fake.node("ci-linux-abc234").is_none());
    c.delete_node("ci-linux-abc234").await.unwrap();
    fake.disconnect(&conn);
    assert!(matches!(c.agent_secret("ci-linux-abc234").await, Err(JenkinsError::NotFound { .. })));
    assert!(matches!(c.drain_node("ci-linux-abc234", "x").await, Err(JenkinsError::NotFound { .. })));
}

#[tokio::test]
async fn foreign_nodes_are_never_touched() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    fake.add_node(FakeNode::new("static-1", "linux"));
    let mut other = FakeNode::new("other-linux-abc234", "linux");
    other.description =
        NodeMarker { owner: OwnerId::new("other").unwrap(), template: "linux".into(), created_at_ms: 1 }.to_description();
    fake.add_node(other);
    let c = client(&fake);
    assert!(c.nodes().await.unwrap().is_empty());
    for name in ["static-1", "other-linux-abc234"] {
        let err = c.delete_node(name).await.unwrap_err();
        assert_eq!(err, JenkinsError::NotOwned { name: name.into() });
        let err = c.drain_node(name, "x").await.unwrap_err();
        assert_eq!(err, JenkinsError::NotOwned { name: name.into() });
        assert!(!fake.node(name).unwrap().temporarily_offline);
    }
    assert_eq!(fake.nodes().len(), 2);
}

#[tokio::test]
async fn builds_finish_by_themselves_in_tokio_time() {
    let fake = FakeJenkins::start(FakeJenkinsConfig {
        build_duration: Some(Duration::from_millis(200)),
        ..Default::default()
    })
    .await;
    let c = client(&fake);
    c.create_node(&spec("ci-linux-abc234", "linux")).await.unwrap();
    let s = c.agent_secret("ci-linux-abc234").await.unwrap();
    fake.connect_agent("ci-linux-abc234", s.expose()).unwrap();
    fake.queue_pipeline("pipe", "linux");
    fake.queue_pipeline("pipe", "linux");
    assert_eq!(fake.builds().len(), 1);
    assert_eq!(fake.queue_items().len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let builds = fake.builds();
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].url, "job/pipe/2/");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.builds().is_empty() && fake.queue_items().is_empty());
}

#[tokio::test]
async fn script_console_gives_exact_labels() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let mut cfg = config(&fake, "admin", TOKEN);
    cfg.demand_mode = DemandMode::ScriptConsole;
    let c = JenkinsClient::new(cfg).unwrap();
    let a = fake.queue_freestyle("app", "linux&&docker");
    let b = fake.queue_pipeline("pipe", "");
    let h = fake.queue_hidden("secret-job", "arm64");
    let d = c.demand().await.unwrap();
    let got: Vec<_> = d.items.iter().map(|i| (i.id, i.task.clone(), i.requirement.clone())).collect();
    assert_eq!(
        got,
        vec![
            (a, "app".into(), Requirement::Label("linux&&docker".parse().unwrap())),
            (b, "part of pipe #1".into(), Requirement::AnyNode),
            (h, "secret-job".into(), Requirement::Label("arm64".parse().unwrap())),
        ]
    );
    assert!(d.unattributed.is_empty());
    assert!(fake.nodes().is_empty(), "no placeholders in script mode");
}

#[tokio::test]
async fn auto_mode_falls_back_to_why_with_placeholders() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    fake.add_user(FakeUser::agent_manager("bot", "bot-token"));
    let c = JenkinsClient::new(config(&fake, "bot", "bot-token")).unwrap();
    assert_eq!(c.effective_demand_mode(), DemandMode::Auto);
    let only_linux_template = fake.queue_freestyle("app", "docker");
    let two_templates = fake.queue_pipeline("pipe", "linux||arm64");
    let nothing = fake.queue_freestyle("gpu", "gpu");
    let any = fake.queue_freestyle("any", "");
    fake.queue_hidden("secret-job", "linux");
    let d = c.demand().await.unwrap();
    assert_eq!(c.effective_demand_mode(), DemandMode::WhyParsing);
    // Placeholders: EXCLUSIVE, offline, labelled, marked.
    for t in templates() {
        let p = fake.node(&placeholder_name(&owner(), &t.name)).expect("placeholder");
        assert_eq!(p.mode, NodeMode::Exclusive);
        assert_eq!(p.labels, t.labels);
        assert!(p.is_offline());
        assert_eq!(NodeMarker::parse(&p.description).unwrap().template, t.name);
    }
    let got: Vec<_> = d.items.iter().map(|i| (i.id, i.task.clone(), i.requirement.clone())).collect();
    assert_eq!(
        got,
        vec![
            (only_linux_template, "app".into(), Requirement::Template("linux".into())),
            (two_templates, "part of pipe #1".into(), Requirement::Label("linux||arm64".parse().unwrap())),
            (nothing, "gpu".into(), Requirement::Label("gpu".parse().unwrap())),
            (any, "any".into(), Requirement::AnyNode),
        ]
    );
    assert_eq!(d.unattributed.len(), 1);
    assert_eq!(d.unattributed[0].task, "secret-job");
    // Placeholders are not listed as our nodes and cannot be deleted through the trait.
    assert!(c.nodes().await.unwrap().is_empty());
    let p = placeholder_name(&owner(), "linux");
    assert!(matches!(c.delete_node(&p).await, Err(JenkinsError::BadRequest { .. })));
    // An agent of a template named in `why` maps back to it.
    c.create_node(&spec("ci-linux-k7m2pq", "linux docker")).await.unwrap();
    let s = c.agent_secret("ci-linux-k7m2pq").await.unwrap();
    fake.connect_agent("ci-linux-k7m2pq", s.expose()).unwrap();
    let d = c.demand().await.unwrap();
    // `app` ran on it; `pipe` (linux||arm64) is next in line on the busy executor.
    assert_eq!(fake.builds().len(), 1);
    assert!(d.items.iter().all(|i| i.id != only_linux_template));
    // Placeholders are kept in sync and removed on request.
    let report = c.ensure_placeholders().await.unwrap();
    assert_eq!(report.unchanged.len(), 2);
    assert_eq!(c.remove_placeholders().await.unwrap().len(), 2);
    assert!(fake.node(&p).is_none());
}

#[tokio::test]
async fn placeholders_with_changed_labels_are_recreated() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let c = client(&fake);
    assert_eq!(c.ensure_placeholders().await.unwrap().created.len(), 2);
    let mut cfg = config(&fake, "admin", TOKEN);
    cfg.templates[0].labels = LabelSet::parse("linux docker big");
    let c2 = JenkinsClient::new(cfg).unwrap();
    let r = c2.ensure_placeholders().await.unwrap();
    assert_eq!(r.updated, vec![placeholder_name(&owner(), "linux")]);
    assert_eq!(r.unchanged, vec![placeholder_name(&owner(), "arm")]);
    assert_eq!(fake.node(&placeholder_name(&owner(), "linux")).unwrap().labels, LabelSet::parse("big docker linux"));
}

#[tokio::test]
async fn session_mode_uses_crumb_and_cookie() {
    let fake = FakeJenkins::start(FakeJenkinsConfig { session_mode: true, ..Default::default() }).await;
    let raw = reqwest::Client::new()
        .post(format!("{}computer/doCreateItem", fake.url()))
        .basic_auth("admin", Some(TOKEN))
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 403);
    assert!(raw.text().await.unwrap().contains("No valid crumb"));
    let c = client(&fake);
    c.create_node(&spec("ci-linux-abc234", "linux")).await.unwrap();
    c.drain_node("ci-linux-abc234", "bye").await.unwrap();
    c.delete_node("ci-linux-abc234").await.unwrap();
    assert!(fake.nodes().is_empty());
    let d = c.demand().await.unwrap();
    assert!(d.items.is_empty());
}

#[tokio::test]
async fn auth_and_permission_errors_are_typed() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let bad = JenkinsClient::new(config(&fake, "admin", "wrong-token")).unwrap();
    let err = bad.nodes().await.unwrap_err();
    assert_eq!(err, JenkinsError::Unauthorized);
    assert_eq!(err.class(), ErrorClass::Permanent);

    fake.add_user(FakeUser::with("reader", "reader-token", &[]));
    fake.add_user(FakeUser::with("connector", "connector-token", &[AGENT_CONNECT]));
    let admin = client(&fake);
    admin.create_node(&spec("ci-linux-abc234", "linux")).await.unwrap();
    let reader = JenkinsClient::new(config(&fake, "reader", "reader-token")).unwrap();
    let perm = |e: JenkinsError| match e {
        JenkinsError::Forbidden { permission } => permission,
        other => panic!("expected Forbidden, got {other:?}"),
    };
    assert_eq!(perm(reader.create_node(&spec("ci-linux-zzz234", "l")).await.unwrap_err()), "Agent/Create");
    assert_eq!(perm(reader.agent_secret("ci-linux-abc234").await.unwrap_err()), "Agent/Connect");
    assert_eq!(perm(reader.drain_node("ci-linux-abc234", "r").await.unwrap_err()), "Agent/Disconnect");
    assert_eq!(perm(reader.delete_node("ci-linux-abc234").await.unwrap_err()), "Agent/Delete");
    let mut cfg = config(&fake, "reader", "reader-token");
    cfg.demand_mode = DemandMode::ScriptConsole;
    let scripted = JenkinsClient::new(cfg).unwrap();
    assert_eq!(perm(scripted.demand().await.unwrap_err()), "Overall/Administer");
    // Why mode needs Agent/Create for its placeholders.
    assert_eq!(perm(reader.demand().await.unwrap_err()), "Agent/Create");
    let connector = JenkinsClient::new(config(&fake, "connector", "connector-token")).unwrap();
    assert_eq!(connector.agent_secret("ci-linux-abc234").await.unwrap().expose().len(), 64);
}
