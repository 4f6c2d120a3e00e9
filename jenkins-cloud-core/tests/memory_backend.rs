//! MemoryBackend specifics beyond conformance: timing, retention, capacity,
//! failure injection, tokens, counters and cost.

use std::time::{Duration, SystemTime};

use jenkins_cloud_core::backend::{
    AgentLaunch, AgentTransport, Backend, CloudId, CloudState, JenkinsEndpoint, LaunchBatch,
    LaunchOutcome, OwnerId,
};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::memory::{Latency, MemoryBackend, MemoryCloud, DEFAULT_EPOCH_SECS};
use jenkins_cloud_core::template::AgentTemplate;
use jenkins_cloud_core::{ErrorClass, Secret};
use tokio::time::sleep;

const S: fn(u64) -> Duration = Duration::from_secs;

fn owner(s: &str) -> OwnerId {
    OwnerId::new(s).unwrap()
}

fn template(name: &str, spec: serde_json::Value) -> AgentTemplate {
    let mut t = AgentTemplate::new(name, LabelSet::parse("linux"));
    t.spec = spec;
    t
}

fn agents(prefix: &str, n: usize) -> Vec<AgentLaunch> {
    (0..n)
        .map(|i| AgentLaunch {
            agent_name: format!("{prefix}-{i}"),
            secret: Secret::new("top-secret-value"),
            client_token: format!("{prefix}-token-{i}"),
        })
        .collect()
}

async fn launch(
    b: &MemoryBackend,
    t: &AgentTemplate,
    agents: &[AgentLaunch],
) -> Vec<LaunchOutcome> {
    let jenkins = JenkinsEndpoint {
        url: "http://j.invalid/".into(),
        transport: AgentTransport::WebSocket,
    };
    b.launch(LaunchBatch {
        template: t,
        jenkins: &jenkins,
        agents,
    })
    .await
}

async fn state(b: &MemoryBackend, id: &CloudId) -> Option<CloudState> {
    b.describe(std::slice::from_ref(id))
        .await
        .unwrap()
        .pop()
        .map(|i| i.state)
}

#[tokio::test(start_paused = true)]
async fn states_follow_start_and_stop_latency_then_retention() {
    let b = MemoryBackend::new(owner("ci")).with_stop_latency(S(10));
    sleep(S(5)).await;
    let id = launch(&b, &template("t", serde_json::json!({})), &agents("a", 1)).await[0]
        .result
        .clone()
        .unwrap();
    let inst = b
        .describe(std::slice::from_ref(&id))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        inst.launched_at,
        Some(SystemTime::UNIX_EPOCH + S(DEFAULT_EPOCH_SECS + 5))
    );
    assert_eq!(
        (inst.agent_name.as_str(), inst.template.as_str()),
        ("a-0", "t")
    );
    sleep(S(29)).await;
    assert_eq!(state(&b, &id).await, Some(CloudState::Pending));
    sleep(S(1)).await;
    assert_eq!(state(&b, &id).await, Some(CloudState::Running));
    sleep(S(10)).await;
    b.terminate(std::slice::from_ref(&id), "idle").await;
    sleep(S(9)).await;
    assert_eq!(state(&b, &id).await, Some(CloudState::Stopping));
    sleep(S(1)).await;
    assert_eq!(state(&b, &id).await, Some(CloudState::Terminated));
    assert_eq!(
        b.cloud().instances()[0].stop_reason.as_deref(),
        Some("idle")
    );
    sleep(S(3599)).await;
    assert_eq!(b.list_owned().await.unwrap().len(), 1, "kept for an hour");
    sleep(S(1)).await;
    assert!(b.list_owned().await.unwrap().is_empty());
    assert_eq!(state(&b, &id).await, None);
    assert_eq!(
        b.terminate(&[id], "again").await[0].result,
        Ok(()),
        "forgotten counts as gone"
    );
    let secs = b.instance_seconds();
    assert_eq!(
        (secs.pending, secs.running, secs.stopping),
        (S(30), S(10), S(10)),
        "kept after forgetting"
    );
}

