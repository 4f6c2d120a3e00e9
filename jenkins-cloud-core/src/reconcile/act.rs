//! The act step: carries out a plan with batched backend and Jenkins calls.
//!
//! Order matters for crash safety: a node is created (and its secret fetched)
//! before the cloud launch, so a crash leaves at worst a node without a cloud
//! resource, which the next pass deletes after the orphan grace. Termination
//! stops the cloud resource before deleting the node.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::plan::Action;
use super::state::Agent;
use super::Reconciler;
use crate::backend::{AgentLaunch, Backend, CloudId, CloudState, LaunchBatch};
use crate::error::ErrorClass;
use crate::jenkins::{agent_name, NodeMarker, NodeSpec};
use crate::lifecycle::AgentState;
use crate::template::AgentTemplate;

/// An agent started in this pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Launched {
    /// Agent name.
    pub agent: String,
    /// Template name.
    pub template: String,
    /// Cloud id.
    pub cloud_id: CloudId,
    /// Queue items it was launched for.
    pub serves: Vec<u64>,
}

/// A step of the act phase that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepError {
    /// What was being done (`create_node`, `launch`, `terminate`…).
    pub step: &'static str,
    /// The agent concerned, if one.
    pub agent: Option<String>,
    /// The template concerned, if one.
    pub template: Option<String>,
    /// What retrying does.
    pub class: ErrorClass,
    /// The error (never contains secrets).
    pub message: String,
}

/// What the act step did. What succeeded is listed even when other steps failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActReport {
    /// Agents launched.
    pub launched: Vec<Launched>,
    /// Agents drained.
    pub drained: Vec<String>,
    /// Agents whose termination was sent (cloud stop and node deletion).
    pub terminated: Vec<String>,
    /// Failed steps.
    pub errors: Vec<StepError>,
}

/// A launch idempotency token: stable for an agent, ≤ 64 characters.
pub fn client_token(owner: &str, agent: &str) -> String {
    let digest = Sha256::digest(format!("{owner}/{agent}").as_bytes());
    hex::encode(&digest[..16])
}

impl Reconciler {
    pub(super) async fn act(
        &mut self,
        actions: &[Action],
        now: Instant,
        wall_ms: u64,
    ) -> ActReport {
        let mut report = ActReport::default();
        let mut terminations: BTreeMap<usize, Vec<(String, CloudId, String)>> = BTreeMap::new();
        for action in actions {
            match action {
                Action::Launch {
                    template,
                    count,
                    serves,
                } => {
                    self.launch(template, *count, serves, now, wall_ms, &mut report)
                        .await;
                }
                Action::Drain { agent, reason } => {
                    match self.jenkins.drain_node(agent, reason).await {
                        Ok(()) => {
                            if let Some(a) = self.agents.get_mut(agent) {
                                a.draining = true;
                                a.set_state(AgentState::Draining, now);
                            }
                            tracing::info!(agent, reason, "drained");
                            report.drained.push(agent.clone());
                        }
                        Err(e) => report.errors.push(StepError {
                            step: "drain_node",
                            agent: Some(agent.clone()),
                            template: None,
                            class: e.class(),
                            message: e.to_string(),
                        }),
                    }
                }
                Action::Terminate {
                    agent,
                    cloud_id: Some(id),
                    reason,
                } => match self.backend_of(agent) {
                    Some(b) => terminations.entry(b).or_default().push((
                        agent.clone(),
                        id.clone(),
                        reason.clone(),
                    )),
                    None => report.errors.push(StepError {
                        step: "terminate",
                        agent: Some(agent.clone()),
                        template: None,
                        class: ErrorClass::Permanent,
                        message: "no configured backend owns this agent's resource".into(),
                    }),
                },
                Action::Terminate {
                    agent,
                    cloud_id: None,
                    reason,
                }
                | Action::DeleteNode { agent, reason } => {
                    self.delete_node(agent, reason, now, &mut report).await;
                }
            }
        }
        for (backend, items) in terminations {
            self.terminate(backend, items, now, &mut report).await;
        }
        report
    }

    fn backend_of(&self, agent: &str) -> Option<usize> {
        let template = &self.agents.get(agent)?.template;
        self.template_backend
            .get(template)
            .copied()
            .or_else(|| self.instance_backend.get(agent).copied())
    }

