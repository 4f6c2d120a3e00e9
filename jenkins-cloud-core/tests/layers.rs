//! The backend layers (retry, rate limit, fault injection, metrics), alone and
//! composed, around a scripted in-test backend, in paused tokio time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use jenkins_cloud_core::backend::{
    AgentLaunch, AgentTransport, Backend, BackendError, Capabilities, CloudId, CloudInstance,
    CloudState, JenkinsEndpoint, LaunchBatch, LaunchOutcome, OwnerId, TerminateOutcome,
};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::layer::{
    BucketConfig, Cost, FaultBackend, FaultConfig, FaultKind, MetricsBackend, Op, OpFaults,
    RateLimitBackend, RateLimits, RetryBackend, RetryPolicy, ScriptedFault,
};
use jenkins_cloud_core::{AgentTemplate, ErrorClass, Secret};

// ---------------------------------------------------------------------------
// A scripted backend that counts every call.

/// One call that reached the test cloud: operation, when, and its items (client
/// tokens for launch, ids for terminate).
#[derive(Debug, Clone)]
struct Call {
    op: Op,
    at: Instant,
    items: Vec<String>,
}

#[derive(Debug, Default)]
struct Script {
    /// Errors returned by the next describe calls, then success.
    describe: VecDeque<BackendError>,
    /// Errors returned by the next list_owned calls, then success.
    list: VecDeque<BackendError>,
    /// Per agent name: errors for its next launch attempts, then success.
    launch: HashMap<String, VecDeque<BackendError>>,
    /// Per id: errors for its next terminate attempts, then success.
    terminate: HashMap<String, VecDeque<BackendError>>,
}

/// Honours client tokens like ECS and EC2: a token seen before returns the
/// resource it started instead of starting another.
#[derive(Debug)]
struct TestCloud {
    owner: OwnerId,
    script: Mutex<Script>,
    calls: Mutex<Vec<Call>>,
    started: Mutex<BTreeMap<String, CloudId>>,
}

impl TestCloud {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            owner: OwnerId::new("layers-test").unwrap(),
            script: Mutex::default(),
            calls: Mutex::default(),
            started: Mutex::default(),
        })
    }

    fn script(&self, edit: impl FnOnce(&mut Script)) {
        edit(&mut self.script.lock().unwrap());
    }

    fn calls(&self, op: Op) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.op == op)
            .cloned()
            .collect()
    }

    fn started(&self) -> BTreeMap<String, CloudId> {
        self.started.lock().unwrap().clone()
    }

    fn record(&self, op: Op, items: Vec<String>) {
        self.calls.lock().unwrap().push(Call {
            op,
            at: Instant::now(),
            items,
        });
    }
}

