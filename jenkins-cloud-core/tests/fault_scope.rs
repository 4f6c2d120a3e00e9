//! Faults stay inside their scope, in paused time over the in-memory
//! controller and cloud: a template whose agents die before they connect backs
//! off (and says why in Jenkins) instead of relaunching every pass, and a cloud
//! that cannot be read freezes only its own templates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jenkins_cloud_core::backend::{
    AgentTransport, Backend, Capabilities, CloudId, CloudInstance, CloudState, JenkinsEndpoint,
    LaunchBatch, LaunchOutcome, OwnerId, TerminateOutcome,
};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::memory::{BuildOutcome, MemoryBackend, MemoryCloud, MemoryJenkins};
use jenkins_cloud_core::reconcile::{BackoffPolicy, Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::NoDelay;
use jenkins_cloud_core::template::AgentTemplate;
use jenkins_cloud_core::BackendError;

const POLL: Duration = Duration::from_secs(5);
const PULL_ERROR: &str =
    "TaskFailedToStart; CannotPullContainerError: pull image manifest has been retried 5 time(s): ghcr.io/acme/agent:missing: not found";

fn owner() -> OwnerId {
    OwnerId::new("ci").unwrap()
}

fn config() -> ReconcileConfig {
    let endpoint = JenkinsEndpoint {
        url: "https://jenkins.example/".into(),
        transport: AgentTransport::WebSocket,
    };
    let mut config = ReconcileConfig::new(owner(), endpoint);
    config.poll_interval = POLL;
    config.seed = Some(7);
    // The schedule the issue names: 30 s doubling to 15 min.
    config.backoff = BackoffPolicy {
        capacity: Duration::from_secs(30),
        throttled: Duration::from_secs(30),
        transient: Duration::from_secs(30),
        permanent: Duration::from_secs(30),
        max_retryable: Duration::from_secs(900),
        max_permanent: Duration::from_secs(900),
    };
    config
}

fn template(name: &str, labels: &str) -> AgentTemplate {
    AgentTemplate::new(name, LabelSet::parse(labels))
}

fn finished(jenkins: &MemoryJenkins) -> usize {
    jenkins
        .history()
        .iter()
        .filter(|b| b.outcome == BuildOutcome::Succeeded)
        .count()
}

/// Fails every resource of `template` that has not connected yet, as ECS does
/// with a task whose image cannot be pulled.
async fn break_new_resources(backend: &MemoryBackend, template: &str) {
    for i in backend.list_owned().await.unwrap() {
        if i.template == template && matches!(i.state, CloudState::Pending | CloudState::Running) {
            backend.interrupt(&i.id, PULL_ERROR);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_template_whose_agents_die_before_connecting_backs_off_and_says_why() {
    let cloud = MemoryCloud::new();
    let jenkins = MemoryJenkins::new(owner());
    let backend = MemoryBackend::on_cloud(cloud.clone(), owner());
    backend.connect_agents_to(&jenkins);
    let shared: Arc<dyn Backend> = Arc::new(backend.clone());
    let pools = vec![Pool {
        template: Arc::new(template("linux", "linux")),
        backend: shared,
    }];
    let mut r = Reconciler::new(
        config(),
        Arc::new(jenkins.clone()),
        pools,
        Box::new(NoDelay),
    );
    for i in 0..4 {
        jenkins.submit(
            format!("job-{i}"),
            Some("linux".parse().unwrap()),
            Duration::from_secs(60),
        );
    }
    let start = tokio::time::Instant::now();
    let mut launch_times = Vec::new();
    while start.elapsed() < Duration::from_secs(3600) {
        let report = r.run_once().await.expect("pass");
        for _ in &report.act.launched {
            launch_times.push(start.elapsed());
        }
        break_new_resources(&backend, "linux").await;
        tokio::time::sleep(POLL).await;
    }
    let first_minute = launch_times
        .iter()
        .filter(|t| **t < Duration::from_secs(60))
        .count();
    assert!(
        first_minute <= 3 * 4,
        "at most 3 launches per queued build in the first minute: {launch_times:?}"
    );
    // After the first episode: one probe at a time, at growing intervals.
    let probes: Vec<Duration> = launch_times[4..].to_vec();
    for pair in probes.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(30),
            "{launch_times:?}"
        );
    }
    for triple in probes.windows(3) {
        assert!(
            triple[2] - triple[1] + POLL * 2 >= triple[1] - triple[0],
            "intervals do not shrink: {launch_times:?}"
        );
    }
    assert!(
        launch_times.len() <= 4 + 10,
        "an hour of a broken image costs a handful of launches, not one per pass: {launch_times:?}"
    );
    println!(
        "broken image, 4 builds, 1 h: {} launches at {launch_times:?}",
        launch_times.len()
    );
    let health = r.health();
    assert!(!health[0].healthy);
    assert!(health[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("CannotPullContainerError"));
    let shown = jenkins
        .template_problem("linux")
        .expect("the problem is shown in Jenkins");
    assert!(shown.contains("CannotPullContainerError"), "{shown}");
    assert!(shown.contains("template `linux`"), "{shown}");
    assert_eq!(
        r.failure_totals().values().sum::<u64>(),
        launch_times.len() as u64,
        "every death before connecting counts as a failed launch"
    );

    // The image is fixed: the next probe connects, the template is healthy
    // again, the problem is cleared and every build runs.
    let until = tokio::time::Instant::now() + Duration::from_secs(1800);
    while tokio::time::Instant::now() < until && finished(&jenkins) < 4 {
        r.run_once().await.expect("pass");
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(finished(&jenkins), 4);
    assert!(r.health()[0].healthy);
    assert_eq!(
        jenkins.template_problem("linux"),
        None,
        "cleared once healthy"
    );
}

/// A backend whose list can be switched off (a region outage, expired
/// credentials); everything else forwards.
#[derive(Debug)]
struct Outage {
    inner: MemoryBackend,
    down: AtomicBool,
}

#[async_trait]
impl Backend for Outage {
    fn kind(&self) -> &str {
        "flaky"
    }
    fn owner(&self) -> &OwnerId {
        self.inner.owner()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn validate_template(&self, t: &AgentTemplate) -> Result<(), Vec<String>> {
        self.inner.validate_template(t)
    }
    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        self.inner.launch(batch).await
    }
    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        self.inner.describe(ids).await
    }
    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        self.inner.terminate(ids, reason).await
    }
    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BackendError::transient("connection refused"));
        }
        self.inner.list_owned().await
    }
}