#[tokio::test(start_paused = true)]
async fn start_latency_precedence_spec_then_template_then_default() {
    let b = MemoryBackend::new(owner("ci"))
        .with_start_latency(Latency::Fixed(S(50)))
        .with_template_start_latency("fast", Latency::Fixed(S(10)));
    let by_default = launch(&b, &template("t", serde_json::json!(null)), &agents("d", 1)).await;
    let by_template = launch(
        &b,
        &template("fast", serde_json::json!({})),
        &agents("f", 1),
    )
    .await;
    let by_spec = launch(
        &b,
        &template("fast", serde_json::json!({"start_latency_ms": 2000})),
        &agents("s", 1),
    )
    .await;
    let ids: Vec<CloudId> = [by_default, by_template, by_spec]
        .iter()
        .map(|o| o[0].result.clone().unwrap())
        .collect();
    async fn running(b: &MemoryBackend, ids: &[CloudId]) -> Vec<bool> {
        let mut v = Vec::new();
        for id in ids {
            v.push(state(b, id).await == Some(CloudState::Running));
        }
        v
    }
    sleep(S(2)).await;
    assert_eq!(running(&b, &ids).await, [false, false, true]);
    sleep(S(8)).await;
    assert_eq!(running(&b, &ids).await, [false, true, true]);
    sleep(S(40)).await;
    assert_eq!(running(&b, &ids).await, [true, true, true]);
}

#[tokio::test(start_paused = true)]
async fn uniform_latency_is_seeded_and_within_range() {
    async fn running_times(seed: u64) -> Vec<u64> {
        let b = MemoryBackend::new(owner("ci"))
            .with_seed(seed)
            .with_start_latency(Latency::Uniform {
                min: S(20),
                max: S(40),
            });
        let out = launch(&b, &template("t", serde_json::json!({})), &agents("a", 8)).await;
        let ids: Vec<CloudId> = out.into_iter().map(|o| o.result.unwrap()).collect();
        let mut at = vec![0; ids.len()];
        for second in 0..=41 {
            for (i, id) in ids.iter().enumerate() {
                if at[i] == 0 && state(&b, id).await == Some(CloudState::Running) {
                    at[i] = second;
                }
            }
            sleep(S(1)).await;
        }
        at
    }
    let a = running_times(3).await;
    assert!(a.iter().all(|s| (20..=40).contains(s)), "{a:?}");
    assert_eq!(a, running_times(3).await);
    assert_ne!(a, running_times(4).await);
}

#[tokio::test(start_paused = true)]
async fn injected_failures_capacity_and_rates_are_classified_and_counted() {
    let cloud = MemoryCloud::new();
    cloud.set_capacity_limit(Some(3));
    let b = MemoryBackend::on_cloud(cloud.clone(), owner("ci"));
    let t = template("t", serde_json::json!({}));
    b.fail_next_launches(1, ErrorClass::Throttled);
    let out = launch(&b, &t, &agents("a", 5)).await;
    let classes: Vec<Option<ErrorClass>> = out
        .iter()
        .map(|o| o.result.as_ref().err().map(|e| e.class()))
        .collect();
    assert_eq!(
        classes,
        [
            Some(ErrorClass::Throttled),
            None,
            None,
            None,
            Some(ErrorClass::Capacity)
        ]
    );
    assert_eq!(cloud.active_count(), 3);
    // A second owner on the same cloud hits the same limit until capacity frees.
    let other = MemoryBackend::on_cloud(cloud.clone(), owner("other"));
    assert_eq!(
        launch(&other, &t, &agents("o", 1)).await[0]
            .result
            .as_ref()
            .unwrap_err()
            .class(),
        ErrorClass::Capacity
    );
    b.terminate(&[out[1].result.clone().unwrap()], "make room")
        .await;
    assert!(
        launch(&other, &t, &agents("o", 1)).await[0].result.is_ok(),
        "retry with the same token succeeds"
    );
    let stats = b.stats();
    assert_eq!(stats.launched, 3);
    assert_eq!(stats.launch_failures.get(&ErrorClass::Throttled), Some(&1));
    assert_eq!(stats.launch_failures.get(&ErrorClass::Capacity), Some(&1));

    let flaky = MemoryBackend::new(owner("ci"))
        .with_seed(9)
        .with_failure_rate(0.5, ErrorClass::Transient);
    let out = launch(&flaky, &t, &agents("f", 40)).await;
    let failed = out.iter().filter(|o| o.result.is_err()).count();
    assert!(
        (8..=32).contains(&failed),
        "{failed} of 40 failed at rate 0.5"
    );
    assert!(out
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .all(|e| e.class() == ErrorClass::Transient));
}

