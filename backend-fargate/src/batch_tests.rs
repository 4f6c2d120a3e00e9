//! Unit tests of batched launches (`spec.launch_batching`) with a mocked ECS:
//! chunking, binding tasks to agents, `failures[]`, spot fallback and
//! TagResource failures, which moto cannot produce.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ecs::operation::run_task::builders::RunTaskInputBuilder;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::operation::stop_task::StopTaskOutput;
use aws_sdk_ecs::types::{Failure, LaunchType};
use jenkins_cloud_core::backend::{AgentLaunch, AgentTransport};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::{ErrorClass, Secret};
use serde_json::json;

use super::*;
use crate::api::{ApiError, MockEcsApi};
use crate::launch::{chunk_token, fallback_token};
use crate::rate::Backoff;

const SECRET: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";

fn backend(mock: MockEcsApi) -> FargateBackend {
    let mut config = FargateConfig::new(OwnerId::new("ci-prod").unwrap(), vec!["ci".into()]);
    config.backoff = Backoff {
        retries: 2,
        base: Duration::from_millis(10),
        max: Duration::from_millis(50),
    };
    config.tag_rate_per_sec = 1000.0;
    config.tag_burst = 1000;
    FargateBackend::with_api(config, Arc::new(mock)).unwrap()
}

/// External task definition (no RegisterTaskDefinition calls), spot first.
fn batched_template(spot: bool) -> AgentTemplate {
    let mut spec = json!({
        "cluster": "ci", "task_definition": "agents:3", "container_name": "jnlp",
        "subnets": ["subnet-0a"], "security_groups": ["sg-0a"],
        "agent_secret": "fetched_by_agent", "launch_batching": true,
    });
    if spot {
        spec["capacity_providers"] = json!([
            {"provider": "FARGATE_SPOT", "weight": 3}, {"provider": "FARGATE", "weight": 1}
        ]);
    }
    let mut t = AgentTemplate::new("linux", LabelSet::parse("linux"));
    t.spec = spec;
    t
}

fn agents(n: usize) -> Vec<AgentLaunch> {
    (0..n)
        .map(|i| AgentLaunch {
            agent_name: format!("agent-{i}"),
            secret: Secret::new(SECRET),
            client_token: format!("tok-{i}"),
        })
        .collect()
}

fn endpoint() -> JenkinsEndpoint {
    JenkinsEndpoint {
        url: "https://jenkins.example/".into(),
        transport: AgentTransport::WebSocket,
    }
}

fn arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/ci/{id}")
}

/// `count` tasks named after the call's token, in reverse order (binding must
/// not depend on the order ECS answers in).
fn started(input: &RunTaskInputBuilder, count: usize) -> Vec<Task> {
    let token = input.get_client_token().clone().unwrap();
    (0..count)
        .rev()
        .map(|k| {
            Task::builder()
                .task_arn(arn(&format!("{}{k}", &token[..8])))
                .build()
        })
        .collect()
}

fn env_names(input: &RunTaskInputBuilder) -> Vec<String> {
    input
        .get_overrides()
        .as_ref()
        .unwrap()
        .container_overrides()[0]
        .environment()
        .iter()
        .filter_map(|kv| kv.name().map(str::to_owned))
        .collect()
}

fn tag_keys(input: &RunTaskInputBuilder) -> Vec<String> {
    input
        .get_tags()
        .as_ref()
        .unwrap()
        .iter()
        .filter_map(|t| t.key().map(str::to_owned))
        .collect()
}

async fn launch(
    b: &FargateBackend,
    t: &AgentTemplate,
    agents: &[AgentLaunch],
) -> Vec<LaunchOutcome> {
    b.launch(LaunchBatch {
        template: t,
        jenkins: &endpoint(),
        agents,
    })
    .await
}

