//! Unit tests with a mocked ECS: what moto cannot produce (failures[],
//! throttling, spot capacity errors) and exact call counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::run_task::builders::RunTaskInputBuilder;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::operation::stop_task::StopTaskOutput;
use aws_sdk_ecs::types::{Failure, LaunchType, Tag, TaskDefinition, TaskDefinitionStatus};
use jenkins_cloud_core::backend::{tags, AgentLaunch, AgentTransport, JenkinsEndpoint};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::{ErrorClass, Secret};
use serde_json::json;

use super::*;
use crate::api::MockEcsApi;
use crate::rate::Backoff;
use crate::taskdef::{content_hash, family, HASH_TAG};

const SECRET: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";

fn owner() -> OwnerId {
    OwnerId::new("ci-prod").unwrap()
}

fn backend(mock: MockEcsApi) -> FargateBackend {
    let mut config = FargateConfig::new(owner(), vec!["ci".into()]);
    config.backoff = Backoff {
        retries: 3,
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };
    FargateBackend::with_api(config, Arc::new(mock)).unwrap()
}

fn template(spec: serde_json::Value) -> AgentTemplate {
    let mut t = AgentTemplate::new("linux", LabelSet::parse("linux"));
    t.spec = spec;
    t
}

fn own_spec() -> serde_json::Value {
    json!({"cluster": "ci", "cpu": 1024, "memory": 2048, "subnets": ["subnet-0a"], "security_groups": ["sg-0a"]})
}

fn external_spec() -> serde_json::Value {
    json!({
        "cluster": "ci", "task_definition": "agents:3", "container_name": "jnlp",
        "subnets": ["subnet-0a"], "security_groups": ["sg-0a"],
        "capacity_providers": [{"provider": "FARGATE_SPOT", "weight": 3}, {"provider": "FARGATE", "weight": 1}],
    })
}

fn agents(names: &[&str]) -> Vec<AgentLaunch> {
    names
        .iter()
        .map(|n| AgentLaunch {
            agent_name: (*n).into(),
            secret: Secret::new(SECRET),
            client_token: format!("tok-{n}"),
        })
        .collect()
}

fn endpoint() -> JenkinsEndpoint {
    JenkinsEndpoint {
        url: "https://jenkins.example/".into(),
        transport: AgentTransport::WebSocket,
    }
}

fn env_of<'a>(input: &'a RunTaskInputBuilder, name: &str) -> Option<&'a str> {
    input.get_overrides().as_ref()?.container_overrides()[0]
        .environment()
        .iter()
        .find(|kv| kv.name() == Some(name))
        .and_then(|kv| kv.value())
}

fn arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/ci/{id}")
}

fn started(id: &str) -> RunTaskOutput {
    RunTaskOutput::builder()
        .tasks(Task::builder().task_arn(arn(id)).build())
        .build()
}

fn failed(reason: &str) -> RunTaskOutput {
    RunTaskOutput::builder()
        .failures(Failure::builder().reason(reason).build())
        .build()
}

