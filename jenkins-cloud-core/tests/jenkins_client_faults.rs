//! Transport faults, bad responses, and secrets never leaking into errors or `Debug`.

use std::time::Duration;

use jenkins_cloud_core::backend::OwnerId;
use jenkins_cloud_core::jenkins::client::{DemandMode, JenkinsClient, JenkinsClientConfig, PlaceholderTemplate};
use jenkins_cloud_core::jenkins::{JenkinsApi, JenkinsError, NodeMarker, NodeSpec};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::template::NodeMode;
use jenkins_cloud_core::testkit::fake_jenkins::{FakeJenkins, FakeJenkinsConfig, Faults};
use jenkins_cloud_core::{ErrorClass, Secret};

const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";

fn config(url: &str, token: &str) -> JenkinsClientConfig {
    let mut c = JenkinsClientConfig::new(url, "admin", Secret::new(token), OwnerId::new("ci").unwrap());
    c.templates = vec![PlaceholderTemplate { name: "linux".into(), labels: LabelSet::parse("linux") }];
    c.request_timeout = Duration::from_millis(500);
    c.connect_timeout = Duration::from_millis(500);
    c
}

fn spec(name: &str) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        marker: NodeMarker { owner: OwnerId::new("ci").unwrap(), template: "linux".into(), created_at_ms: 1 },
        labels: LabelSet::parse("linux"),
        executors: 1,
        remote_fs: "/home/jenkins/agent".into(),
        mode: NodeMode::Normal,
        web_socket: true,
    }
}

#[tokio::test]
async fn html_503_pages_are_server_errors_then_recover() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let c = JenkinsClient::new(config(fake.url(), TOKEN)).unwrap();
    fake.set_faults(Faults { html_503_next: 2, ..Default::default() });
    for _ in 0..2 {
        let err = c.nodes().await.unwrap_err();
        match &err {
            JenkinsError::Server { status: 503, message } => {
                assert!(message.contains("Jenkins is going to restart"), "{message}");
                assert!(!message.contains('<'), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.class(), ErrorClass::Transient);
    }
    assert!(c.nodes().await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_json_and_html_instead_of_json_are_bad_responses() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let mut cfg = config(fake.url(), TOKEN);
    cfg.demand_mode = DemandMode::WhyParsing;
    let c = JenkinsClient::new(cfg).unwrap();
    c.ensure_placeholders().await.unwrap();
    fake.set_faults(Faults { invalid_json_next: 1, ..Default::default() });
    let err = c.nodes().await.unwrap_err();
    assert!(matches!(&err, JenkinsError::BadResponse { message } if message.contains("invalid JSON")), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    // A login page served with 200 where JSON was expected (a misconfigured proxy).
    let app = axum::Router::new().fallback(|| async {
        axum::response::Html("<html><head><title>Sign in</title></head><body>Sign in to Jenkins</body></html>")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = JenkinsClient::new(config(&url, TOKEN)).unwrap();
    let err = c.nodes().await.unwrap_err();
    assert!(
        matches!(&err, JenkinsError::BadResponse { message } if message.contains("HTML") && message.contains("Sign in to Jenkins")),
        "{err:?}"
    );
    let err = c.agent_secret("ci-linux-abc234").await.unwrap_err();
    assert!(matches!(err, JenkinsError::BadResponse { .. }), "{err:?}");
    let err = c.demand().await.unwrap_err();
    assert!(matches!(err, JenkinsError::BadResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn slow_answers_time_out() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let c = JenkinsClient::new(config(fake.url(), TOKEN)).unwrap();
    fake.set_faults(Faults { delay: Some(Duration::from_secs(2)), ..Default::default() });
    let err = c.nodes().await.unwrap_err();
    assert!(matches!(err, JenkinsError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn refused_connections_are_transport_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let c = JenkinsClient::new(config(&url, TOKEN)).unwrap();
    let err = c.nodes().await.unwrap_err();
    assert!(matches!(err, JenkinsError::Transport { .. }), "{err:?}");
    assert!(err.class().is_retryable());
}

#[tokio::test]
async fn token_and_secrets_never_leak() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let cfg = config(fake.url(), TOKEN);
    assert!(!format!("{cfg:?}").contains(TOKEN));
    let c = JenkinsClient::new(cfg).unwrap();
    assert!(!format!("{c:?}").contains(TOKEN));
    c.create_node(&spec("ci-linux-abc234")).await.unwrap();
    let secret = c.agent_secret("ci-linux-abc234").await.unwrap();
    assert!(!format!("{secret:?} {secret}").contains(secret.expose()));

    let mut errors = Vec::new();
    errors.push(JenkinsClient::new(config(fake.url(), "bad")).unwrap().nodes().await.unwrap_err());
    errors.push(c.create_node(&spec("ci-linux-abc234")).await.unwrap_err());
    fake.set_faults(Faults { html_503_next: 1, ..Default::default() });
    errors.push(c.agent_secret("ci-linux-abc234").await.unwrap_err());
    fake.set_faults(Faults { delay: Some(Duration::from_secs(2)), ..Default::default() });
    errors.push(c.agent_secret("ci-linux-abc234").await.unwrap_err());
    fake.set_faults(Faults::default());
    let bad_cfg = JenkinsClient::new(config("http://jenkins.example.com/", TOKEN)).unwrap_err();
    let mut texts: Vec<String> = errors.iter().flat_map(|e| [e.to_string(), format!("{e:?}")]).collect();
    texts.push(bad_cfg.to_string());
    texts.push(format!("{bad_cfg:?}"));
    for t in &texts {
        assert!(!t.contains(TOKEN), "token in {t}");
        assert!(!t.contains(secret.expose()), "secret in {t}");
    }
    assert_eq!(bad_cfg.field, "url");
}
