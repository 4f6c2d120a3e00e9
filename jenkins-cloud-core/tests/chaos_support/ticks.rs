//! A wrapper that makes every call a point where a pass can be cancelled: it
//! sleeps [`TICK`] of tokio time first. In paused time this costs nothing, and a
//! `tokio::time::timeout` around a pass then kills it between any two calls
//! (after node creation before launch, after launch before recording…).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jenkins_cloud_core::backend::{
    Backend, BackendError, Capabilities, CloudId, CloudInstance, LaunchBatch, LaunchOutcome,
    OwnerId, TerminateOutcome,
};
use jenkins_cloud_core::jenkins::{Demand, JenkinsApi, JenkinsError, JenkinsNode, NodeSpec};
use jenkins_cloud_core::{AgentTemplate, ErrorClass, Secret};

/// The pause before each call.
pub const TICK: Duration = Duration::from_millis(1);

/// Sleeps [`TICK`] before each call to the wrapped backend or controller.
#[derive(Debug)]
pub struct Ticks<T: ?Sized>(pub Arc<T>);

async fn tick() {
    tokio::time::sleep(TICK).await;
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for Ticks<B> {
    fn kind(&self) -> &str {
        self.0.kind()
    }
    fn owner(&self) -> &OwnerId {
        self.0.owner()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn validate_template(&self, t: &AgentTemplate) -> Result<(), Vec<String>> {
        self.0.validate_template(t)
    }
    fn classify_failure(&self, reason: &str) -> ErrorClass {
        self.0.classify_failure(reason)
    }
    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        tick().await;
        self.0.launch(batch).await
    }
    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        tick().await;
        self.0.describe(ids).await
    }
    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        tick().await;
        self.0.terminate(ids, reason).await
    }
    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        tick().await;
        self.0.list_owned().await
    }
}

#[async_trait]
impl<J: JenkinsApi + ?Sized> JenkinsApi for Ticks<J> {
    fn owner(&self) -> &OwnerId {
        self.0.owner()
    }
    async fn demand(&self) -> Result<Demand, JenkinsError> {
        tick().await;
        self.0.demand().await
    }
    async fn nodes(&self) -> Result<Vec<JenkinsNode>, JenkinsError> {
        tick().await;
        self.0.nodes().await
    }
    async fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError> {
        tick().await;
        self.0.create_node(spec).await
    }
    async fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError> {
        tick().await;
        self.0.agent_secret(name).await
    }
    async fn drain_node(&self, name: &str, reason: &str) -> Result<(), JenkinsError> {
        tick().await;
        self.0.drain_node(name, reason).await
    }
    async fn delete_node(&self, name: &str) -> Result<(), JenkinsError> {
        tick().await;
        self.0.delete_node(name).await
    }
    async fn report_template_problem(
        &self,
        template: &str,
        problem: Option<&str>,
    ) -> Result<(), JenkinsError> {
        tick().await;
        self.0.report_template_problem(template, problem).await
    }
}