#[tokio::test]
async fn twenty_three_agents_take_three_run_task_calls_and_each_task_is_tagged_with_its_agent() {
    let agents = agents(23);
    let expected_tokens: BTreeSet<String> = agents.chunks(10).map(chunk_token).collect();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let tagged = Arc::new(Mutex::new(BTreeMap::new()));
    let mut mock = MockEcsApi::new();
    let seen = calls.clone();
    mock.expect_run_task().times(3).returning(move |input| {
        let count = input.get_count().unwrap() as usize;
        let env = env_names(&input);
        assert!(env.contains(&"JENKINS_URL".to_owned()), "{env:?}");
        assert!(!env.contains(&"JENKINS_AGENT_NAME".to_owned()), "{env:?}");
        assert!(!env.contains(&"JENKINS_SECRET".to_owned()), "{env:?}");
        let keys = tag_keys(&input);
        assert!(
            keys.contains(&tags::OWNER.to_owned()) && keys.contains(&tags::TEMPLATE.to_owned())
        );
        assert!(
            !keys.contains(&tags::AGENT.to_owned()),
            "no agent tag on a shared call"
        );
        assert_eq!(input.get_started_by().as_deref(), Some("ci-prod"));
        assert_eq!(input.get_launch_type(), &Some(LaunchType::Fargate));
        let token = input.get_client_token().clone().unwrap();
        assert_eq!(token.len(), 64);
        seen.lock().unwrap().push((count, token));
        Ok(RunTaskOutput::builder()
            .set_tasks(Some(started(&input, count)))
            .build())
    });
    let tags_seen = tagged.clone();
    mock.expect_tag_resource()
        .times(23)
        .returning(move |input| {
            let arn = input.get_resource_arn().clone().unwrap();
            let tags = input.get_tags().clone().unwrap();
            assert_eq!(tags.len(), 1);
            assert_eq!(tags[0].key(), Some(tags::AGENT));
            let previous = tags_seen
                .lock()
                .unwrap()
                .insert(arn, tags[0].value().unwrap().to_owned());
            assert!(previous.is_none(), "each task is tagged once");
            Ok(())
        });
    let b = backend(mock);
    let out = launch(&b, &batched_template(false), &agents).await;

    let mut counts: Vec<usize> = calls.lock().unwrap().iter().map(|(c, _)| *c).collect();
    counts.sort();
    assert_eq!(counts, [3, 10, 10]);
    let tokens: BTreeSet<String> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(tokens, expected_tokens, "one stable token per chunk");

    let tagged = tagged.lock().unwrap();
    assert_eq!(out.len(), 23);
    let mut arns = BTreeSet::new();
    for (o, a) in out.iter().zip(&agents) {
        assert_eq!(o.agent_name, a.agent_name);
        let id = o.result.clone().expect("launched");
        assert_eq!(
            tagged.get(&id.0),
            Some(&a.agent_name),
            "the task carries its agent's tag"
        );
        assert!(arns.insert(id.0), "distinct tasks");
    }
}

#[tokio::test]
async fn failures_and_missing_tasks_become_classified_errors_and_extra_tasks_are_stopped() {
    let mut mock = MockEcsApi::new();
    let mut call = 0;
    mock.expect_run_task().times(2).returning(move |input| {
        call += 1;
        let count = input.get_count().unwrap() as usize;
        Ok(if call == 1 {
            // Chunk of 10: 7 tasks, 2 failures, one left unexplained.
            assert_eq!(count, 10);
            RunTaskOutput::builder()
                .set_tasks(Some(started(&input, 7)))
                .failures(Failure::builder().reason("RESOURCE:MEMORY").build())
                .failures(Failure::builder().reason("AGENT").build())
                .build()
        } else {
            // Chunk of 2: one task too many.
            assert_eq!(count, 2);
            RunTaskOutput::builder()
                .set_tasks(Some(started(&input, 3)))
                .build()
        })
    });
    mock.expect_tag_resource().times(9).returning(|_| Ok(()));
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let s = stopped.clone();
    mock.expect_stop_task().times(1).returning(move |input| {
        assert!(input
            .get_reason()
            .as_deref()
            .unwrap()
            .starts_with(STOP_REASON_PREFIX));
        s.lock().unwrap().push(input.get_task().clone().unwrap());
        Ok(StopTaskOutput::builder().build())
    });
    let b = backend(mock);
    let agents = agents(12);
    let out = launch(&b, &batched_template(false), &agents).await;
    let errors: Vec<(usize, ErrorClass)> = out
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.result.as_ref().err().map(|e| (i, e.class())))
        .collect();
    let (chunk_a, chunk_b) = (chunk_token(&agents[..10]), chunk_token(&agents[10..]));
    // The first 7 agents of chunk A are bound; 7 and 8 get the failures in order; 9 none.
    assert_eq!(
        errors,
        [
            (7, ErrorClass::Capacity),
            (8, ErrorClass::Transient),
            (9, ErrorClass::Transient)
        ]
    );
    assert!(
        out[9]
            .result
            .as_ref()
            .unwrap_err()
            .message()
            .contains("started 7 of 10"),
        "{:?}",
        out[9].result
    );
    // Binding follows the sorted ARNs, so replays of the same call bind the same way.
    assert_eq!(
        out[0].result.clone().unwrap().0,
        arn(&format!("{}0", &chunk_a[..8]))
    );
    assert_eq!(
        out[11].result.clone().unwrap().0,
        arn(&format!("{}1", &chunk_b[..8]))
    );
    assert_eq!(
        *stopped.lock().unwrap(),
        [arn(&format!("{}2", &chunk_b[..8]))]
    );
}

