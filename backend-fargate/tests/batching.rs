//! Batched launches (`spec.launch_batching`) against moto: ≤ 10 RunTask calls
//! for 100 agents, each task bound to its own agent by tag, and owned tasks
//! that never got their agent tag listed under a synthetic name. Needs moto:
//! run `./scripts/test` or set MOTO_ENDPOINT; without it these tests fail.

mod common;

use std::collections::BTreeSet;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, LaunchType, NetworkConfiguration, Tag, TaskField,
};
use common::{agents, jenkins, MotoEnv};
use jenkins_cloud_core::backend::{tags, CloudId, CloudState, LaunchBatch};
use jenkins_cloud_core::Backend;
use jenkins_cloud_fargate::interceptors::CallCounter;
use jenkins_cloud_fargate::UNTAGGED_PREFIX;

fn fast_tags(config: &mut jenkins_cloud_fargate::FargateConfig) {
    // moto has no rate limits; keep the test at moto's speed.
    config.tag_rate_per_sec = 1000.0;
    config.tag_burst = 1000;
}

#[tokio::test]
async fn twenty_five_batched_agents_take_three_run_task_calls() {
    let env = MotoEnv::new().await;
    let counter = CallCounter::new();
    let backend = env.backend_with("owner-c", &counter, fast_tags);
    let mut template = env.template("batched");
    template.spec = env.batched_spec();
    let agents = agents("c", 25);
    let out = backend
        .launch(LaunchBatch {
            template: &template,
            jenkins: &jenkins(),
            agents: &agents,
        })
        .await;
    assert_eq!(out.len(), 25);
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(
        counter.get("RunTask"),
        3,
        "10 + 10 + 5: {:?}",
        counter.snapshot()
    );
    let listed = backend.list_owned().await.unwrap();
    let names: BTreeSet<_> = listed.iter().map(|i| i.agent_name.clone()).collect();
    let wanted: BTreeSet<_> = agents.iter().map(|a| a.agent_name.clone()).collect();
    assert_eq!(names, wanted, "every task carries its own agent's name");
}