#[tokio::test(start_paused = true)]
async fn client_tokens_are_idempotent_per_owner_and_checked() {
    let cloud = MemoryCloud::new();
    let b = MemoryBackend::on_cloud(cloud.clone(), owner("ci"));
    let t = template("t", serde_json::json!({}));
    let a = agents("a", 1);
    let first = launch(&b, &t, &a).await[0].result.clone().unwrap();
    assert_eq!(launch(&b, &t, &a).await[0].result, Ok(first.clone()));
    assert_eq!(b.stats().idempotent_replays, 1);
    // Same token from another owner is another resource.
    let other = MemoryBackend::on_cloud(cloud, owner("other"));
    assert_ne!(
        launch(&other, &t, &a).await[0].result.clone().unwrap(),
        first
    );
    // Same token, another agent name: refused.
    let mut reused = agents("b", 1);
    reused[0].client_token = a[0].client_token.clone();
    let err = launch(&b, &t, &reused).await[0].result.clone().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.message().starts_with("agents[0].client_token"), "{err}");
    let mut bad = agents("c", 2);
    bad[1].client_token = "x".repeat(65);
    let out = launch(&b, &t, &bad).await;
    assert!(out[0].result.is_ok());
    assert!(out[1]
        .result
        .as_ref()
        .unwrap_err()
        .message()
        .starts_with("agents[1].client_token: must be 1-64"));
}

#[tokio::test(start_paused = true)]
async fn invalid_specs_fail_every_agent_naming_the_fields() {
    let b = MemoryBackend::new(owner("ci"));
    let t = template(
        "bad",
        serde_json::json!({"image": "x", "stop_latency_ms": 1.5}),
    );
    let problems = b.validate_template(&t).unwrap_err();
    assert_eq!(problems.len(), 2);
    assert!(
        problems[0].starts_with("spec.image: unknown key")
            && problems[1].starts_with("spec.stop_latency_ms")
    );
    let out = launch(&b, &t, &agents("a", 2)).await;
    for o in &out {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(
            e.message()
                .starts_with("invalid template `bad`: spec.image"),
            "{e}"
        );
    }
    assert_eq!(b.stats().launched, 0);
    assert_eq!(
        b.stats().launch_requests,
        0,
        "no cloud request for an invalid template"
    );
}

#[tokio::test(start_paused = true)]
async fn interrupts_fail_only_active_own_instances() {
    let cloud = MemoryCloud::new();
    let b = MemoryBackend::on_cloud(cloud.clone(), owner("ci"));
    let other = MemoryBackend::on_cloud(cloud.clone(), owner("other"));
    let out = launch(&b, &template("t", serde_json::json!({})), &agents("a", 2)).await;
    let (id, stopped) = (
        out[0].result.clone().unwrap(),
        out[1].result.clone().unwrap(),
    );
    sleep(S(60)).await;
    assert!(!other.interrupt(&id, "not yours"));
    assert!(b.interrupt(&id, "Spot interruption"));
    assert!(!b.interrupt(&id, "twice"));
    assert_eq!(
        state(&b, &id).await,
        Some(CloudState::Failed("Spot interruption".into()))
    );
    b.terminate(std::slice::from_ref(&stopped), "idle").await;
    assert!(!cloud.interrupt(&stopped, "too late"));
    assert_eq!(b.terminate(&[id], "cleanup").await[0].result, Ok(()));
    let secs = b.instance_seconds();
    assert_eq!(secs.running, S(60), "30 s running for each instance");
    assert_eq!(secs.pending, S(60));
}

#[tokio::test(start_paused = true)]
async fn counters_and_batch_splitting() {
    let b = MemoryBackend::new(owner("ci"));
    let out = launch(&b, &template("t", serde_json::json!({})), &agents("a", 23)).await;
    let ids: Vec<CloudId> = out.into_iter().map(|o| o.result.unwrap()).collect();
    b.describe(&ids).await.unwrap();
    b.terminate(&ids[..3], "x").await;
    b.terminate(&ids[..3], "x").await;
    b.list_owned().await.unwrap();
    let s = b.stats();
    assert_eq!((s.launch_calls, s.launch_requests, s.launched), (1, 3, 23));
    assert_eq!(
        (
            s.describe_calls,
            s.terminate_calls,
            s.list_calls,
            s.terminated
        ),
        (1, 2, 1, 3)
    );
    let foreign = b
        .terminate(&[CloudId::from("i-0123456789abcdef0")], "x")
        .await;
    assert_eq!(
        foreign[0].result.as_ref().unwrap_err().class(),
        ErrorClass::Permanent
    );
    assert!(!format!("{b:?}").contains("top-secret-value"));
    assert!(!format!("{:?}", b.cloud().instances()).contains("top-secret-value"));
}