#[tokio::test]
async fn a_failed_tag_stops_that_task_at_once_and_fails_only_its_agent() {
    let mut mock = MockEcsApi::new();
    mock.expect_run_task().times(1).returning(|input| {
        Ok(RunTaskOutput::builder()
            .set_tasks(Some(started(&input, 3)))
            .build())
    });
    let denied = Arc::new(Mutex::new(None::<String>));
    let d = denied.clone();
    mock.expect_tag_resource().times(3).returning(move |input| {
        let tags = input.get_tags().clone().unwrap();
        if tags[0].value() == Some("agent-1") {
            *d.lock().unwrap() = input.get_resource_arn().clone();
            return Err(ApiError::service(
                "TagResource",
                "AccessDeniedException",
                "User is not authorized to perform ecs:TagResource",
            ));
        }
        Ok(())
    });
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let s = stopped.clone();
    mock.expect_stop_task().times(1).returning(move |input| {
        s.lock().unwrap().push(input.get_task().clone().unwrap());
        Ok(StopTaskOutput::builder().build())
    });
    let b = backend(mock);
    let out = launch(&b, &batched_template(false), &agents(3)).await;
    assert!(out[0].result.is_ok() && out[2].result.is_ok(), "{out:?}");
    let err = out[1].result.clone().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.message().contains("was stopped"), "{}", err.message());
    assert!(err.message().contains("TagResource"), "{}", err.message());
    assert!(!err.message().contains(SECRET));
    let denied = denied.lock().unwrap().clone().unwrap();
    assert_eq!(*stopped.lock().unwrap(), [denied]);
}

#[tokio::test]
async fn spot_capacity_failures_retry_only_the_missing_tasks_on_fargate() {
    let agents = agents(3);
    let token = chunk_token(&agents);
    let mut mock = MockEcsApi::new();
    let expected = token.clone();
    mock.expect_run_task().times(2).returning(move |input| {
        let count = input.get_count().unwrap() as usize;
        let call_token = input.get_client_token().clone().unwrap();
        Ok(if input.get_launch_type().is_none() {
            assert_eq!(
                input
                    .get_capacity_provider_strategy()
                    .as_ref()
                    .unwrap()
                    .len(),
                2
            );
            assert_eq!((count, call_token.as_str()), (3, expected.as_str()));
            RunTaskOutput::builder()
                .set_tasks(Some(started(&input, 1)))
                .failures(
                    Failure::builder()
                        .reason("Capacity is unavailable at this time")
                        .build(),
                )
                .failures(
                    Failure::builder()
                        .reason("Capacity is unavailable at this time")
                        .build(),
                )
                .build()
        } else {
            assert_eq!(input.get_launch_type(), &Some(LaunchType::Fargate));
            assert_eq!((count, call_token), (2, fallback_token(&expected)));
            RunTaskOutput::builder()
                .set_tasks(Some(started(&input, 2)))
                .build()
        })
    });
    mock.expect_tag_resource().times(3).returning(|_| Ok(()));
    let b = backend(mock);
    let out = launch(&b, &batched_template(true), &agents).await;
    let ids: BTreeSet<String> = out
        .iter()
        .map(|o| o.result.clone().expect("launched").0)
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(out[0].result.clone().unwrap().0.contains(&token[..8]));
    assert!(out[1]
        .result
        .clone()
        .unwrap()
        .0
        .contains(&fallback_token(&token)[..8]));
}

#[tokio::test]
async fn batching_with_the_secret_in_the_environment_is_refused_before_any_call() {
    let mock = MockEcsApi::new();
    let b = backend(mock);
    let mut t = batched_template(false);
    t.spec["agent_secret"] = json!("environment");
    let problems = b.validate_template(&t).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("spec.launch_batching:")),
        "{problems:?}"
    );
    let out = launch(&b, &t, &agents(2)).await;
    for o in &out {
        let err = o.result.clone().unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.message().contains("spec.launch_batching"),
            "{}",
            err.message()
        );
    }
}

#[tokio::test]
async fn a_throttled_run_task_is_retried_with_the_same_chunk_token() {
    let mut mock = MockEcsApi::new();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let t2 = tokens.clone();
    mock.expect_run_task().times(2).returning(move |input| {
        let mut seen = t2.lock().unwrap();
        seen.push(input.get_client_token().clone().unwrap());
        if seen.len() == 1 {
            return Err(ApiError::service(
                "RunTask",
                "ThrottlingException",
                "Rate exceeded",
            ));
        }
        Ok(RunTaskOutput::builder()
            .set_tasks(Some(started(&input, 2)))
            .build())
    });
    mock.expect_tag_resource().times(2).returning(|_| Ok(()));
    let b = backend(mock);
    let out = launch(&b, &batched_template(false), &agents(2)).await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    let tokens = tokens.lock().unwrap();
    assert_eq!(tokens[0], tokens[1], "idempotent retry");
}
