//! Core's conformance suite against the EC2 backend on moto, without and with a
//! warm pool: one test per behaviour, each in a fresh moto account
//! (`common::harness`).

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::Harness;
use jenkins_cloud_core::backend::{Backend, CloudId, OwnerId};
use jenkins_cloud_core::testkit::conformance::ConformanceHarness;
use jenkins_cloud_core::AgentTemplate;
use jenkins_cloud_ec2::Ec2Backend;

/// The conformance harness: every backend it hands out shares one account.
struct Ec2Harness {
    harness: Harness,
    template: AgentTemplate,
    warm_pool: bool,
}

impl Ec2Harness {
    async fn new() -> Self {
        Self::with_spec(serde_json::json!({})).await
    }

    /// Retired instances are stopped into a pool of at most 2 and restarted.
    async fn warm_pool() -> Self {
        Self::with_spec(serde_json::json!({ "warm_pool": true, "warm_pool_max": 2 })).await
    }

    async fn with_spec(spec: serde_json::Value) -> Self {
        let harness = common::harness().await;
        let warm_pool = spec["warm_pool"] == serde_json::json!(true);
        let template = harness.template(spec).await;
        Self {
            harness,
            template,
            warm_pool,
        }
    }
}

#[async_trait]
impl ConformanceHarness for Ec2Harness {
    async fn backend(&self, owner: OwnerId) -> Arc<dyn Backend> {
        Arc::new(Ec2Backend::with_api(owner, self.harness.api.clone()))
    }

    fn template(&self) -> AgentTemplate {
        self.template.clone()
    }

    fn invalid_template(&self) -> AgentTemplate {
        let mut t = self.template.clone();
        t.spec["instance_types"] = serde_json::json!([]);
        t.spec["subnets"] = serde_json::json!(["not-a-subnet"]);
        t
    }

    fn warm_pool(&self) -> bool {
        self.warm_pool
    }

    fn unknown_id(&self) -> CloudId {
        CloudId("i-0123456789abcdef0".into())
    }

    /// Instances run at once in moto and terminate at once.
    async fn settle(&self) {}

    /// moto ignores RunInstances' `ClientToken` (real EC2 honours it; the
    /// backend sends the agent's token, checked by its unit tests).
    fn idempotent_client_tokens(&self) -> bool {
        false
    }
}

mod plain {
    use super::Ec2Harness;
    jenkins_cloud_core::conformance_tests!(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        Ec2Harness::new().await
    );
}

mod warm_pool {
    use super::Ec2Harness;
    jenkins_cloud_core::conformance_tests!(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        Ec2Harness::warm_pool().await
    );
}
