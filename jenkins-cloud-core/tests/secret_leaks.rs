//! Secrets stay secret: an end-to-end run over HTTP (fake controller, HTTP
//! client, in-memory backend behind the metrics layer, the reconcile loop),
//! with faults on both sides, captured whole: every log line at TRACE level,
//! the `Debug` and JSON of every report and error, the `Debug` of the client,
//! its configuration and the loop, and the metrics snapshot. The API token (raw
//! and as the Basic-auth header value) and every agent secret appear nowhere.
//! Also: plain HTTP to a non-loopback Jenkins is refused unless allowed, and
//! resources that are not ours survive the run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use jenkins_cloud_core::backend::{
    AgentLaunch, AgentTransport, Backend, CloudId, CloudState, JenkinsEndpoint, LaunchBatch,
    OwnerId,
};
use jenkins_cloud_core::jenkins::client::{JenkinsClient, JenkinsClientConfig};
use jenkins_cloud_core::jenkins::{JenkinsApi, NodeMarker};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::layer::MetricsBackend;
use jenkins_cloud_core::memory::{Latency, MemoryBackend};
use jenkins_cloud_core::reconcile::{Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::NoDelay;
use jenkins_cloud_core::template::AgentTemplate;
use jenkins_cloud_core::testkit::fake_jenkins::{
    AgentConnection, FakeJenkins, FakeJenkinsConfig, FakeNode, Faults,
};
use jenkins_cloud_core::{ErrorClass, Secret};

const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";
const WRONG_TOKEN: &str = "99ff88ee77dd66cc55bb44aa3322110099";

// ---------------------------------------------------------------------------
// Log capture.

#[derive(Clone)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged by any thread of this test binary, at TRACE level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = Buffer(logs.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        logs
    })
    .clone()
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The secret the loop launched `agent` with (what its container would hold).
fn launch_secret(memory: &MemoryBackend, agent: &str) -> Secret {
    memory
        .cloud()
        .instances()
        .into_iter()
        .find(|r| r.instance.agent_name == agent)
        .map(|r| r.secret)
        .expect("launched instance")
}

fn client_config(url: &str, token: &str) -> JenkinsClientConfig {
    JenkinsClientConfig::new(
        url,
        "admin",
        Secret::new(token),
        OwnerId::new("ci").unwrap(),
    )
}

