//! Core's conformance suite against the Fargate backend on moto: one test per
//! behaviour, each in a fresh moto account (`common::MotoEnv`).

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::MotoEnv;
use jenkins_cloud_core::backend::{Backend, CloudId, OwnerId};
use jenkins_cloud_core::testkit::conformance::ConformanceHarness;
use jenkins_cloud_core::AgentTemplate;
use jenkins_cloud_fargate::interceptors::CallCounter;

/// The conformance harness: every backend it hands out shares one account.
struct FargateHarness {
    env: MotoEnv,
    counter: CallCounter,
}

impl FargateHarness {
    async fn new() -> Self {
        Self {
            env: MotoEnv::new().await,
            counter: CallCounter::default(),
        }
    }
}

#[async_trait]
impl ConformanceHarness for FargateHarness {
    async fn backend(&self, owner: OwnerId) -> Arc<dyn Backend> {
        Arc::new(self.env.backend(owner.as_str(), &self.counter))
    }

    fn template(&self) -> AgentTemplate {
        self.env.template("conf")
    }

    fn invalid_template(&self) -> AgentTemplate {
        let mut t = self.env.template("conf-bad");
        t.spec["cpu"] = serde_json::json!(300);
        t.spec["subnets"] = serde_json::json!(["not-a-subnet"]);
        t
    }

    fn unknown_id(&self) -> CloudId {
        CloudId(format!(
            "arn:aws:ecs:us-east-1:{}:task/{}/0123456789abcdef0123456789abcdef",
            self.env.account, self.env.cluster
        ))
    }

    /// Tasks start RUNNING at once in moto and StopTask answers STOPPED.
    async fn settle(&self) {}

    /// moto ignores RunTask's `clientToken` (real ECS honours it; the backend
    /// sends a per-agent token, checked by the unit tests with a mocked API).
    fn idempotent_client_tokens(&self) -> bool {
        false
    }
}

jenkins_cloud_core::conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    FargateHarness::new().await
);
