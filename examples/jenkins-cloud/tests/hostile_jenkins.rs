//! Runaway demand and read-only commands, through the real binary against the
//! fake controller (over HTTP) and the in-memory cloud (no AWS).

use std::process::Stdio;

use jenkins_cloud_core::testkit::fake_jenkins::{FakeJenkins, FakeJenkinsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::Command;

const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";
const BIN: &str = env!("CARGO_BIN_EXE_jenkins-cloud");

async fn run(fake: &FakeJenkins, extra: &str, args: &[&str]) -> (bool, String, String) {
    run_at(fake.url(), TOKEN, extra, args).await
}

/// Not hex and not shaped like a secret: only removal by value hides it.
const WORDS_TOKEN: &str = "correct-horse-battery-staple";

async fn run_at(url: &str, token: &str, extra: &str, args: &[&str]) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "jc-hostile-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.yaml");
    std::fs::write(
        &config,
        format!(
            r#"owner: ci-hostile
jenkins: {{url: "{url}", user: admin, token_env: JC_HOSTILE_TOKEN{extra}}}
clouds:
  - name: mem
    kind: memory
    templates:
      - name: linux
        labels: linux
"#,
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("JC_HOSTILE_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run jenkins-cloud");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 5000 queued builds: one pass launches at most the default bound (100),
/// not 5000 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_queued_builds_launches_a_bounded_number_per_pass() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    for k in 0..5000 {
        fake.queue_freestyle(&format!("job-{k}"), "linux");
    }
    let (ok, stdout, stderr) = run(&fake, "", &["run", "--once"]).await;
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("report JSON");
    let launched = report["act"]["launched"]
        .as_array()
        .expect("launched")
        .len();
    assert_eq!(
        launched, 100,
        "the default global cap and per-pass bound hold"
    );
    let held: Vec<String> = report["plan"]["held_back"]
        .as_array()
        .expect("held_back")
        .iter()
        .map(|h| h[1].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        held.iter()
            .any(|h| h.contains("global cap 100") || h.contains("100 launches per pass")),
        "{held:?}"
    );
    let ours = fake
        .nodes()
        .into_iter()
        .filter(|n| n.description.contains("owner=ci-hostile "))
        .count();
    assert_eq!(ours, 100, "no node beyond the launches");
}

/// `plan` in `why` mode creates no placeholder (before: it created one per
/// template, and recreated them when labels changed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_in_why_mode_writes_nothing_to_jenkins() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    fake.queue_freestyle("a", "linux");
    let before = fake.nodes();
    let (ok, stdout, stderr) = run(
        &fake,
        ", demand_mode: why_parsing",
        &["plan", "--format", "json"],
    )
    .await;
    assert!(ok, "{stderr}");
    let _: serde_json::Value = serde_json::from_str(&stdout).expect("plan JSON");
    assert_eq!(fake.nodes(), before, "plan created or changed nodes");
    let (ok, _, stderr) = run(&fake, ", demand_mode: why_parsing", &["check"]).await;
    let _ = (ok, stderr);
    assert_eq!(fake.nodes(), before, "check created or changed nodes");
}

/// A Jenkins stand-in on loopback answering every request with `respond`'s
/// bytes (an endless chunked body for `None`).
async fn hostile(respond: fn(&str) -> Option<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                match respond(&request) {
                    Some(reply) => {
                        let _ = sock.write_all(reply.as_bytes()).await;
                    }
                    None => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = format!("{:x}\r\n{}\r\n", 65536, "[".repeat(65536));
                        // At most 4 GiB, far beyond the limit; stops when the client hangs up.
                        for _ in 0..65536 {
                            if sock.write_all(chunk.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}/")
}

fn reply(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// An endless `/computer/api/json` ends `plan` with a clear error at the
/// limit (before: the process grew to 3.5 GB until the 30 s timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_fails_at_the_limit() {
    let url = hostile(|request| {
        (!request.starts_with("GET /computer/api/json"))
            .then(|| reply("200 OK", "", "{\"items\":[]}"))
    })
    .await;
    let (ok, _, stderr) = run_at(
        &url,
        WORDS_TOKEN,
        ", demand_mode: why_parsing, max_response_bytes: 1048576",
        &["plan"],
    )
    .await;
    assert!(!ok, "plan must fail");
    assert!(
        stderr.contains("larger than 1048576 bytes (jenkins.max_response_bytes)"),
        "{stderr}"
    );
}

/// Error pages that reflect the token, raw or in the basic-auth value, are
/// printed without it; a redirect is named as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflected_tokens_are_not_printed_and_redirects_are_named() {
    let url = hostile(|request| {
        let auth = request
            .lines()
            .find_map(|l| l.strip_prefix("authorization: Basic "))
            .unwrap_or("")
            .trim()
            .to_owned();
        Some(reply(
            "500 Server Error",
            "",
            &format!("<html><body>boom {WORDS_TOKEN} {auth}</body></html>"),
        ))
    })
    .await;
    let (ok, _, stderr) = run_at(&url, WORDS_TOKEN, ", demand_mode: why_parsing", &["plan"]).await;
    assert!(!ok);
    assert!(stderr.contains("boom *** ***"), "{stderr}");
    assert!(!stderr.contains("correct-horse"), "token printed: {stderr}");

    let url = hostile(|_| {
        Some(reply(
            "302 Found",
            "Location: https://sso.example/login\r\n",
            "",
        ))
    })
    .await;
    let (ok, _, stderr) = run_at(&url, WORDS_TOKEN, ", demand_mode: why_parsing", &["plan"]).await;
    assert!(!ok);
    assert!(stderr.contains("Jenkins answered 302 to GET"), "{stderr}");
    assert!(stderr.contains("sso.example/login"), "{stderr}");
}

/// Two of our nodes reporting `numExecutors: 4294967295` (before: `attempt to
/// add with overflow` in the planner): `plan` answers, with the queue covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_absurd_executor_counts_do_not_crash_the_plan() {
    use jenkins_cloud_core::backend::OwnerId;
    use jenkins_cloud_core::jenkins::NodeMarker;
    use jenkins_cloud_core::label::LabelSet;
    use jenkins_cloud_core::template::NodeMode;
    use jenkins_cloud_core::testkit::fake_jenkins::FakeNode;

    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    for name in ["ci-hostile-linux-aaaaaa", "ci-hostile-linux-bbbbbb"] {
        let marker = NodeMarker {
            owner: OwnerId::new("ci-hostile").unwrap(),
            template: "linux".into(),
            created_at_ms: 1,
        };
        fake.add_node(FakeNode {
            name: name.into(),
            description: marker.to_description(),
            labels: LabelSet::parse("linux"),
            executors: u32::MAX,
            mode: NodeMode::Normal,
            remote_fs: "/home/jenkins/agent".into(),
            web_socket: true,
            temporarily_offline: false,
            offline_reason: None,
            connection: None,
            created_via: "form",
        });
    }
    fake.queue_freestyle("a", "linux");
    let (ok, stdout, stderr) = run(&fake, "", &["plan", "--format", "json"]).await;
    assert!(ok, "plan failed: {stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("plan JSON");
    assert_eq!(plan["agents"].as_array().map(Vec::len), Some(2), "{plan}");
}