/// Another owner's instance in the same cloud; returns its id.
async fn foreign_instance(memory: &MemoryBackend) -> CloudId {
    let other = MemoryBackend::on_cloud(memory.cloud().clone(), OwnerId::new("other").unwrap());
    let template = AgentTemplate::new("linux", LabelSet::parse("linux"));
    let endpoint = JenkinsEndpoint {
        url: "https://jenkins.example/".into(),
        transport: AgentTransport::WebSocket,
    };
    let agents = [AgentLaunch {
        agent_name: "other-linux-zzzzzz".into(),
        secret: Secret::new("other-owner-secret"),
        client_token: "other-token".into(),
    }];
    let out = other
        .launch(LaunchBatch {
            template: &template,
            jenkins: &endpoint,
            agents: &agents,
        })
        .await;
    out[0].result.clone().expect("foreign launch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_agent_secret_in_logs_debug_errors_or_metrics() {
    let logs = captured_logs();
    let fake = FakeJenkins::start(FakeJenkinsConfig {
        build_duration: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let owner = OwnerId::new("ci").unwrap();
    let config = client_config(fake.url(), TOKEN);
    let mut haystack = vec![format!("{config:?}")];
    let client = Arc::new(JenkinsClient::new(config).unwrap());
    let memory = MemoryBackend::new(owner.clone())
        .with_start_latency(Latency::Fixed(Duration::from_millis(150)))
        .with_stop_latency(Duration::from_millis(50));
    memory.fail_next_launches(1, ErrorClass::Transient);
    let foreign_id = foreign_instance(&memory).await;
    let backend = Arc::new(memory.clone());
    let metrics = Arc::new(MetricsBackend::new(backend.clone()));
    let mut linux = AgentTemplate::new("linux", LabelSet::parse("linux docker"));
    linux.retention.idle_timeout = Some(Duration::from_millis(400));
    let mut once = AgentTemplate::new("once", LabelSet::parse("ephemeral"));
    once.retention.one_shot = true;
    // A one-shot agent whose short build ran while a pass was skipped looks
    // unused (see docs/reliability.md): it retires when idle.
    once.retention.idle_timeout = Some(Duration::from_millis(400));
    let endpoint = JenkinsEndpoint {
        url: fake.url().to_owned(),
        transport: AgentTransport::WebSocket,
    };
    let mut rc = ReconcileConfig::new(owner.clone(), endpoint);
    rc.seed = Some(11);
    let pools = vec![
        Pool {
            template: Arc::new(linux),
            backend: metrics.clone(),
        },
        Pool {
            template: Arc::new(once),
            backend: metrics.clone(),
        },
    ];
    let mut r = Reconciler::new(rc, client.clone(), pools, Box::new(NoDelay));

    // Not ours: a static agent and a node of another jenkins-cloud owner.
    fake.add_node(FakeNode::new("static-1", "windows"));
    let mut theirs = FakeNode::new("other-linux-zzzzzz", "linux");
    theirs.description = NodeMarker {
        owner: OwnerId::new("other").unwrap(),
        template: "linux".into(),
        created_at_ms: 0,
    }
    .to_description();
    fake.add_node(theirs);

    let mut queued = BTreeSet::new();
    for i in 0..3 {
        queued.insert(fake.queue_freestyle(&format!("app-{i}"), "linux"));
    }
    queued.insert(fake.queue_pipeline("deploy", "ephemeral"));

    let mut connections: BTreeMap<String, AgentConnection> = BTreeMap::new();
    let mut ran = BTreeSet::new();
    let mut launched = BTreeSet::new();
    let mut errors = 0;
    for pass in 0..80 {
        if pass == 3 {
            // Faults on the Jenkins side: error pages, broken JSON.
            fake.set_faults(Faults {
                html_503_next: 2,
                invalid_json_next: 1,
                delay: None,
            });
        }
        let result = r.run_once().await;
        haystack.push(format!("{result:?}"));
        match &result {
            Ok(report) => {
                haystack.push(serde_json::to_string(report).unwrap());
                launched.extend(report.act.launched.iter().map(|l| l.agent.clone()));
                errors += report.act.errors.len();
                for e in &report.act.errors {
                    haystack.push(format!("{e:?} {}", e.message));
                }
            }
            Err(e) => {
                errors += 1;
                haystack.push(e.to_string());
            }
        }
        for instance in memory.list_owned().await.unwrap() {
            let name = instance.agent_name.clone();
            match instance.state {
                CloudState::Running if !connections.contains_key(&name) => {
                    let secret = launch_secret(&memory, &name);
                    if let Ok(conn) = fake.connect_agent(&name, secret.expose()) {
                        connections.insert(name, conn);
                    }
                }
                CloudState::Stopping | CloudState::Terminated => {
                    if let Some(conn) = connections.remove(&name) {
                        fake.disconnect(&conn);
                    }
                }
                _ => {}
            }
        }
        ran.extend(fake.builds().iter().map(|b| b.queue_id));
        let ours_left = fake.nodes().iter().any(|n| n.name.starts_with("ci-"));
        if ran.is_superset(&queued) && fake.builds().is_empty() && !ours_left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ran.is_superset(&queued),
        "every build ran: {ran:?} of {queued:?}"
    );
    assert!(errors > 0, "the fault paths were exercised");

    // A client with a wrong token: its error, too, must not show the token.
    let wrong_config = client_config(fake.url(), WRONG_TOKEN);
    haystack.push(format!("{wrong_config:?}"));
    let wrong = JenkinsClient::new(wrong_config).unwrap();
    let err = wrong.demand().await.unwrap_err();
    haystack.push(format!("{err:?} {err}"));
    haystack.push(format!("{wrong:?} {client:?} {r:?} {backend:?}"));
    let snapshot = metrics.snapshot();
    haystack.push(serde_json::to_string(&snapshot).unwrap());
    haystack.push(format!("{snapshot:?}"));
    haystack.push(String::from_utf8_lossy(&logs.lock().unwrap()).into_owned());
    let haystack = haystack.join("\n");

    // The needles: the tokens, raw and as Basic auth, and every agent secret,
    // checked against what Jenkins itself derives.
    let mut needles = vec![
        TOKEN.to_owned(),
        WRONG_TOKEN.to_owned(),
        base64(format!("admin:{TOKEN}").as_bytes()),
        base64(format!("admin:{WRONG_TOKEN}").as_bytes()),
    ];
    // The secret each agent was launched with (a failed launch leaves no instance).
    let secrets: BTreeMap<String, Secret> = memory
        .cloud()
        .instances()
        .into_iter()
        .filter(|r| r.owner == owner)
        .map(|r| (r.instance.agent_name, r.secret))
        .collect();
    // Four builds, one launch refused: its build may run on an agent of the
    // first three once that one is idle (the template launches again only
    // after one of its agents connected).
    assert!(secrets.len() >= 3, "agents were launched: {secrets:?}");
    for (name, secret) in &secrets {
        assert_eq!(secret.expose(), fake.secret_for(name), "{name}");
        assert_eq!(secret.expose().len(), 64);
        needles.push(secret.expose().to_owned());
    }
    for needle in &needles {
        assert!(
            !haystack.contains(needle.as_str()),
            "a secret leaked (…{}) near: {}",
            &needle[needle.len() - 4..],
            context(&haystack, needle)
        );
    }
    // The capture is real: it holds the run's story, agent names included.
    for name in &launched {
        assert!(
            haystack.contains(name.as_str()),
            "{name} not in the capture"
        );
    }
    assert!(haystack.contains("launched agent") && haystack.contains("node deleted"));
    assert!(haystack.contains("Secret(***)") || haystack.contains("***"));

    // What is not ours survived.
    let names: BTreeSet<String> = fake.nodes().into_iter().map(|n| n.name).collect();
    assert_eq!(
        names,
        BTreeSet::from(["static-1".to_owned(), "other-linux-zzzzzz".to_owned()]),
        "agents {:?}; nodes {:?}",
        r.agents()
            .map(|a| (&a.name, &a.state, a.cloud_state.clone()))
            .collect::<Vec<_>>(),
        fake.nodes()
    );
    let foreign = memory
        .cloud()
        .instances()
        .into_iter()
        .find(|i| i.instance.id == foreign_id)
        .unwrap();
    assert!(!foreign.instance.state.is_gone() && foreign.stop_reason.is_none());
}

fn context(haystack: &str, needle: &str) -> String {
    let at = haystack.find(needle).unwrap_or(0);
    let start = haystack[..at]
        .char_indices()
        .rev()
        .nth(80)
        .map_or(0, |(i, _)| i);
    haystack[start..at].to_owned()
}

#[test]
fn plain_http_is_refused_for_non_loopback_hosts_unless_allowed() {
    for url in [
        "http://jenkins.example.com/",
        "http://10.0.0.5:8080/jenkins/",
        "http://jenkins.localhost.example/",
    ] {
        let err = JenkinsClient::new(client_config(url, TOKEN)).unwrap_err();
        assert_eq!(err.field, "url", "{url}: {err}");
        assert!(err.to_string().contains("plain HTTP"), "{err}");
        assert!(!err.to_string().contains(TOKEN));
        let mut allowed = client_config(url, TOKEN);
        allowed.allow_insecure_http = true;
        assert!(
            JenkinsClient::new(allowed).is_ok(),
            "{url} allowed explicitly"
        );
    }
    for url in [
        "http://127.0.0.1:8080/",
        "http://localhost:8080/",
        "http://[::1]:8080/",
        "https://jenkins.example.com/",
    ] {
        assert!(
            JenkinsClient::new(client_config(url, TOKEN)).is_ok(),
            "{url} is accepted"
        );
    }
    let err = JenkinsClient::new(client_config("ftp://jenkins.example.com/", TOKEN)).unwrap_err();
    assert_eq!(err.field, "url");
}