    async fn launch(
        &mut self,
        template_name: &str,
        count: u32,
        serves: &[u64],
        now: Instant,
        wall_ms: u64,
        report: &mut ActReport,
    ) {
        let Some((template, backend_index)) = self.template(template_name) else {
            return;
        };
        let backend = Arc::clone(&self.backends[backend_index]);
        let per = template.executors.max(1) as usize;
        let web_socket = matches!(
            self.config.endpoint.transport,
            crate::backend::AgentTransport::WebSocket
        );
        let specs: Vec<NodeSpec> = (0..count)
            .map(|_| NodeSpec {
                name: self.fresh_name(&template.name),
                marker: NodeMarker {
                    owner: self.config.owner.clone(),
                    template: template.name.clone(),
                    created_at_ms: wall_ms,
                },
                labels: template.labels.clone(),
                executors: template.executors,
                remote_fs: template.remote_fs.clone(),
                mode: template.mode,
                web_socket,
            })
            .collect();
        // Nodes first (with their secrets), several at a time, results in order.
        let jenkins = Arc::clone(&self.jenkins);
        let prepared: Vec<_> = stream::iter(specs.iter())
            .map(|spec| {
                let jenkins = Arc::clone(&jenkins);
                async move {
                    jenkins
                        .create_node(spec)
                        .await
                        .map_err(|e| ("create_node", e))?;
                    match jenkins.agent_secret(&spec.name).await {
                        Ok(secret) => Ok(secret),
                        Err(e) => {
                            let _ = jenkins.delete_node(&spec.name).await;
                            Err(("agent_secret", e))
                        }
                    }
                }
            })
            .buffered(self.config.jenkins_concurrency.max(1))
            .collect()
            .await;
        let mut launches = Vec::new();
        for (i, (spec, result)) in specs.into_iter().zip(prepared).enumerate() {
            let name = spec.name;
            let secret = match result {
                Ok(secret) => secret,
                Err((step, e)) => {
                    report.errors.push(StepError {
                        step,
                        agent: Some(name),
                        template: Some(template.name.clone()),
                        class: e.class(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let item_serves: Vec<u64> = serves.iter().skip(i * per).take(per).copied().collect();
            let mut agent =
                Agent::requested(name.clone(), template.name.clone(), template.executors, now);
            agent.node_exists = true;
            agent.serving = item_serves;
            agent.set_state(AgentState::Launching, now);
            self.agents.insert(name.clone(), agent);
            launches.push(AgentLaunch {
                client_token: client_token(self.config.owner.as_str(), &name),
                agent_name: name,
                secret,
            });
        }
        let batch_size = backend.capabilities().max_launch_batch.max(1);
        for chunk in launches.chunks(batch_size) {
            let batch = LaunchBatch {
                template: &template,
                jenkins: &self.config.endpoint,
                agents: chunk,
            };
            let outcomes = backend.launch(batch).await;
            for launch in chunk {
                let outcome = outcomes.iter().find(|o| o.agent_name == launch.agent_name);
                let result = match outcome {
                    Some(o) => o.result.clone(),
                    None => Err(crate::backend::BackendError::transient(
                        "backend returned no outcome for this agent",
                    )),
                };
                self.record_launch(&template, &launch.agent_name, result, now, report)
                    .await;
            }
        }
    }

    async fn record_launch(
        &mut self,
        template: &AgentTemplate,
        name: &str,
        result: Result<CloudId, crate::backend::BackendError>,
        now: Instant,
        report: &mut ActReport,
    ) {
        match result {
            Ok(id) => {
                let Some(agent) = self.agents.get_mut(name) else {
                    return;
                };
                agent.cloud_id = Some(id.clone());
                agent.cloud_state = Some(CloudState::Pending);
                tracing::info!(
                    agent = name,
                    template = %template.name,
                    cloud_id = %id,
                    serves = ?agent.serving,
                    "launched agent"
                );
                report.launched.push(Launched {
                    agent: name.to_owned(),
                    template: template.name.clone(),
                    cloud_id: id,
                    serves: agent.serving.clone(),
                });
            }
            Err(e) => {
                self.launch_failed(&template.name, e.class(), &e.to_string(), now);
                report.errors.push(StepError {
                    step: "launch",
                    agent: Some(name.to_owned()),
                    template: Some(template.name.clone()),
                    class: e.class(),
                    message: e.to_string(),
                });
                if let Some(agent) = self.agents.get_mut(name) {
                    agent.set_state(AgentState::Failed(e.to_string()), now);
                    agent.failure_counted = true;
                }
                self.delete_node(name, "launch failed", now, report).await;
            }
        }
    }

    async fn terminate(
        &mut self,
        backend_index: usize,
        items: Vec<(String, CloudId, String)>,
        now: Instant,
        report: &mut ActReport,
    ) {
        let backend: Arc<dyn Backend> = Arc::clone(&self.backends[backend_index]);
        let batch = backend.capabilities().max_terminate_batch.max(1);
        for chunk in items.chunks(batch) {
            // One stop reason per batch: the first; all reasons go to the log.
            let ids: Vec<CloudId> = chunk.iter().map(|(_, id, _)| id.clone()).collect();
            let outcomes = backend.terminate(&ids, &chunk[0].2).await;
            for (agent, id, reason) in chunk {
                let result = outcomes
                    .iter()
                    .find(|o| &o.id == id)
                    .map(|o| o.result.clone());
                match result {
                    Some(Ok(())) => {
                        tracing::info!(agent, cloud_id = %id, reason, "terminating");
                        if let Some(a) = self.agents.get_mut(agent) {
                            a.cloud_state = Some(CloudState::Stopping);
                        }
                        self.delete_node(agent, reason, now, report).await;
                    }
                    other => {
                        let e = match other {
                            Some(Err(e)) => e,
                            _ => crate::backend::BackendError::transient(
                                "backend returned no outcome",
                            ),
                        };
                        report.errors.push(StepError {
                            step: "terminate",
                            agent: Some(agent.clone()),
                            template: None,
                            class: e.class(),
                            message: e.to_string(),
                        });
                    }
                }
            }
        }
    }

    async fn delete_node(
        &mut self,
        agent: &str,
        reason: &str,
        now: Instant,
        report: &mut ActReport,
    ) {
        match self.jenkins.delete_node(agent).await {
            Ok(()) => {
                tracing::info!(agent, reason, "node deleted");
                if let Some(a) = self.agents.get_mut(agent) {
                    a.node_exists = false;
                    if !a.set_state(AgentState::Terminating, now) {
                        a.set_state(AgentState::Failed(reason.to_owned()), now);
                        a.set_state(AgentState::Terminating, now);
                    }
                }
                report.terminated.push(agent.to_owned());
            }
            Err(e) => report.errors.push(StepError {
                step: "delete_node",
                agent: Some(agent.to_owned()),
                template: None,
                class: e.class(),
                message: e.to_string(),
            }),
        }
    }

    fn fresh_name(&mut self, template: &str) -> String {
        loop {
            let name = agent_name::generate(&self.config.node_prefix, template, &mut self.rng);
            if !self.agents.contains_key(&name) {
                return name;
            }
        }
    }
}