async fn run_for(r: &mut Reconciler, secs: u64) {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < until {
        r.run_once().await.expect("only Jenkins stops a pass");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_cloud_freezes_only_its_own_templates() {
    let cloud = MemoryCloud::new();
    let jenkins = MemoryJenkins::new(owner());
    let healthy = MemoryBackend::on_cloud(cloud.clone(), owner());
    healthy.connect_agents_to(&jenkins);
    let flaky = Arc::new(Outage {
        inner: MemoryBackend::on_cloud(MemoryCloud::new(), owner()),
        down: AtomicBool::new(false),
    });
    flaky.inner.connect_agents_to(&jenkins);
    let mut ec2 = template("ec2", "big");
    ec2.retention.idle_timeout = Some(Duration::from_secs(60));
    let pools = vec![
        Pool {
            template: Arc::new(template("fargate", "linux")),
            backend: Arc::new(healthy.clone()),
        },
        Pool {
            template: Arc::new(ec2),
            backend: Arc::clone(&flaky) as Arc<dyn Backend>,
        },
    ];
    let mut r = Reconciler::new(
        config(),
        Arc::new(jenkins.clone()),
        pools,
        Box::new(NoDelay),
    );
    let big = |n: &str| jenkins.submit(n, Some("big".parse().unwrap()), Duration::from_secs(30));
    big("big-0");
    run_for(&mut r, 120).await;
    assert_eq!(finished(&jenkins), 1);
    assert_eq!(flaky.inner.stats().launched, 1);

    // The EC2 cloud goes dark while its agent is idle past its timeout.
    flaky.down.store(true, Ordering::SeqCst);
    for i in 0..4 {
        jenkins.submit(
            format!("app-{i}"),
            Some("linux".parse().unwrap()),
            Duration::from_secs(30),
        );
    }
    big("big-1");
    big("big-2");
    run_for(&mut r, 600).await;
    assert_eq!(
        finished(&jenkins),
        1 + 4 + 2,
        "the healthy cloud served its 4; the EC2 agent it had ran both of its builds"
    );
    assert_eq!(
        flaky.inner.stats().launched,
        1,
        "no launch on the unreadable cloud"
    );
    assert_eq!(
        flaky.inner.stats().terminated,
        0,
        "no retirement on a partial view, though the agent idled past its timeout"
    );
    let reads = r.cloud_reads();
    assert!(reads[0].ok());
    assert_eq!(
        reads[1].error.as_deref(),
        Some("transient failure: connection refused")
    );
    let health = r.health();
    assert!(health[0].healthy);
    assert!(health[1].cloud_unreadable.is_some());
    assert!(jenkins
        .template_problem("ec2")
        .is_some_and(|p| p.contains("cannot be read")));

    // Back: the idle agent retires, the status clears, new demand is served.
    flaky.down.store(false, Ordering::SeqCst);
    run_for(&mut r, 120).await;
    assert!(r.cloud_reads()[1].ok());
    assert_eq!(jenkins.template_problem("ec2"), None);
    assert_eq!(
        flaky.inner.stats().terminated,
        1,
        "retired once it could be read"
    );
    big("big-3");
    big("big-4");
    run_for(&mut r, 300).await;
    assert_eq!(finished(&jenkins), 1 + 4 + 2 + 2);
    assert!(flaky.inner.stats().launched >= 2);
}
