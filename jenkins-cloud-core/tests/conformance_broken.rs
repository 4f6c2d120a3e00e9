//! Deliberately broken backends fail the conformance behaviours they break.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jenkins_cloud_core::backend::{
    AgentLaunch, Backend, BackendError, Capabilities, CloudId, CloudInstance, CloudState,
    LaunchBatch, LaunchOutcome, OwnerId, TerminateOutcome,
};
use jenkins_cloud_core::memory::{Latency, MemoryBackend, MemoryHarness, WarmPool};
use jenkins_cloud_core::template::AgentTemplate;
use jenkins_cloud_core::testkit::conformance::{self, Checked, ConformanceHarness, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Lists every owner's instances.
    ListsEveryone,
    /// Ignores client tokens (a fresh token per call).
    NotIdempotent,
    /// Terminates foreign ids as the other owner.
    TerminatesForeign,
    /// Drops the outcomes beyond one request's batch.
    TruncatesBatches,
    /// Swaps the ids of the first two outcomes.
    MixesIds,
    /// Launches with an invalid spec anyway (substituting `{}`).
    IgnoresInvalidSpec,
    /// A second terminate of the same id fails as transient.
    TerminateNotIdempotent,
    /// A warm pool whose stopped members still carry their last agent's name.
    PoolKeepsAgentName,
}

/// What [`Flaw::PoolKeepsAgentName`] reports for stopped members.
fn keep_agent_name(mut instances: Vec<CloudInstance>) -> Vec<CloudInstance> {
    for i in &mut instances {
        if i.state == CloudState::Stopped {
            i.agent_name = "ghost-agent".into();
        }
    }
    instances
}

#[derive(Debug)]
struct Broken {
    inner: MemoryBackend,
    flaw: Flaw,
    terminated: std::sync::Mutex<Vec<CloudId>>,
}

#[async_trait]
impl Backend for Broken {
    fn kind(&self) -> &str {
        "broken"
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
        match self.flaw {
            Flaw::NotIdempotent => {
                let agents: Vec<AgentLaunch> = batch
                    .agents
                    .iter()
                    .map(|a| AgentLaunch {
                        client_token: format!("{}-{}", a.client_token, fastrand::u32(..)),
                        ..a.clone()
                    })
                    .collect();
                self.inner
                    .launch(LaunchBatch {
                        agents: &agents,
                        ..batch
                    })
                    .await
            }
            Flaw::TruncatesBatches => {
                let max = self.capabilities().max_launch_batch.min(batch.agents.len());
                self.inner
                    .launch(LaunchBatch {
                        agents: &batch.agents[..max],
                        ..batch
                    })
                    .await
            }
            Flaw::MixesIds => {
                let mut out = self.inner.launch(batch).await;
                if out.len() >= 2 {
                    let first = out[0].result.clone();
                    out[0].result = out[1].result.clone();
                    out[1].result = first;
                }
                out
            }
            Flaw::IgnoresInvalidSpec => {
                let mut template = batch.template.clone();
                template.spec = serde_json::json!({});
                self.inner
                    .launch(LaunchBatch {
                        template: &template,
                        ..batch
                    })
                    .await
            }
            _ => self.inner.launch(batch).await,
        }
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        match self.flaw {
            Flaw::PoolKeepsAgentName => self.inner.describe(ids).await.map(keep_agent_name),
            _ => self.inner.describe(ids).await,
        }
    }

    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        match self.flaw {
            Flaw::TerminatesForeign => {
                let mut out = Vec::new();
                for id in ids {
                    let owner = self
                        .inner
                        .cloud()
                        .instances()
                        .into_iter()
                        .find(|r| &r.instance.id == id);
                    let as_owner =
                        owner.map(|r| MemoryBackend::on_cloud(self.inner.cloud().clone(), r.owner));
                    let backend = as_owner.as_ref().unwrap_or(&self.inner);
                    out.extend(backend.terminate(std::slice::from_ref(id), reason).await);
                }
                out
            }
            Flaw::TerminateNotIdempotent => {
                let mut out = self.inner.terminate(ids, reason).await;
                let mut seen = self.terminated.lock().unwrap();
                for o in &mut out {
                    if seen.contains(&o.id) {
                        o.result = Err(BackendError::transient("already terminating"));
                    }
                    seen.push(o.id.clone());
                }
                out
            }
            _ => self.inner.terminate(ids, reason).await,
        }
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        match self.flaw {
            Flaw::ListsEveryone => Ok(self
                .inner
                .cloud()
                .instances()
                .into_iter()
                .map(|r| r.instance)
                .collect()),
            Flaw::PoolKeepsAgentName => self.inner.list_owned().await.map(keep_agent_name),
            _ => self.inner.list_owned().await,
        }
    }
}

struct BrokenHarness {
    inner: MemoryHarness,
    flaw: Flaw,
}

#[async_trait]
impl ConformanceHarness for BrokenHarness {
    async fn backend(&self, owner: OwnerId) -> Arc<dyn Backend> {
        Arc::new(Broken {
            inner: self.inner.backend_of(&owner),
            flaw: self.flaw,
            terminated: Default::default(),
        })
    }
    fn template(&self) -> AgentTemplate {
        self.inner.template()
    }
    fn invalid_template(&self) -> AgentTemplate {
        self.inner.invalid_template()
    }
    fn unknown_id(&self) -> CloudId {
        self.inner.unknown_id()
    }
    fn warm_pool(&self) -> bool {
        self.inner.warm_pool()
    }
    async fn settle(&self) {
        self.inner.settle().await
    }
    async fn inject_launch_failures(&self, owner: &OwnerId, count: usize) -> bool {
        self.inner.inject_launch_failures(owner, count).await
    }
}

