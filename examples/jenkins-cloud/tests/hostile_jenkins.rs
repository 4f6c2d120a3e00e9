//! Runaway demand and read-only commands, through the real binary against the
//! fake controller (over HTTP) and the in-memory cloud (no AWS).

use std::process::Stdio;

use jenkins_cloud_core::testkit::fake_jenkins::{FakeJenkins, FakeJenkinsConfig};
use tokio::process::Command;

const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";
const BIN: &str = env!("CARGO_BIN_EXE_jenkins-cloud");

async fn run(fake: &FakeJenkins, extra: &str, args: &[&str]) -> (bool, String, String) {
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
            url = fake.url()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("JC_HOSTILE_TOKEN", TOKEN)
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