#[tokio::test]
async fn a_hundred_batched_agents_take_ten_run_task_calls_and_keep_their_identity() {
    let env = MotoEnv::new().await;
    let counter = CallCounter::new();
    let backend = env.backend_with("owner-b", &counter, fast_tags);
    let mut template = env.template("batched");
    template.spec = env.batched_spec();
    assert_eq!(backend.validate_template(&template), Ok(()));
    let agents = agents("b", 100);
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
    assert!(counter.get("RunTask") <= 10, "{:?}", counter.snapshot());
    assert_eq!(counter.get("RunTask"), 10);
    assert_eq!(counter.get("TagResource"), 100, "{:?}", counter.snapshot());
    assert_eq!(counter.get("StopTask"), 0);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        100,
        "100 distinct tasks"
    );

    // describe sees each task under its own agent's name (the tag).
    let seen = backend.describe(&ids).await.unwrap();
    assert_eq!(seen.len(), 100);
    for (inst, agent) in seen.iter().zip(&agents) {
        assert_eq!(inst.agent_name, agent.agent_name);
        assert_eq!(inst.template, "batched");
        assert_eq!(inst.state, CloudState::Running);
    }
    let listed = backend.list_owned().await.unwrap();
    let names: BTreeSet<&str> = listed.iter().map(|i| i.agent_name.as_str()).collect();
    assert_eq!(names.len(), 100, "100 distinct agent tags");
    assert!(names.iter().all(|n| n.starts_with("b-")), "{names:?}");

    // What the container sees: its agent tag (what /taskWithTags and
    // ListTagsForResource return), no agent name or secret in the overrides.
    let tags_of = env
        .ecs
        .list_tags_for_resource()
        .resource_arn(&ids[42].0)
        .send()
        .await
        .expect("ListTagsForResource on a task");
    let tag = |k: &str| {
        tags_of
            .tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    assert_eq!(tag(tags::AGENT).as_deref(), Some("b-42"));
    assert_eq!(tag(tags::OWNER).as_deref(), Some("owner-b"));
    assert_eq!(tag("team").as_deref(), Some("ci"));
    let described = env
        .ecs
        .describe_tasks()
        .cluster("ci")
        .tasks(&ids[42].0)
        .include(TaskField::Tags)
        .send()
        .await
        .unwrap();
    let task = &described.tasks()[0];
    assert_eq!(task.started_by(), Some("owner-b"));
    let vars: Vec<(String, String)> = task.overrides().unwrap().container_overrides()[0]
        .environment()
        .iter()
        .map(|kv| {
            (
                kv.name().unwrap().to_owned(),
                kv.value().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(vars.iter().any(|(k, _)| k == "JENKINS_URL"), "{vars:?}");
    assert!(
        !vars.iter().any(|(k, v)| k == "JENKINS_AGENT_NAME"
            || k == "JENKINS_SECRET"
            || agents.iter().any(|a| v == a.secret.expose())),
        "{vars:?}"
    );

    let stopped = backend.terminate(&ids, "done").await;
    assert!(stopped.iter().all(|o| o.result.is_ok()), "{stopped:?}");
    assert_eq!(counter.get("StopTask"), 100);
}

#[tokio::test]
async fn an_owned_task_without_agent_tag_is_listed_under_a_synthetic_name_and_can_be_stopped() {
    let env = MotoEnv::new().await;
    let counter = CallCounter::new();
    let backend = env.backend_with("owner-u", &counter, fast_tags);
    let mut template = env.template("batched");
    template.spec = env.batched_spec();
    // One properly launched agent, to register the task definition and compare.
    let agents = agents("u", 1);
    let out = backend
        .launch(LaunchBatch {
            template: &template,
            jenkins: &jenkins(),
            agents: &agents,
        })
        .await;
    let bound = out[0].result.clone().expect("launched");
    let task_definition = env
        .ecs
        .describe_tasks()
        .cluster("ci")
        .tasks(&bound.0)
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .task_definition_arn()
        .unwrap()
        .to_owned();

    // A crash between RunTask and TagResource: an owned task without agent tag.
    let run = env
        .ecs
        .run_task()
        .cluster("ci")
        .task_definition(&task_definition)
        .count(1)
        .launch_type(LaunchType::Fargate)
        .started_by("owner-u")
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .subnets(&env.subnet)
                        .security_groups(&env.security_group)
                        .assign_public_ip(AssignPublicIp::Disabled)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .tags(Tag::builder().key(tags::OWNER).value("owner-u").build())
        .tags(Tag::builder().key(tags::TEMPLATE).value("batched").build())
        .send()
        .await
        .expect("RunTask");
    let untagged = run.tasks()[0].task_arn().unwrap().to_owned();
    let task_id = untagged.rsplit('/').next().unwrap();

    let listed = backend.list_owned().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let orphan = listed
        .iter()
        .find(|i| i.id.0 == untagged)
        .expect("the untagged task is listed");
    assert_eq!(orphan.agent_name, format!("{UNTAGGED_PREFIX}{task_id}"));
    assert!(!orphan.agent_name.is_empty(), "the core skips empty names");
    assert_eq!(orphan.template, "batched");
    assert_eq!(orphan.state, CloudState::Running);
    let good = listed.iter().find(|i| i.id == bound).unwrap();
    assert_eq!(good.agent_name, "u-0");

    // The core terminates it as an orphan: our backend stops it (owned).
    let stopped = backend
        .terminate(&[CloudId(untagged.clone())], "orphaned resource")
        .await;
    assert!(stopped[0].result.is_ok(), "{stopped:?}");
    let seen = backend.describe(&[CloudId(untagged)]).await.unwrap();
    assert_eq!(seen[0].state, CloudState::Terminated);
}

/// The core conformance suite with every launch in batched mode.
mod conformance {
    use std::sync::Arc;

    use async_trait::async_trait;
    use jenkins_cloud_core::backend::OwnerId;
    use jenkins_cloud_core::testkit::conformance::ConformanceHarness;
    use jenkins_cloud_core::{AgentTemplate, Backend};
    use jenkins_cloud_fargate::interceptors::CallCounter;
    use serde_json::json;

    use super::{fast_tags, CloudId, MotoEnv};

    /// Batched-mode backends on one moto account.
    pub struct BatchedHarness {
        env: MotoEnv,
        counter: CallCounter,
    }

    impl BatchedHarness {
        pub async fn new() -> Self {
            Self {
                env: MotoEnv::new().await,
                counter: CallCounter::new(),
            }
        }
    }

    #[async_trait]
    impl ConformanceHarness for BatchedHarness {
        async fn backend(&self, owner: OwnerId) -> Arc<dyn Backend> {
            Arc::new(
                self.env
                    .backend_with(owner.as_str(), &self.counter, fast_tags),
            )
        }

        fn template(&self) -> AgentTemplate {
            let mut t = self.env.template("conformance");
            t.spec = self.env.batched_spec();
            t
        }

        fn invalid_template(&self) -> AgentTemplate {
            // Batching with the secret in the environment is refused.
            let mut t = self.template();
            t.spec["agent_secret"] = json!("environment");
            t
        }

        fn unknown_id(&self) -> CloudId {
            CloudId(format!(
                "arn:aws:ecs:us-east-1:{}:task/ci/00000000000000000000000000000000",
                self.env.account
            ))
        }

        async fn settle(&self) {
            // moto starts tasks RUNNING at once and StopTask stops them at once.
        }

        fn idempotent_client_tokens(&self) -> bool {
            // moto ignores RunTask's clientToken.
            false
        }
    }

    jenkins_cloud_core::conformance_tests!(
        #[tokio::test]
        BatchedHarness::new().await
    );
}
