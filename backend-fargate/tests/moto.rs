//! The Fargate backend against moto (ECS + EC2 emulator). Needs moto: run
//! `./scripts/test` or set MOTO_ENDPOINT; without it these tests fail.

mod common;

use aws_sdk_ecs::types::{TaskDefinitionStatus, TaskField};
use common::{agents, jenkins, MotoEnv};
use jenkins_cloud_core::backend::{tags, CloudId, CloudState, LaunchBatch};
use jenkins_cloud_core::{Backend, ErrorClass};
use jenkins_cloud_fargate::interceptors::CallCounter;
use serde_json::json;

async fn env_of_task(env: &MotoEnv, arn: &str) -> Vec<(String, String)> {
    let out = env
        .ecs
        .describe_tasks()
        .cluster("ci")
        .tasks(arn)
        .send()
        .await
        .unwrap();
    let task = &out.tasks()[0];
    task.overrides().unwrap().container_overrides()[0]
        .environment()
        .iter()
        .map(|kv| {
            (
                kv.name().unwrap().to_owned(),
                kv.value().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn launch_describe_terminate_twice() {
    let env = MotoEnv::new().await;
    let counter = CallCounter::new();
    let backend = env.backend("owner-a", &counter);
    let template = env.template("linux");
    let agents = agents("lnx", 3);
    let out = backend
        .launch(LaunchBatch {
            template: &template,
            jenkins: &jenkins(),
            agents: &agents,
        })
        .await;
    let ids: Vec<CloudId> = out
        .iter()
        .map(|o| o.result.clone().expect("launched"))
        .collect();
    assert_eq!(
        out.iter()
            .map(|o| o.agent_name.as_str())
            .collect::<Vec<_>>(),
        ["lnx-0", "lnx-1", "lnx-2"]
    );

    let seen = backend.describe(&ids).await.unwrap();
    assert_eq!(seen.len(), 3);
    for (inst, agent) in seen.iter().zip(&agents) {
        assert_eq!(inst.agent_name, agent.agent_name);
        assert_eq!(inst.template, "linux");
        assert_eq!(inst.state, CloudState::Running);
    }
    // Per-agent identity and WebSocket transport reach the container.
    let vars = env_of_task(&env, &ids[1].0).await;
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("JENKINS_AGENT_NAME"), Some("lnx-1"));
    assert_eq!(get("JENKINS_URL"), Some("http://jenkins.internal:8080/"));
    assert_eq!(get("JENKINS_WEB_SOCKET"), Some("true"));
    assert_eq!(
        get("JENKINS_SECRET"),
        Some(agents[1].secret.expose()),
        "environment mode: visible in DescribeTasks"
    );
    assert_eq!(get("JENKINS_TUNNEL"), None);

    // Tags: owner, template, agent and the template's own.
    let tagged = env
        .ecs
        .describe_tasks()
        .cluster("ci")
        .tasks(&ids[0].0)
        .include(TaskField::Tags)
        .send()
        .await
        .unwrap();
    let task = &tagged.tasks()[0];
    let tag = |k: &str| {
        task.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
    };
    assert_eq!(tag(tags::OWNER), Some("owner-a"));
    assert_eq!(tag(tags::TEMPLATE), Some("linux"));
    assert_eq!(tag(tags::AGENT), Some("lnx-0"));
    assert_eq!(tag("team"), Some("ci"));
    assert_eq!(task.started_by(), Some("owner-a"));

    let stopped = backend.terminate(&ids[..2], "idle for 5 min").await;
    assert!(stopped.iter().all(|o| o.result.is_ok()), "{stopped:?}");
    assert_eq!(counter.get("StopTask"), 2, "{:?}", counter.snapshot());
    let seen = backend.describe(&ids).await.unwrap();
    assert_eq!(seen[0].state, CloudState::Terminated);
    assert_eq!(seen[1].state, CloudState::Terminated);
    assert_eq!(seen[2].state, CloudState::Running);

    // Idempotent: stopping again makes no StopTask call and succeeds.
    let again = backend.terminate(&ids[..2], "idle").await;
    assert!(again.iter().all(|o| o.result.is_ok()));
    assert_eq!(counter.get("StopTask"), 2);
    let unknown = CloudId(format!(
        "arn:aws:ecs:us-east-1:{}:task/ci/0123456789abcdef",
        env.account
    ));
    assert!(
        backend.terminate(&[unknown], "x").await[0].result.is_ok(),
        "unknown tasks are gone"
    );
}

#[tokio::test]
async fn task_definitions_are_reused_and_stale_revisions_deregistered() {
    let env = MotoEnv::new().await;
    let counter = CallCounter::new();
    let backend = env.backend("owner-td", &counter);
    let template = env.template("build");
    let first = backend.task_definition_for(&template).await.unwrap();
    assert_eq!(backend.task_definition_for(&template).await.unwrap(), first);
    assert_eq!(counter.get("RegisterTaskDefinition"), 1);

    // A restarted program (fresh cache) finds the revision by its hash tag.
    let restarted_counter = CallCounter::new();
    let restarted = env.backend("owner-td", &restarted_counter);
    assert_eq!(
        restarted.task_definition_for(&template).await.unwrap(),
        first
    );
    assert_eq!(restarted_counter.get("RegisterTaskDefinition"), 0);

    // A change registers one new revision and deregisters the old one.
    let mut bigger = template.clone();
    bigger.spec["memory"] = json!(2048);
    let second = restarted.task_definition_for(&bigger).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(restarted_counter.get("RegisterTaskDefinition"), 1);
    let family = "jenkins-cloud-owner-td-build";
    let active = env
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert_eq!(active.task_definition_arns(), std::slice::from_ref(&second));
    let old = env
        .ecs
        .describe_task_definition()
        .task_definition(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.task_definition().unwrap().status(),
        Some(&TaskDefinitionStatus::Inactive)
    );

    // Launching uses the current revision.
    let agents = agents("b", 1);
    let out = restarted
        .launch(LaunchBatch {
            template: &bigger,
            jenkins: &jenkins(),
            agents: &agents,
        })
        .await;
    let arn = out[0].result.clone().unwrap();
    let task = env
        .ecs
        .describe_tasks()
        .cluster("ci")
        .tasks(&arn.0)
        .send()
        .await
        .unwrap();
    assert_eq!(task.tasks()[0].task_definition_arn(), Some(second.as_str()));
}

#[tokio::test]
async fn owners_see_and_touch_only_their_own_tasks() {
    let env = MotoEnv::new().await;
    let (ca, cb) = (CallCounter::new(), CallCounter::new());
    let (a, b) = (env.backend("owner-a", &ca), env.backend("owner-b", &cb));
    let template = env.template("linux");
    let mine = a
        .launch(LaunchBatch {
            template: &template,
            jenkins: &jenkins(),
            agents: &agents("a", 2),
        })
        .await;
    let theirs = b
        .launch(LaunchBatch {
            template: &template,
            jenkins: &jenkins(),
            agents: &agents("b", 3),
        })
        .await;
    // A task someone started by hand with our startedBy but without our tags.
    let td = a.task_definition_for(&template).await.unwrap();
    let sneaky = env
        .ecs
        .run_task()
        .cluster("ci")
        .task_definition(td)
        .started_by("owner-a")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .subnets(&env.subnet)
                        .security_groups(&env.security_group)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let sneaky_arn = sneaky.tasks()[0].task_arn().unwrap().to_owned();

    let listed = a.list_owned().await.unwrap();
    let mut names: Vec<_> = listed.iter().map(|i| i.agent_name.clone()).collect();
    names.sort();
    assert_eq!(names, ["a-0", "a-1"]);
    assert_eq!(b.list_owned().await.unwrap().len(), 3);

    let foreign: Vec<CloudId> = theirs
        .iter()
        .map(|o| o.result.clone().unwrap())
        .chain([CloudId(sneaky_arn.clone())])
        .collect();
    let refused = a.terminate(&foreign, "not mine").await;
    for o in &refused {
        assert_eq!(
            o.result.as_ref().unwrap_err().class(),
            ErrorClass::Permanent,
            "{o:?}"
        );
    }
    assert_eq!(ca.get("StopTask"), 0, "no StopTask for foreign tasks");
    assert!(
        a.describe(&foreign).await.unwrap().is_empty(),
        "describe leaves foreign tasks out"
    );
    let still = env
        .ecs
        .describe_tasks()
        .cluster("ci")
        .set_tasks(Some(foreign.iter().map(|c| c.0.clone()).collect()))
        .send()
        .await
        .unwrap();
    assert!(still
        .tasks()
        .iter()
        .all(|t| t.desired_status() == Some("RUNNING")));
    let mine_ids: Vec<CloudId> = mine.iter().map(|o| o.result.clone().unwrap()).collect();
    assert!(a
        .terminate(&mine_ids, "done")
        .await
        .iter()
        .all(|o| o.result.is_ok()));
    // Stopped tasks stay listed (with their state) while ECS keeps them.
    let listed = a.list_owned().await.unwrap();
    assert!(
        listed.iter().all(|i| i.state == CloudState::Terminated),
        "{listed:?}"
    );
}

#[tokio::test]
async fn invalid_cpu_memory_is_rejected_before_any_call_though_moto_would_accept_it() {
    let env = MotoEnv::new().await;
    let counter = CallCounter::new();
    let backend = env.backend("owner-v", &counter);
    let mut template = env.template("bad");
    template.spec["cpu"] = json!(256);
    template.spec["memory"] = json!(4096);
    let out = backend
        .launch(LaunchBatch {
            template: &template,
            jenkins: &jenkins(),
            agents: &agents("v", 2),
        })
        .await;
    for o in &out {
        let err = o.result.as_ref().unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.message()
                .contains("spec.memory: 4096 MiB is not allowed with cpu 256"),
            "{err}"
        );
    }
    assert!(
        counter.snapshot().is_empty(),
        "no ECS call at all: {:?}",
        counter.snapshot()
    );
    // moto itself accepts the pair (AWS would not): the check must be ours.
    let accepted = env
        .ecs
        .register_task_definition()
        .family("probe")
        .cpu("256")
        .memory("4096")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("x")
                .image("x")
                .memory(512)
                .build(),
        )
        .send()
        .await;
    assert!(accepted.is_ok());
}

#[tokio::test]
async fn a_hundred_agents_take_one_run_task_each_and_each_keeps_its_identity() {
    let env = MotoEnv::new().await;
    let counter = CallCounter::new();
    let backend = env.backend("owner-h", &counter);
    let template = env.template("many");
    let agents = agents("m", 100);
    let out = backend
        .launch(LaunchBatch {
            template: &template,
            jenkins: &jenkins(),
            agents: &agents,
        })
        .await;
    assert!(
        out.iter().all(|o| o.result.is_ok()),
        "{:?}",
        out.iter().find(|o| o.result.is_err())
    );
    // Honest count: per-agent name and secret are per-call overrides, so one
    // RunTask per agent (see docs/fargate.md).
    assert_eq!(counter.get("RunTask"), 100);
    assert_eq!(counter.get("RegisterTaskDefinition"), 1);
    let listed = backend.list_owned().await.unwrap();
    let mut names: Vec<_> = listed.iter().map(|i| i.agent_name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 100, "every task carries its own agent name");
}

#[tokio::test]
async fn listing_250_owned_tasks_takes_at_most_3_describe_calls() {
    let env = MotoEnv::new().await;
    let counter = CallCounter::new();
    let backend = env.backend("owner-l", &counter);
    let template = env.template("bulk");
    let td = backend.task_definition_for(&template).await.unwrap();
    // Seed 250 owned tasks directly (moto takes count > 10).
    let tag = |k: &str, v: &str| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build();
    env.ecs
        .run_task()
        .cluster("ci")
        .task_definition(td)
        .count(250)
        .started_by("owner-l")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .tags(tag(tags::OWNER, "owner-l"))
        .tags(tag(tags::TEMPLATE, "bulk"))
        .tags(tag(tags::AGENT, "seeded"))
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .subnets(&env.subnet)
                        .security_groups(&env.security_group)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    counter.reset();
    let listed = backend.list_owned().await.unwrap();
    assert_eq!(listed.len(), 250);
    // ceil(250 / 100): batches of 100, never one call per task.
    assert_eq!(counter.get("DescribeTasks"), 3, "{:?}", counter.snapshot());
    assert!(listed
        .iter()
        .all(|i| i.state == CloudState::Running && i.template == "bulk"));
}

#[tokio::test]
async fn fetched_by_agent_mode_keeps_the_secret_out_of_describe_tasks() {
    let env = MotoEnv::new().await;
    let counter = CallCounter::new();
    let backend = env.backend("owner-s", &counter);
    let mut template = env.template("safe");
    template.spec["agent_secret"] = json!("fetched_by_agent");
    template.spec["execution_role_arn"] = json!("arn:aws:iam::123456789012:role/ecsTaskExecution");
    template.spec["secrets"] = json!({"JENKINS_CONNECT_TOKEN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:jenkins-connect"});
    let agents = agents("s", 1);
    let out = backend
        .launch(LaunchBatch {
            template: &template,
            jenkins: &jenkins(),
            agents: &agents,
        })
        .await;
    let arn = out[0].result.clone().expect("launched");
    let vars = env_of_task(&env, &arn.0).await;
    assert!(vars
        .iter()
        .any(|(k, v)| k == "JENKINS_AGENT_NAME" && v == "s-0"));
    assert!(
        !vars
            .iter()
            .any(|(k, v)| k == "JENKINS_SECRET" || v == agents[0].secret.expose()),
        "{vars:?}"
    );
}