#[async_trait]
impl Backend for TestCloud {
    fn kind(&self) -> &str {
        "test"
    }
    fn owner(&self) -> &OwnerId {
        &self.owner
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(10, 100, 100)
    }
    fn validate_template(&self, _: &AgentTemplate) -> Result<(), Vec<String>> {
        Ok(())
    }

    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        self.record(
            Op::Launch,
            batch
                .agents
                .iter()
                .map(|a| a.client_token.clone())
                .collect(),
        );
        let mut script = self.script.lock().unwrap();
        let mut started = self.started.lock().unwrap();
        batch
            .agents
            .iter()
            .map(|a| {
                let scripted = script
                    .launch
                    .get_mut(&a.agent_name)
                    .and_then(|q| q.pop_front());
                let result = match scripted {
                    Some(e) => Err(e),
                    None => {
                        let next = CloudId(format!("res-{}", started.len()));
                        Ok(started
                            .entry(a.client_token.clone())
                            .or_insert(next)
                            .clone())
                    }
                };
                LaunchOutcome {
                    agent_name: a.agent_name.clone(),
                    result,
                }
            })
            .collect()
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        self.record(Op::Describe, ids.iter().map(|i| i.0.clone()).collect());
        if let Some(e) = self.script.lock().unwrap().describe.pop_front() {
            return Err(e);
        }
        Ok(ids
            .iter()
            .map(|id| CloudInstance {
                id: id.clone(),
                agent_name: format!("agent-of-{id}"),
                template: "t".into(),
                state: CloudState::Running,
                launched_at: None,
            })
            .collect())
    }

    async fn terminate(&self, ids: &[CloudId], _reason: &str) -> Vec<TerminateOutcome> {
        self.record(Op::Terminate, ids.iter().map(|i| i.0.clone()).collect());
        let mut script = self.script.lock().unwrap();
        ids.iter()
            .map(|id| TerminateOutcome {
                id: id.clone(),
                result: match script.terminate.get_mut(&id.0).and_then(|q| q.pop_front()) {
                    Some(e) => Err(e),
                    None => Ok(()),
                },
            })
            .collect()
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        self.record(Op::ListOwned, vec![]);
        match self.script.lock().unwrap().list.pop_front() {
            Some(e) => Err(e),
            None => Ok(vec![]),
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers.

const SECRET_PREFIX: &str = "f00dfacecafe";

fn agents(names: &[&str]) -> Vec<AgentLaunch> {
    names
        .iter()
        .map(|n| AgentLaunch {
            agent_name: (*n).to_owned(),
            secret: Secret::new(format!("{SECRET_PREFIX}-{n}")),
            client_token: format!("tok-{n}"),
        })
        .collect()
}

fn numbered(prefix: &str, n: usize) -> Vec<AgentLaunch> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    agents(&names.iter().map(String::as_str).collect::<Vec<_>>())
}

fn template() -> AgentTemplate {
    AgentTemplate::new("linux", LabelSet::parse("linux"))
}

fn endpoint() -> JenkinsEndpoint {
    JenkinsEndpoint {
        url: "http://jenkins.invalid/".into(),
        transport: AgentTransport::WebSocket,
    }
}

async fn launch(backend: &dyn Backend, agents: &[AgentLaunch]) -> Vec<LaunchOutcome> {
    let (t, j) = (template(), endpoint());
    backend
        .launch(LaunchBatch {
            template: &t,
            jenkins: &j,
            agents,
        })
        .await
}

fn class_of<T>(r: &Result<T, BackendError>) -> Option<ErrorClass> {
    r.as_ref().err().map(BackendError::class)
}

fn ids(names: &[&str]) -> Vec<CloudId> {
    names.iter().map(|n| CloudId::from(*n)).collect()
}

fn retry(cloud: &Arc<TestCloud>) -> RetryBackend<TestCloud> {
    RetryBackend::with_seed(cloud.clone(), RetryPolicy::default(), 7)
}

// ---------------------------------------------------------------------------
// Retry.

#[tokio::test(start_paused = true)]
async fn retry_repeats_throttled_and_transient_describe_until_success() {
    let cloud = TestCloud::new();
    cloud.script(|s| {
        s.describe = [
            BackendError::throttled("slow down"),
            BackendError::transient("503"),
        ]
        .into()
    });
    let backend = retry(&cloud);
    let start = Instant::now();
    let described = backend.describe(&ids(&["a", "b"])).await.unwrap();
    assert_eq!(described.len(), 2);
    assert_eq!(cloud.calls(Op::Describe).len(), 3);
    assert_eq!(backend.retries(), 2);
    // Full jitter: at most 1 s before retry 1, at most 2 s before retry 2.
    assert!(
        start.elapsed() <= Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_after_max_attempts_within_the_delay_bound() {
    let cloud = TestCloud::new();
    cloud.script(|s| s.list = (0..10).map(|_| BackendError::transient("500")).collect());
    let backend = retry(&cloud);
    let start = Instant::now();
    let err = backend.list_owned().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(cloud.calls(Op::ListOwned).len(), 3);
    assert!(start.elapsed() <= Duration::from_secs(1 + 2));
    assert!(start.elapsed() <= RetryPolicy::default().max_total_delay());

    let once = RetryBackend::new(
        cloud.clone(),
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
    );
    once.list_owned().await.unwrap_err();
    assert_eq!(
        cloud.calls(Op::ListOwned).len(),
        4,
        "max_attempts 1: no retry"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_delays_grow_exponentially_and_are_capped() {
    let cloud = TestCloud::new();
    cloud.script(|s| s.describe = (0..10).map(|_| BackendError::transient("500")).collect());
    let policy = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(4),
    };
    let backend = RetryBackend::with_seed(cloud.clone(), policy.clone(), 99);
    backend.describe(&ids(&["a"])).await.unwrap_err();
    let at: Vec<Instant> = cloud.calls(Op::Describe).iter().map(|c| c.at).collect();
    assert_eq!(at.len(), 6);
    let caps = [1, 2, 4, 4, 4];
    for (i, cap) in caps.iter().enumerate() {
        let gap = at[i + 1] - at[i];
        assert!(gap <= Duration::from_secs(*cap), "retry {}: {gap:?}", i + 1);
    }
    assert!(at[5] - at[0] <= policy.max_total_delay());
}

#[tokio::test(start_paused = true)]
async fn retry_jitter_is_repeatable_for_a_seed() {
    async fn waits(seed: u64) -> Vec<Duration> {
        let cloud = TestCloud::new();
        cloud.script(|s| s.describe = (0..3).map(|_| BackendError::transient("x")).collect());
        let backend = RetryBackend::with_seed(cloud.clone(), RetryPolicy::default(), seed);
        backend.describe(&[]).await.unwrap_err();
        let at: Vec<Instant> = cloud.calls(Op::Describe).iter().map(|c| c.at).collect();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }
    assert_eq!(waits(3).await, waits(3).await);
    assert_ne!(waits(3).await, waits(4).await);
}

#[tokio::test(start_paused = true)]
async fn retry_honours_retry_after_and_gives_up_when_it_is_too_long() {
    let cloud = TestCloud::new();
    cloud.script(|s| {
        s.describe = [BackendError::Throttled {
            message: "wait".into(),
            retry_after: Some(Duration::from_secs(5)),
        }]
        .into()
    });
    let backend = retry(&cloud);
    let start = Instant::now();
    backend.describe(&[]).await.unwrap();
    assert_eq!(cloud.calls(Op::Describe).len(), 2);
    assert!(start.elapsed() >= Duration::from_secs(5));
    assert!(start.elapsed() <= Duration::from_secs(20));

    cloud.script(|s| {
        s.describe = [BackendError::Throttled {
            message: "wait a minute".into(),
            retry_after: Some(Duration::from_secs(60)),
        }]
        .into()
    });
    let start = Instant::now();
    let err = backend.describe(&[]).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Throttled);
    assert_eq!(cloud.calls(Op::Describe).len(), 3, "not retried");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn capacity_and_permanent_errors_surface_on_the_first_try() {
    for error in [
        BackendError::capacity("no Fargate capacity"),
        BackendError::permanent("subnet-123 does not exist"),
    ] {
        let cloud = TestCloud::new();
        let e = error.clone();
        cloud.script(move |s| {
            s.describe = [e.clone()].into();
            s.list = [e.clone()].into();
            s.launch.insert("a".into(), [e.clone()].into());
            s.terminate.insert("i-1".into(), [e].into());
        });
        let backend = retry(&cloud);
        let start = Instant::now();
        assert_eq!(backend.describe(&[]).await.unwrap_err(), error);
        assert_eq!(backend.list_owned().await.unwrap_err(), error);
        let launched = launch(&backend, &agents(&["a"])).await;
        assert_eq!(launched[0].result.as_ref().unwrap_err(), &error);
        let terminated = backend.terminate(&ids(&["i-1"]), "idle").await;
        assert_eq!(terminated[0].result.as_ref().unwrap_err(), &error);
        for op in Op::ALL {
            assert_eq!(cloud.calls(op).len(), 1, "{op} with {error}");
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(backend.retries(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn launch_retries_only_retryable_agents_with_their_tokens_and_keeps_successes() {
    let cloud = TestCloud::new();
    cloud.script(|s| {
        s.launch
            .insert("b".into(), [BackendError::transient("500")].into());
        s.launch
            .insert("c".into(), [BackendError::capacity("no spot")].into());
        s.launch.insert(
            "d".into(),
            [
                BackendError::throttled("slow"),
                BackendError::throttled("slow"),
            ]
            .into(),
        );
        s.launch
            .insert("e".into(), [BackendError::permanent("bad image")].into());
    });
    let backend = retry(&cloud);
    let batch = agents(&["a", "b", "c", "d", "e"]);
    let outcomes = launch(&backend, &batch).await;

    let names: Vec<&str> = outcomes.iter().map(|o| o.agent_name.as_str()).collect();
    assert_eq!(
        names,
        ["a", "b", "c", "d", "e"],
        "one outcome per agent, in order"
    );
    let classes: Vec<Option<ErrorClass>> = outcomes.iter().map(|o| class_of(&o.result)).collect();
    assert_eq!(
        classes,
        [
            None,
            None,
            Some(ErrorClass::Capacity),
            None,
            Some(ErrorClass::Permanent)
        ]
    );
    let attempts: Vec<Vec<String>> = cloud
        .calls(Op::Launch)
        .into_iter()
        .map(|c| c.items)
        .collect();
    assert_eq!(
        attempts,
        [
            vec!["tok-a", "tok-b", "tok-c", "tok-d", "tok-e"],
            vec!["tok-b", "tok-d"],
            vec!["tok-d"],
        ]
    );
    // Successes kept, never relaunched; one resource per successful agent.
    let started = cloud.started();
    assert_eq!(started.len(), 3);
    let ok_ids: HashSet<CloudId> = outcomes
        .iter()
        .filter_map(|o| o.result.clone().ok())
        .collect();
    assert_eq!(ok_ids.len(), 3);
    for (agent, outcome) in batch.iter().zip(&outcomes) {
        if let Ok(id) = &outcome.result {
            assert_eq!(started[&agent.client_token], *id);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn launch_retry_stops_at_max_attempts_with_the_last_error() {
    let cloud = TestCloud::new();
    cloud.script(|s| {
        s.launch.insert(
            "b".into(),
            (0..5)
                .map(|i| BackendError::transient(format!("500 #{i}")))
                .collect(),
        );
    });
    let backend = retry(&cloud);
    let outcomes = launch(&backend, &agents(&["a", "b"])).await;
    assert!(outcomes[0].result.is_ok());
    assert_eq!(
        outcomes[1].result.as_ref().unwrap_err().message(),
        "500 #2",
        "third and last attempt's error"
    );
    assert_eq!(cloud.calls(Op::Launch).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn terminate_retries_only_failed_ids() {
    let cloud = TestCloud::new();
    cloud.script(|s| {
        s.terminate
            .insert("i-2".into(), [BackendError::throttled("slow")].into());
        s.terminate
            .insert("i-3".into(), [BackendError::permanent("not ours")].into());
    });
    let backend = retry(&cloud);
    let outcomes = backend
        .terminate(&ids(&["i-1", "i-2", "i-3"]), "idle")
        .await;
    let got: Vec<(String, Option<ErrorClass>)> = outcomes
        .iter()
        .map(|o| (o.id.0.clone(), class_of(&o.result)))
        .collect();
    assert_eq!(
        got,
        [
            ("i-1".to_owned(), None),
            ("i-2".to_owned(), None),
            ("i-3".to_owned(), Some(ErrorClass::Permanent)),
        ]
    );
    let attempts: Vec<Vec<String>> = cloud
        .calls(Op::Terminate)
        .into_iter()
        .map(|c| c.items)
        .collect();
    assert_eq!(attempts, [vec!["i-1", "i-2", "i-3"], vec!["i-2"]]);
}

// ---------------------------------------------------------------------------
// Rate limiting.

fn limits(launch: BucketConfig, describe: BucketConfig) -> RateLimits {
    RateLimits {
        launch,
        describe,
        terminate: BucketConfig::new(100, 100.0, Cost::Batch),
    }
}

fn offsets(calls: &[Call], start: Instant) -> Vec<Duration> {
    calls.iter().map(|c| c.at - start).collect()
}

#[tokio::test(start_paused = true)]
async fn rate_limit_spaces_calls_after_the_burst() {
    let cloud = TestCloud::new();
    let backend = RateLimitBackend::new(
        cloud.clone(),
        limits(
            BucketConfig::new(1, 1.0, Cost::Call),
            BucketConfig::new(2, 1.0, Cost::Call),
        ),
    )
    .unwrap();
    let start = Instant::now();
    for _ in 0..5 {
        backend.describe(&ids(&["a"])).await.unwrap();
    }
    let secs = |s: u64| Duration::from_secs(s);
    assert_eq!(
        offsets(&cloud.calls(Op::Describe), start),
        [secs(0), secs(0), secs(1), secs(2), secs(3)]
    );
    // list_owned shares the describe bucket: it waits for the next token.
    backend.list_owned().await.unwrap();
    assert_eq!(offsets(&cloud.calls(Op::ListOwned), start), [secs(4)]);
    // A quiet period refills the bucket up to the burst, no more.
    tokio::time::sleep(secs(100)).await;
    let quiet = Instant::now();
    for _ in 0..3 {
        backend.describe(&[]).await.unwrap();
    }
    let last3: Vec<Duration> = offsets(&cloud.calls(Op::Describe)[5..], quiet);
    assert_eq!(last3, [secs(0), secs(0), secs(1)]);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_serves_concurrent_callers_in_turn() {
    let cloud = TestCloud::new();
    let backend = Arc::new(
        RateLimitBackend::new(
            cloud.clone(),
            limits(
                BucketConfig::new(1, 1.0, Cost::Call),
                BucketConfig::new(1, 2.0, Cost::Call),
            ),
        )
        .unwrap(),
    );
    let start = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let b = backend.clone();
            tokio::spawn(async move { b.describe(&[]).await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let millis = |m: u64| Duration::from_millis(m);
    assert_eq!(
        offsets(&cloud.calls(Op::Describe), start),
        [millis(0), millis(500), millis(1000), millis(1500)]
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limit_charges_batches_and_items() {
    let cloud = TestCloud::new();
    // max_launch_batch is 10: 25 agents are 3 cloud requests.
    let backend = RateLimitBackend::new(
        cloud.clone(),
        limits(
            BucketConfig::new(3, 1.0, Cost::Batch),
            BucketConfig::new(10, 2.0, Cost::Item),
        ),
    )
    .unwrap();
    let start = Instant::now();
    launch(&backend, &numbered("x", 25)).await;
    launch(&backend, &numbered("y", 10)).await;
    backend.describe(&ids(&["a"; 10])).await.unwrap();
    backend.describe(&ids(&["a"; 4])).await.unwrap();
    let secs = |s: u64| Duration::from_secs(s);
    assert_eq!(
        offsets(&cloud.calls(Op::Launch), start),
        [secs(0), secs(1)],
        "3 tokens spent, the next request waits one refill"
    );
    assert_eq!(
        offsets(&cloud.calls(Op::Describe), start)[1]
            - offsets(&cloud.calls(Op::Describe), start)[0],
        secs(2),
        "4 items at 2 per second"
    );
}

#[test]
fn rate_limit_config_errors_name_the_fields() {
    let bad = RateLimits {
        launch: BucketConfig::new(5, 0.0, Cost::Batch),
        describe: BucketConfig::new(0, 1.0, Cost::Batch),
        terminate: BucketConfig::new(1, f64::NAN, Cost::Item),
    };
    let problems = RateLimitBackend::new(TestCloud::new(), bad).unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("launch.per_second"), "{problems:?}");
    assert!(problems[1].contains("describe.burst"), "{problems:?}");
    assert!(problems[2].contains("terminate.per_second"), "{problems:?}");
    assert!(RateLimits::default().validate().is_ok());
    assert!(RateLimits::ecs_fargate().validate().is_ok());
    assert!(RateLimits::ec2().scaled(0.5).validate().is_ok());
    assert_eq!(RateLimits::ec2().scaled(0.1).launch.burst, 1);
}

// ---------------------------------------------------------------------------
// Fault injection.

fn chaos() -> FaultConfig {
    let faults = OpFaults {
        throttled: 0.1,
        transient: 0.1,
        capacity: 0.05,
        permanent: 0.02,
        timeout: 0.05,
        slow: 0.1,
        partial: 0.1,
        ..OpFaults::default()
    };
    FaultConfig::uniform(faults)
}

/// A fixed sequence of mixed calls; returns one line per outcome.
async fn run_sequence(backend: &dyn Backend) -> Vec<String> {
    let mut seen = Vec::new();
    for round in 0..60 {
        let batch = numbered(&format!("r{round}-"), 4);
        for o in launch(backend, &batch).await {
            seen.push(format!("launch {} {:?}", o.agent_name, class_of(&o.result)));
        }
        let r = backend.describe(&ids(&["a"])).await;
        seen.push(format!("describe {:?}", class_of(&r)));
        for o in backend.terminate(&ids(&["t1", "t2"]), "idle").await {
            seen.push(format!("terminate {} {:?}", o.id, class_of(&o.result)));
        }
        let r = backend.list_owned().await;
        seen.push(format!("list {:?}", class_of(&r)));
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn fault_injection_is_deterministic_for_a_seed() {
    let run = |seed| async move {
        let backend = FaultBackend::new(TestCloud::new(), chaos(), seed).unwrap();
        let start = Instant::now();
        let seen = run_sequence(&backend).await;
        (seen, backend.counts(), start.elapsed())
    };
    let (a, counts_a, took_a) = run(42).await;
    let (b, counts_b, took_b) = run(42).await;
    assert_eq!(a, b);
    assert_eq!(counts_a, counts_b);
    assert_eq!(took_a, took_b);
    let (c, counts_c, _) = run(43).await;
    assert_ne!(a, c);
    assert_ne!(counts_a, counts_c);
    for kind in [
        FaultKind::Throttled,
        FaultKind::Transient,
        FaultKind::Capacity,
        FaultKind::Timeout,
        FaultKind::Slow,
        FaultKind::PartialItem,
    ] {
        assert!(counts_a.total(kind) > 0, "{kind:?} never injected");
    }
}

#[tokio::test(start_paused = true)]
async fn fault_rates_follow_the_probabilities_and_counters_match() {
    let cloud = TestCloud::new();
    let config = FaultConfig {
        describe: OpFaults {
            throttled: 0.2,
            transient: 0.1,
            ..OpFaults::default()
        },
        ..FaultConfig::none()
    };
    let backend = FaultBackend::new(cloud.clone(), config, 1).unwrap();
    let mut observed: BTreeMap<Option<ErrorClass>, u64> = BTreeMap::new();
    for _ in 0..2000 {
        *observed
            .entry(class_of(&backend.describe(&[]).await))
            .or_default() += 1;
    }
    let counts = backend.counts();
    let throttled = counts.get(Op::Describe, FaultKind::Throttled);
    let transient = counts.get(Op::Describe, FaultKind::Transient);
    assert_eq!(observed.get(&Some(ErrorClass::Throttled)), Some(&throttled));
    assert_eq!(observed.get(&Some(ErrorClass::Transient)), Some(&transient));
    assert!(
        (320..=480).contains(&throttled),
        "{throttled} of 2000 at p=0.2"
    );
    assert!(
        (140..=260).contains(&transient),
        "{transient} of 2000 at p=0.1"
    );
    // Injected errors never reach the backend.
    assert_eq!(
        cloud.calls(Op::Describe).len() as u64,
        2000 - throttled - transient
    );
    assert_eq!(counts.total(FaultKind::Capacity), 0);
}

#[tokio::test(start_paused = true)]
async fn scripted_faults_fail_the_next_calls_then_pass_through() {
    let cloud = TestCloud::new();
    let backend = FaultBackend::new(cloud.clone(), FaultConfig::none(), 0).unwrap();
    backend.script(Op::Launch, 2, ScriptedFault::Error(ErrorClass::Throttled));
    backend.script(Op::Launch, 1, ScriptedFault::Error(ErrorClass::Capacity));
    assert_eq!(backend.scripted_remaining(Op::Launch), 3);
    let batch = agents(&["a", "b"]);
    for expected in [
        Some(ErrorClass::Throttled),
        Some(ErrorClass::Throttled),
        Some(ErrorClass::Capacity),
        None,
    ] {
        let outcomes = launch(&backend, &batch).await;
        assert_eq!(outcomes.len(), 2);
        for o in &outcomes {
            assert_eq!(class_of(&o.result), expected);
        }
    }
    assert_eq!(
        cloud.calls(Op::Launch).len(),
        1,
        "scripted errors don't reach the cloud"
    );
    assert_eq!(backend.scripted_remaining(Op::Launch), 0);
    let counts = backend.counts();
    assert_eq!(counts.get(Op::Launch, FaultKind::Throttled), 2);
    assert_eq!(counts.get(Op::Launch, FaultKind::Capacity), 1);
    assert_eq!(counts.get(Op::Describe, FaultKind::Throttled), 0);
}

#[tokio::test(start_paused = true)]
async fn timeouts_reach_the_cloud_and_retry_does_not_duplicate() {
    let cloud = TestCloud::new();
    let fault = Arc::new(FaultBackend::new(cloud.clone(), FaultConfig::none(), 0).unwrap());
    fault.script(
        Op::Launch,
        1,
        ScriptedFault::Timeout(Duration::from_secs(30)),
    );

    let start = Instant::now();
    let lost = launch(&*fault, &agents(&["a"])).await;
    assert_eq!(class_of(&lost[0].result), Some(ErrorClass::Transient));
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(cloud.started().len(), 1, "the launch reached the cloud");

    // The same launch through retry: the lost answer is retried with the same
    // token and the cloud returns the resource it already started.
    fault.script(
        Op::Launch,
        1,
        ScriptedFault::Timeout(Duration::from_secs(30)),
    );
    let backend = RetryBackend::with_seed(fault.clone(), RetryPolicy::default(), 1);
    let outcomes = launch(&backend, &agents(&["a", "b"])).await;
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    let started = cloud.started();
    assert_eq!(started.len(), 2, "a and b once each: {started:?}");
    assert_eq!(outcomes[0].result.as_ref().unwrap(), &started["tok-a"]);
    assert_eq!(outcomes[1].result.as_ref().unwrap(), &started["tok-b"]);
    assert_eq!(fault.counts().get(Op::Launch, FaultKind::Timeout), 2);
}

#[tokio::test(start_paused = true)]
async fn partial_failures_fail_some_agents_and_pass_the_rest_in_order() {
    let cloud = TestCloud::new();
    let config = FaultConfig {
        launch: OpFaults {
            partial: 0.5,
            ..OpFaults::default()
        },
        terminate: OpFaults {
            partial: 1.0,
            partial_class: ErrorClass::Transient,
            ..OpFaults::default()
        },
        ..FaultConfig::none()
    };
    let backend = FaultBackend::new(cloud.clone(), config, 5).unwrap();
    let batch = numbered("p", 40);
    let outcomes = launch(&backend, &batch).await;
    assert_eq!(outcomes.len(), 40);
    let mut passed = Vec::new();
    let mut failed = 0;
    for (agent, o) in batch.iter().zip(&outcomes) {
        assert_eq!(o.agent_name, agent.agent_name);
        match &o.result {
            Ok(id) => {
                assert_eq!(&cloud.started()[&agent.client_token], id);
                passed.push(agent.client_token.clone());
            }
            Err(e) => {
                assert_eq!(e.class(), ErrorClass::Capacity);
                failed += 1;
            }
        }
    }
    assert!((10..=30).contains(&failed), "{failed} of 40 at p=0.5");
    assert_eq!(
        cloud.calls(Op::Launch)[0].items,
        passed,
        "only the others reached the cloud"
    );
    assert_eq!(
        backend.counts().get(Op::Launch, FaultKind::PartialItem),
        failed
    );

    let outcomes = backend.terminate(&ids(&["i-1", "i-2"]), "idle").await;
    assert!(outcomes
        .iter()
        .all(|o| class_of(&o.result) == Some(ErrorClass::Transient)));
    assert!(
        cloud.calls(Op::Terminate).is_empty(),
        "nothing left to send"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_responses_add_tokio_delay() {
    let cloud = TestCloud::new();
    let config = FaultConfig::uniform(OpFaults {
        slow: 1.0,
        slow_delay: Duration::from_millis(2500),
        ..OpFaults::default()
    });
    let backend = FaultBackend::new(cloud.clone(), config, 0).unwrap();
    let start = Instant::now();
    backend.describe(&[]).await.unwrap();
    backend.list_owned().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(backend.counts().total(FaultKind::Slow), 2);
}

#[test]
fn fault_config_errors_name_the_fields() {
    let config = FaultConfig {
        launch: OpFaults {
            throttled: 1.5,
            ..OpFaults::default()
        },
        list_owned: OpFaults {
            transient: 0.6,
            permanent: 0.6,
            ..OpFaults::default()
        },
        ..FaultConfig::none()
    };
    let problems = FaultBackend::new(TestCloud::new(), config, 0).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("launch.throttled")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("list_owned:")),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
}

// ---------------------------------------------------------------------------
// Metrics and composition.

#[tokio::test(start_paused = true)]
async fn metrics_count_logical_calls_outside_retry_and_attempts_inside() {
    let cloud = TestCloud::new();
    let fault = Arc::new(FaultBackend::new(cloud.clone(), FaultConfig::none(), 0).unwrap());
    let inner_metrics = Arc::new(MetricsBackend::new(fault.clone()));
    let retried = Arc::new(RetryBackend::with_seed(
        inner_metrics.clone(),
        RetryPolicy::default(),
        3,
    ));
    let outer = MetricsBackend::new(retried.clone());

    fault.script(Op::Describe, 1, ScriptedFault::Error(ErrorClass::Transient));
    outer.describe(&[]).await.unwrap();
    fault.script(Op::Launch, 1, ScriptedFault::Error(ErrorClass::Permanent));
    launch(&outer, &agents(&["a", "b", "c"])).await;
    fault.script(
        Op::Terminate,
        3,
        ScriptedFault::Error(ErrorClass::Throttled),
    );
    outer.terminate(&ids(&["i-1"]), "idle").await;

    let logical = outer.snapshot();
    assert_eq!(logical.backend, "test");
    let d = logical.op(Op::Describe);
    assert_eq!((d.calls, d.ok, d.errors_total()), (1, 1, 0));
    let l = logical.op(Op::Launch);
    assert_eq!(
        (l.calls, l.ok, l.errors_of(ErrorClass::Permanent)),
        (1, 0, 3)
    );
    let t = logical.op(Op::Terminate);
    assert_eq!(
        (t.calls, t.ok, t.errors_of(ErrorClass::Throttled)),
        (1, 0, 1)
    );
    assert_eq!(logical.op(Op::ListOwned), Default::default());

    let attempts = inner_metrics.snapshot();
    let d = attempts.op(Op::Describe);
    assert_eq!(
        (d.calls, d.ok, d.errors_of(ErrorClass::Transient)),
        (2, 1, 1)
    );
    assert_eq!(attempts.op(Op::Launch).calls, 1, "permanent: no retry");
    let t = attempts.op(Op::Terminate);
    assert_eq!((t.calls, t.errors_of(ErrorClass::Throttled)), (3, 3));
    assert_eq!(retried.retries(), 1 + 2);
}

#[tokio::test(start_paused = true)]
async fn metrics_sum_latency_in_tokio_time() {
    let cloud = TestCloud::new();
    let config = FaultConfig {
        describe: OpFaults {
            slow: 1.0,
            slow_delay: Duration::from_millis(300),
            ..OpFaults::default()
        },
        ..FaultConfig::none()
    };
    let fault = Arc::new(FaultBackend::new(cloud, config, 0).unwrap());
    fault.script(
        Op::Describe,
        1,
        ScriptedFault::Timeout(Duration::from_secs(2)),
    );
    let metrics = MetricsBackend::new(fault);
    for _ in 0..4 {
        let _ = metrics.describe(&[]).await;
    }
    let d = metrics.snapshot().op(Op::Describe);
    assert_eq!(d.calls, 4);
    assert_eq!(d.latency_total, Duration::from_millis(4 * 300 + 2000));
    assert_eq!(d.latency_max, Duration::from_millis(2300));
    assert_eq!((d.ok, d.errors_of(ErrorClass::Transient)), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn composed_stack_under_chaos_never_duplicates_and_counts_every_outcome() {
    let cloud = TestCloud::new();
    let mut config = chaos();
    config.launch.partial_class = ErrorClass::Transient;
    let fault = Arc::new(FaultBackend::new(cloud.clone(), config, 2024).unwrap());
    let retried = Arc::new(RetryBackend::with_seed(
        fault.clone(),
        RetryPolicy::default(),
        2024,
    ));
    let stack = MetricsBackend::new(retried);

    let mut all = Vec::new();
    let mut ok = 0u64;
    let mut failed: BTreeMap<ErrorClass, u64> = BTreeMap::new();
    for round in 0..40 {
        let batch = numbered(&format!("c{round}-"), 5);
        let outcomes = launch(&stack, &batch).await;
        assert_eq!(outcomes.len(), batch.len());
        for (agent, o) in batch.iter().zip(&outcomes) {
            assert_eq!(o.agent_name, agent.agent_name);
            match &o.result {
                Ok(id) => {
                    ok += 1;
                    assert_eq!(&cloud.started()[&agent.client_token], id);
                }
                Err(e) => *failed.entry(e.class()).or_default() += 1,
            }
        }
        all.extend(batch);
    }
    // Every attempt carried an agent's own token; each token started at most one
    // resource, and distinct agents got distinct resources.
    let token_of: HashMap<&str, &str> = all
        .iter()
        .map(|a| (a.client_token.as_str(), a.agent_name.as_str()))
        .collect();
    for call in cloud.calls(Op::Launch) {
        for token in &call.items {
            assert!(
                token_of.contains_key(token.as_str()),
                "unknown token {token}"
            );
        }
    }
    let started = cloud.started();
    let distinct: HashSet<&CloudId> = started.values().collect();
    assert_eq!(distinct.len(), started.len());
    assert!(ok > 0 && ok as usize <= started.len());

    let snapshot = stack.snapshot().op(Op::Launch);
    assert_eq!(snapshot.calls, 40);
    assert_eq!(snapshot.ok, ok);
    assert_eq!(snapshot.errors, failed);
    assert!(fault.counts().total(FaultKind::Timeout) > 0);
}

#[tokio::test(start_paused = true)]
async fn secrets_never_reach_snapshots_errors_or_debug_output() {
    let cloud = TestCloud::new();
    let fault = Arc::new(FaultBackend::new(cloud, chaos(), 9).unwrap());
    let stack = MetricsBackend::new(Arc::new(RetryBackend::new(
        Arc::new(RateLimitBackend::new(fault.clone(), RateLimits::default()).unwrap()),
        RetryPolicy::default(),
    )));
    let mut texts = Vec::new();
    for round in 0..20 {
        for o in launch(&stack, &numbered(&format!("s{round}-"), 3)).await {
            texts.push(format!("{o:?}"));
            if let Err(e) = &o.result {
                texts.push(e.to_string());
            }
        }
    }
    texts.push(format!("{:?}", stack.snapshot()));
    texts.push(serde_json::to_string(&stack.snapshot()).unwrap());
    texts.push(format!("{:?}", fault.counts()));
    texts.push(format!("{stack:?}"));
    for text in texts {
        assert!(!text.contains(SECRET_PREFIX), "secret leaked: {text}");
    }
}