#[tokio::test]
async fn spot_capacity_errors_fall_back_to_fargate_and_failures_are_classified() {
    let mut mock = MockEcsApi::new();
    mock.expect_run_task().times(5).returning(|input| {
        let agent = env_of(&input, "JENKINS_AGENT_NAME").unwrap().to_owned();
        let spot = input.get_launch_type().is_none();
        assert_eq!(input.get_count(), &Some(1));
        assert_eq!(input.get_started_by().as_deref(), Some("ci-prod"));
        assert_eq!(env_of(&input, "JENKINS_WEB_SOCKET"), Some("true"));
        assert_eq!(env_of(&input, "JENKINS_SECRET"), Some(SECRET));
        let token = input.get_client_token().clone().unwrap();
        if spot {
            assert_eq!(input.get_capacity_provider_strategy().as_ref().unwrap().len(), 2);
            assert_eq!(token, format!("tok-{agent}"));
        } else {
            assert_eq!(input.get_launch_type(), &Some(LaunchType::Fargate));
            assert_ne!(token, format!("tok-{agent}"), "the fallback is a new request");
            assert_eq!(token.len(), 64);
        }
        Ok(match (agent.as_str(), spot) {
            ("a", true) => failed("Capacity is unavailable at this time. Please try again later or in a different availability zone"),
            ("a", false) => started("task-a"),
            ("b", _) => failed("RESOURCE:ENI"),
            ("c", true) => started("task-c"),
            other => panic!("unexpected call {other:?}"),
        })
    });
    let b = backend(mock);
    let t = template(external_spec());
    let agents = agents(&["a", "b", "c"]);
    let out = b
        .launch(LaunchBatch {
            template: &t,
            jenkins: &endpoint(),
            agents: &agents,
        })
        .await;
    let names: Vec<_> = out.iter().map(|o| o.agent_name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(out[0].result.as_ref().unwrap().0, arn("task-a"));
    let err = out[1].result.as_ref().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Capacity);
    assert!(err.message().contains("RESOURCE:ENI"), "{err}");
    assert_eq!(out[2].result.as_ref().unwrap().0, arn("task-c"));
    assert!(
        !format!("{out:?}").contains(SECRET),
        "secrets never reach Debug output"
    );
}

