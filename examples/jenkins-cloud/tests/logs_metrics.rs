//! What operators' tools read, through the binary: logs without terminal
//! escapes when stderr is not a terminal, no progress line in captured
//! output, and `/metrics` and `/healthz` over HTTP.

use std::process::Stdio;
use std::time::Duration;

use jenkins_cloud_core::testkit::fake_jenkins::{FakeJenkins, FakeJenkinsConfig};
use tokio::process::Command;

const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";
const BIN: &str = env!("CARGO_BIN_EXE_jenkins-cloud");

fn write_config(fake: &FakeJenkins, extra: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "jc-logs-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.yaml");
    std::fs::write(
        &path,
        format!(
            r#"owner: ci-logs
jenkins: {{url: "{url}", user: admin, token_env: JC_LOGS_TOKEN}}
poll_interval: 1s
{extra}clouds:
  - name: mem
    kind: memory
    templates:
      - name: linux
        labels: linux
"#,
            url = fake.url()
        ),
    )
    .unwrap();
    path
}

fn command(config: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("JC_LOGS_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_pipe_carry_no_terminal_escapes() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    fake.queue_freestyle("a", "linux");
    let config = write_config(&fake, "");
    let out = command(&config, &["run", "--once"]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("launched"),
        "the pass logs its launch: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape sequences in a piped log: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_progress_line_stays_out_of_captured_output() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let config = write_config(&fake, "");
    let out = command(&config, &["simulate", "--strategies", "default"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\r'),
        "a progress line in captured stderr: {stderr:?}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_healthz_answer_over_http() {
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    fake.queue_freestyle("a", "linux");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_config(
        &fake,
        &format!("metrics: {{address: \"127.0.0.1:{port}\"}}\n"),
    );
    let mut daemon = command(&config, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut text = String::new();
    for _ in 0..100 {
        if let Ok(resp) = http.get(format!("{base}/metrics")).send().await {
            text = resp.text().await.unwrap_or_default();
            if text.contains("jenkins_cloud_passes_total{outcome=\"ok\"} ")
                && !text.contains("outcome=\"ok\"} 0")
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healthz = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("/healthz answers");
    let status = healthz.status();
    let body = healthz.text().await.unwrap_or_default();
    let _ = daemon.kill().await;
    assert!(status.is_success(), "{status}");
    assert_eq!(body.trim(), "ok");
    for name in [
        "# TYPE jenkins_cloud_agents gauge",
        "jenkins_cloud_launches_total{template=\"linux\"} 1",
        "jenkins_cloud_template_healthy{template=\"linux\"} 1",
        "jenkins_cloud_cloud_read_ok{cloud=\"mem\"} 1",
        "# TYPE jenkins_cloud_template_backoff_seconds gauge",
    ] {
        assert!(
            text.contains(name),
            "`{name}` missing from /metrics:\n{text}"
        );
    }
}