fn harness(flaw: Flaw) -> BrokenHarness {
    let inner = match flaw {
        Flaw::PoolKeepsAgentName => MemoryHarness::with_config(|b| {
            b.with_warm_pool(WarmPool {
                max_stopped: 2,
                restart_latency: Latency::Fixed(Duration::from_secs(20)),
            })
        }),
        _ => MemoryHarness::new(),
    };
    BrokenHarness { inner, flaw }
}

/// The behaviour fails, naming itself, and run_all reports exactly `expected` as failed.
async fn assert_caught(flaw: Flaw, verdict: Verdict, behaviour: &str, expected: &[&str]) {
    let failure = verdict.expect_err("the broken backend must fail");
    assert_eq!(failure.behaviour, behaviour);
    assert!(
        failure
            .to_string()
            .starts_with(&format!("conformance `{behaviour}` failed: ")),
        "{failure}"
    );
    let report = conformance::run_all(&harness(flaw)).await;
    assert_eq!(
        report.failed_names(),
        expected,
        "{flaw:?}: {:#?}",
        report.failed
    );
}

#[tokio::test(start_paused = true)]
async fn listing_other_owners_is_caught() {
    let v = conformance::list_owned_sees_only_its_own(&harness(Flaw::ListsEveryone)).await;
    let f = v.clone().unwrap_err();
    assert!(f.message.contains("lists owner b's"), "{f}");
    assert_caught(
        Flaw::ListsEveryone,
        v,
        "list_owned_sees_only_its_own",
        &["list_owned_sees_only_its_own"],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn ignoring_client_tokens_is_caught() {
    let v = conformance::client_token_is_idempotent(&harness(Flaw::NotIdempotent)).await;
    assert_caught(
        Flaw::NotIdempotent,
        v,
        "client_token_is_idempotent",
        &["client_token_is_idempotent"],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn terminating_foreign_resources_is_caught() {
    let v = conformance::foreign_terminate_is_refused(&harness(Flaw::TerminatesForeign)).await;
    assert_caught(
        Flaw::TerminatesForeign,
        v,
        "foreign_terminate_is_refused",
        &["foreign_terminate_is_refused"],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_outcomes_of_large_batches_is_caught() {
    let v = conformance::large_batch_gets_one_outcome_each(&harness(Flaw::TruncatesBatches)).await;
    let f = v.clone().unwrap_err();
    assert!(
        f.message.contains("13 agents launched but 10 outcomes"),
        "{f}"
    );
    let expected = ["large_batch_gets_one_outcome_each"];
    assert_caught(
        Flaw::TruncatesBatches,
        v,
        "large_batch_gets_one_outcome_each",
        &expected,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn mixing_up_ids_is_caught() {
    let v = conformance::outcomes_match_agents(&harness(Flaw::MixesIds)).await;
    // Batch checks of distinct ids still pass; the tag check sees the swap too, and
    // so does the partial-failure check (the error lands on an agent that runs).
    let expected = [
        "outcomes_match_agents",
        "partial_failure_keeps_successes",
        "instances_carry_tags",
    ];
    assert_caught(Flaw::MixesIds, v, "outcomes_match_agents", &expected).await;
}

#[tokio::test(start_paused = true)]
async fn launching_an_invalid_template_is_caught() {
    let v = conformance::invalid_template_is_permanent(&harness(Flaw::IgnoresInvalidSpec)).await;
    let expected = ["invalid_template_is_permanent"];
    assert_caught(
        Flaw::IgnoresInvalidSpec,
        v,
        "invalid_template_is_permanent",
        &expected,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_terminate_is_caught() {
    let v = conformance::terminate_is_idempotent(&harness(Flaw::TerminateNotIdempotent)).await;
    let f = v.clone().unwrap_err();
    assert!(f.message.contains("transient"), "{f}");
    assert_caught(
        Flaw::TerminateNotIdempotent,
        v,
        "terminate_is_idempotent",
        &["terminate_is_idempotent"],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_harness_without_failure_injection_reports_not_supported() {
    struct NoInjection(MemoryHarness);
    #[async_trait]
    impl ConformanceHarness for NoInjection {
        async fn backend(&self, owner: OwnerId) -> Arc<dyn Backend> {
            self.0.backend(owner).await
        }
        fn template(&self) -> AgentTemplate {
            self.0.template()
        }
        fn invalid_template(&self) -> AgentTemplate {
            self.0.invalid_template()
        }
        fn unknown_id(&self) -> CloudId {
            self.0.unknown_id()
        }
        async fn settle(&self) {
            self.0.settle().await
        }
        fn idempotent_client_tokens(&self) -> bool {
            false
        }
    }
    let h = NoInjection(MemoryHarness::new());
    assert_eq!(
        conformance::partial_failure_keeps_successes(&h).await,
        Ok(Checked::NotSupported("inject_launch_failures"))
    );
    let report = conformance::run_all(&h).await;
    assert!(report.is_ok());
    assert_eq!(
        report.not_supported,
        [
            ("partial_failure_keeps_successes", "inject_launch_failures"),
            ("client_token_is_idempotent", "idempotent_client_tokens"),
            ("warm_pool_members_are_no_agents", "a warm-pool harness")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_pool_member_still_named_after_its_agent_is_caught() {
    let v = conformance::warm_pool_members_are_no_agents(&harness(Flaw::PoolKeepsAgentName)).await;
    let f = v.clone().unwrap_err();
    assert!(f.message.contains("ghost-agent"), "{f}");
    assert_caught(
        Flaw::PoolKeepsAgentName,
        v,
        "warm_pool_members_are_no_agents",
        &["warm_pool_members_are_no_agents"],
    )
    .await;
}