#[tokio::test]
async fn api_errors_are_classified_per_agent() {
    let mut mock = MockEcsApi::new();
    mock.expect_run_task().times(2).returning(|input| match env_of(&input, "JENKINS_AGENT_NAME") {
        Some("bad") => Err(ApiError::service(
            "RunTask",
            "InvalidParameterException",
            "Error retrieving subnet information for [subnet-0a]: The subnet ID 'subnet-0a' does not exist",
        )),
        _ => Ok(failed("AGENT")),
    });
    let b = backend(mock);
    let mut spec = external_spec();
    spec["capacity_providers"] = json!([]);
    let t = template(spec);
    let agents = agents(&["bad", "flaky"]);
    let out = b
        .launch(LaunchBatch {
            template: &t,
            jenkins: &endpoint(),
            agents: &agents,
        })
        .await;
    assert_eq!(
        out[0].result.as_ref().unwrap_err().class(),
        ErrorClass::Permanent
    );
    assert!(out[0]
        .result
        .as_ref()
        .unwrap_err()
        .message()
        .contains("subnet-0a"));
    assert_eq!(
        out[1].result.as_ref().unwrap_err().class(),
        ErrorClass::Transient
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_run_task_backs_off_and_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let mut mock = MockEcsApi::new();
    mock.expect_run_task().times(3).returning(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(ApiError::service(
                "RunTask",
                "ThrottlingException",
                "Rate exceeded",
            ))
        } else {
            Ok(started("t1"))
        }
    });
    let b = backend(mock);
    let t = template(external_spec());
    let agents = agents(&["a"]);
    let out = b
        .launch(LaunchBatch {
            template: &t,
            jenkins: &endpoint(),
            agents: &agents,
        })
        .await;
    assert_eq!(out[0].result.as_ref().unwrap().0, arn("t1"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn persistent_throttling_is_reported_as_throttled() {
    let mut mock = MockEcsApi::new();
    mock.expect_run_task().times(4).returning(|_| {
        Err(ApiError::service(
            "RunTask",
            "ThrottlingException",
            "Rate exceeded",
        ))
    });
    let b = backend(mock);
    let t = template(external_spec());
    let agents = agents(&["a"]);
    let out = b
        .launch(LaunchBatch {
            template: &t,
            jenkins: &endpoint(),
            agents: &agents,
        })
        .await;
    assert_eq!(
        out[0].result.as_ref().unwrap_err().class(),
        ErrorClass::Throttled
    );
}

#[tokio::test]
async fn an_invalid_template_fails_every_agent_before_any_call() {
    // No expectations: any ECS call panics the mock.
    let b = backend(MockEcsApi::new());
    let mut spec = own_spec();
    spec["memory"] = json!(1000);
    let t = template(spec);
    let agents = agents(&["a", "b"]);
    let out = b
        .launch(LaunchBatch {
            template: &t,
            jenkins: &endpoint(),
            agents: &agents,
        })
        .await;
    assert_eq!(out.len(), 2);
    for o in &out {
        let err = o.result.as_ref().unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(err.message().contains("spec.memory"), "{err}");
    }
    let mut other_cluster = own_spec();
    other_cluster["cluster"] = json!("elsewhere");
    let problems = b.validate_template(&template(other_cluster)).unwrap_err();
    assert!(
        problems[0].starts_with("spec.cluster: `elsewhere` is not one of"),
        "{problems:?}"
    );
}

fn td_out(arn: &str, hash: &str, owner: &str) -> DescribeTaskDefinitionOutput {
    DescribeTaskDefinitionOutput::builder()
        .task_definition(
            TaskDefinition::builder()
                .task_definition_arn(arn)
                .status(TaskDefinitionStatus::Active)
                .build(),
        )
        .tags(Tag::builder().key(tags::OWNER).value(owner).build())
        .tags(Tag::builder().key(HASH_TAG).value(hash).build())
        .build()
}

#[tokio::test]
async fn a_matching_task_definition_is_reused_without_registering() {
    let spec = FargateSpec::from_value(&own_spec()).unwrap();
    let fam = family("jenkins-cloud", &owner(), "linux");
    let hash = content_hash(&fam, &spec);
    let current = format!("arn:aws:ecs:us-east-1:1:task-definition/{fam}:4");
    let mut mock = MockEcsApi::new();
    let (h, c) = (hash.clone(), current.clone());
    mock.expect_describe_task_definition()
        .withf(move |i| i.get_task_definition().as_deref() == Some(fam.as_str()))
        .times(1)
        .returning(move |_| Ok(td_out(&c, &h, "ci-prod")));
    mock.expect_list_task_definitions()
        .times(1)
        .returning(|_| Ok(ListTaskDefinitionsOutput::builder().build()));
    mock.expect_register_task_definition().never();
    let b = backend(mock);
    let t = template(own_spec());
    assert_eq!(b.task_definition_for(&t).await.unwrap(), current);
    // Cached: no further calls (the mock's `times(1)` would fail otherwise).
    assert_eq!(b.task_definition_for(&t).await.unwrap(), current);
}

#[tokio::test]
async fn a_changed_template_registers_once_and_deregisters_our_stale_revisions() {
    let fam = family("jenkins-cloud", &owner(), "linux");
    let td = |rev: u32| format!("arn:aws:ecs:us-east-1:1:task-definition/{fam}:{rev}");
    let (old, foreign, new, other_family) = (
        td(4),
        td(2),
        td(5),
        format!("arn:aws:ecs:us-east-1:1:task-definition/{fam}-big:1"),
    );
    let mut mock = MockEcsApi::new();
    let (o, f, n) = (old.clone(), foreign.clone(), new.clone());
    let fam2 = fam.clone();
    mock.expect_describe_task_definition().returning(move |i| {
        let which = i.get_task_definition().clone().unwrap();
        Ok(if which == fam2 || which == o {
            td_out(&o, "old-hash", "ci-prod")
        } else if which == f {
            td_out(&f, "x", "someone-else")
        } else {
            panic!("describe of {which}")
        })
    });
    let registered = Arc::new(AtomicUsize::new(0));
    let r = registered.clone();
    mock.expect_register_task_definition()
        .returning(move |input| {
            r.fetch_add(1, Ordering::SeqCst);
            assert_eq!(input.get_cpu().as_deref(), Some("1024"));
            assert!(input
                .get_tags()
                .as_ref()
                .unwrap()
                .iter()
                .any(|t| t.key() == Some(HASH_TAG)));
            let c = &input.get_container_definitions().as_ref().unwrap()[0];
            assert_eq!(c.memory(), Some(2048), "containers carry memory");
            Ok(RegisterTaskDefinitionOutput::builder()
                .task_definition(TaskDefinition::builder().task_definition_arn(&n).build())
                .build())
        });
    let (o, f, n, x) = (
        old.clone(),
        foreign.clone(),
        new.clone(),
        other_family.clone(),
    );
    mock.expect_list_task_definitions()
        .times(1)
        .returning(move |_| {
            Ok(ListTaskDefinitionsOutput::builder()
                .task_definition_arns(&o)
                .task_definition_arns(&f)
                .task_definition_arns(&n)
                .task_definition_arns(&x)
                .build())
        });
    let o = old.clone();
    mock.expect_deregister_task_definition()
        .withf(move |i| i.get_task_definition().as_deref() == Some(o.as_str()))
        .times(1)
        .returning(|_| Ok(()));
    let b = backend(mock);
    assert_eq!(
        b.task_definition_for(&template(own_spec())).await.unwrap(),
        new
    );
    assert_eq!(registered.load(Ordering::SeqCst), 1);
}

fn task(id: &str, owner: &str, last: &str, desired: &str) -> Task {
    Task::builder()
        .task_arn(arn(id))
        .last_status(last)
        .desired_status(desired)
        .tags(Tag::builder().key(tags::OWNER).value(owner).build())
        .tags(Tag::builder().key(tags::AGENT).value(id).build())
        .build()
}

#[tokio::test]
async fn terminate_refuses_foreign_tasks_and_is_idempotent() {
    let mut mock = MockEcsApi::new();
    mock.expect_describe_tasks().times(1).returning(|_| {
        Ok(DescribeTasksOutput::builder()
            .tasks(task("mine", "ci-prod", "RUNNING", "RUNNING"))
            .tasks(task("theirs", "other", "RUNNING", "RUNNING"))
            .tasks(task("stopped", "ci-prod", "STOPPED", "STOPPED"))
            .build())
    });
    mock.expect_stop_task()
        .withf(|i| {
            i.get_task().as_deref() == Some(arn("mine").as_str())
                && i.get_cluster().as_deref() == Some("ci")
                && i.get_reason().as_deref() == Some("jenkins-cloud: idle")
        })
        .times(1)
        .returning(|_| Ok(StopTaskOutput::builder().build()));
    let b = backend(mock);
    let ids: Vec<CloudId> = ["mine", "theirs", "stopped", "gone"]
        .iter()
        .map(|i| CloudId(arn(i)))
        .chain([CloudId("i-123".into())])
        .collect();
    let out = b.terminate(&ids, "idle").await;
    assert!(out[0].result.is_ok());
    let refused = out[1].result.as_ref().unwrap_err();
    assert_eq!(refused.class(), ErrorClass::Permanent);
    assert!(refused.message().contains("owner"), "{refused}");
    assert!(
        out[2].result.is_ok() && out[3].result.is_ok(),
        "stopped and unknown tasks are already gone"
    );
    assert_eq!(
        out[4].result.as_ref().unwrap_err().class(),
        ErrorClass::Permanent
    );
}

#[tokio::test]
async fn describing_250_tasks_takes_3_calls_and_drops_foreign_ones() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let mut mock = MockEcsApi::new();
    mock.expect_describe_tasks().returning(move |input| {
        c.fetch_add(1, Ordering::SeqCst);
        let ids = input.get_tasks().clone().unwrap();
        assert!(ids.len() <= 100);
        let mut out = DescribeTasksOutput::builder();
        for a in ids {
            let id = a.rsplit('/').next().unwrap().to_owned();
            let owner = if id.ends_with('7') {
                "other"
            } else {
                "ci-prod"
            };
            out = out.tasks(task(&id, owner, "RUNNING", "RUNNING"));
        }
        Ok(out.build())
    });
    let b = backend(mock);
    let ids: Vec<CloudId> = (0..250)
        .map(|i| CloudId(arn(&format!("t{i:03}"))))
        .collect();
    let found = b.describe(&ids).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        found.len(),
        250 - 25,
        "every task ending in 7 is someone else's"
    );
    assert!(found
        .iter()
        .all(|i| i.state == jenkins_cloud_core::backend::CloudState::Running));
}
