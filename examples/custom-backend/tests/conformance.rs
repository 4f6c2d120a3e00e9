//! The process backend passes core's conformance suite: one test per behaviour,
//! and the whole suite on one harness.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use custom_backend::ProcessBackend;
use jenkins_cloud_core::backend::{Backend, CloudId, OwnerId};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::testkit::conformance::{self, ConformanceHarness};
use jenkins_cloud_core::AgentTemplate;

/// One state directory ("the cloud") shared by every backend of the harness.
struct ProcessHarness {
    dir: PathBuf,
    failures: Mutex<BTreeMap<OwnerId, Arc<AtomicUsize>>>,
}

impl ProcessHarness {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "jc-process-backend-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        Self {
            dir,
            failures: Mutex::new(BTreeMap::new()),
        }
    }

    fn counter(&self, owner: &OwnerId) -> Arc<AtomicUsize> {
        self.failures
            .lock()
            .unwrap()
            .entry(owner.clone())
            .or_default()
            .clone()
    }
}

impl Drop for ProcessHarness {
    /// Removes the state directory (agents are `sleep 30`: they end by themselves).
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[async_trait]
impl ConformanceHarness for ProcessHarness {
    async fn backend(&self, owner: OwnerId) -> Arc<dyn Backend> {
        let counter = self.counter(&owner);
        Arc::new(
            ProcessBackend::new(owner, &self.dir)
                .expect("state dir")
                .with_failures(counter),
        )
    }

    fn template(&self) -> AgentTemplate {
        let mut t = AgentTemplate::new("local", LabelSet::parse("linux"));
        t.spec = serde_json::json!({"command": ["sleep", "30"]});
        t
    }

    fn invalid_template(&self) -> AgentTemplate {
        let mut t = self.template();
        t.spec = serde_json::json!({"command": [], "image": "x"});
        t
    }

    fn unknown_id(&self) -> CloudId {
        CloudId("proc-0-0".into())
    }

    async fn settle(&self) {}

    async fn inject_launch_failures(&self, owner: &OwnerId, count: usize) -> bool {
        self.counter(owner).store(count, Ordering::SeqCst);
        true
    }
}

mod per_behaviour {
    use super::ProcessHarness;
    jenkins_cloud_core::conformance_tests!(
        #[tokio::test]
        ProcessHarness::new()
    );
}

#[tokio::test]
async fn run_all_passes_every_behaviour_but_the_warm_pool_one() {
    // A process backend has no warm pool (`stop_resume` is false): that behaviour
    // is the only one it cannot be checked for.
    const POOL_ONLY: &str = "warm_pool_members_are_no_agents";
    let report = conformance::run_all(&ProcessHarness::new()).await;
    assert!(report.is_ok(), "{:#?}", report.failed);
    let unsupported: Vec<&str> = report.not_supported.iter().map(|(n, _)| *n).collect();
    assert_eq!(unsupported, [POOL_ONLY]);
    let others: Vec<&str> = conformance::BEHAVIOURS
        .iter()
        .copied()
        .filter(|n| *n != POOL_ONLY)
        .collect();
    assert_eq!(report.passed, others);
}

#[tokio::test]
async fn the_secret_reaches_only_the_agent_process_environment() {
    let h = ProcessHarness::new();
    let owner = OwnerId::new("secret-check").unwrap();
    let b = h.backend(owner).await;
    let secret = "ab".repeat(32);
    let agents = [jenkins_cloud_core::backend::AgentLaunch {
        agent_name: "a1".into(),
        secret: jenkins_cloud_core::Secret::new(secret.clone()),
        client_token: "t1".into(),
    }];
    let jenkins = h.jenkins();
    let template = h.template();
    let out = b
        .launch(jenkins_cloud_core::backend::LaunchBatch {
            template: &template,
            jenkins: &jenkins,
            agents: &agents,
        })
        .await;
    let id = out[0].result.clone().expect("launched");
    for entry in std::fs::read_dir(&h.dir).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        assert!(!text.contains(&secret), "secret written to the state dir");
    }
    let pid: u32 = id.0.split('-').nth(1).unwrap().parse().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let needle = format!("JENKINS_SECRET={secret}");
    assert!(
        environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()),
        "the agent process gets its secret"
    );
    assert!(b.terminate(&[id], "done").await[0].result.is_ok());
}
