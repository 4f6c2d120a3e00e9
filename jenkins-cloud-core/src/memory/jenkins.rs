//! [`MemoryJenkins`]: an in-memory controller implementing [`JenkinsApi`].

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::time::Instant;

use super::cloud::DEFAULT_EPOCH_SECS;
use super::controller::{BuildRecord, Controller, JenkinsStats, Node, RefusedConnection};
use crate::backend::OwnerId;
use crate::jenkins::agent_name::check_good_name;
use crate::jenkins::{
    Demand, JenkinsApi, JenkinsError, JenkinsNode, NodeMarker, NodeSpec, QueueItem, Requirement,
};
use crate::label::{LabelExpr, LabelSet};
use crate::secret::Secret;
use crate::template::NodeMode;

/// A build to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Task name (`job-name`, `part of pipeline #3`…).
    pub task: String,
    /// Label expression, `None` for any NORMAL-mode node.
    pub label: Option<LabelExpr>,
    /// How long the build runs once started.
    pub duration: Duration,
    /// Re-queue the build (as a new item) when its agent goes away, like a
    /// Pipeline `retry(conditions: [agent()])`. Jenkins does not by default.
    pub retry_on_agent_loss: bool,
}

impl Submission {
    /// A submission without retry.
    pub fn new(task: impl Into<String>, label: Option<LabelExpr>, duration: Duration) -> Self {
        Self {
            task: task.into(),
            label,
            duration,
            retry_on_agent_loss: false,
        }
    }

    /// Sets [`Submission::retry_on_agent_loss`].
    pub fn retry_on_agent_loss(mut self) -> Self {
        self.retry_on_agent_loss = true;
        self
    }
}

/// An in-memory Jenkins controller: a queue, nodes, agents connecting with
/// their secret, builds running for a set (tokio) time.
///
/// * Items are buildable as soon as submitted. Whenever something changes, the
///   oldest queued item goes to the first node (by name) that is online, not
///   temporarily offline, has an idle executor and matches: no label takes only
///   NORMAL-mode nodes, a label expression must match the node's labels, which
///   include the node's own name, as in Jenkins.
/// * Agents connect through [`start_agent_session`](Self::start_agent_session)
///   (what [`MemoryBackend`](super::MemoryBackend) does when linked) or
///   [`connect_agent`](Self::connect_agent). An unknown node, a wrong secret or
///   a second connection for a connected node is refused and recorded.
/// * A build whose agent disconnects, or whose node is deleted, is aborted and
///   gone; it is re-queued as a new item only with
///   [`Submission::retry_on_agent_loss`].
/// * The secret of a node is HMAC-SHA256(controller key, name) in hex.
/// * Ownership: [`JenkinsApi::nodes`], drain and delete see only nodes whose
///   description carries a [`NodeMarker`] of this view's owner. Several owners
///   share one controller through [`view_as`](Self::view_as); static agents
///   come from [`add_static_node`](Self::add_static_node).
///
/// Cheap to clone: clones share the controller.
#[derive(Clone)]
pub struct MemoryJenkins {
    owner: OwnerId,
    shared: Arc<Mutex<Controller>>,
}

impl fmt::Debug for MemoryJenkins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.lock();
        f.debug_struct("MemoryJenkins")
            .field("owner", &self.owner)
            .field("nodes", &c.nodes.len())
            .field("items", &c.items.len())
            .finish_non_exhaustive()
    }
}

impl MemoryJenkins {
    /// A controller seen by `owner`, with the default epoch and key.
    pub fn new(owner: OwnerId) -> Self {
        Self::with_epoch(
            owner,
            SystemTime::UNIX_EPOCH + Duration::from_secs(DEFAULT_EPOCH_SECS),
        )
    }

    /// A controller whose tokio "now" is `epoch` (for `inQueueSince` and markers).
    pub fn with_epoch(owner: OwnerId, epoch: SystemTime) -> Self {
        Self {
            owner,
            shared: Arc::new(Mutex::new(Controller::new(
                epoch,
                b"memory-jenkins-key".to_vec(),
            ))),
        }
    }

    /// Replaces the controller key secrets are derived from.
    pub fn with_key(self, key: &[u8]) -> Self {
        self.lock().key = key.to_vec();
        self
    }

    /// The same controller, seen by another owner.
    pub fn view_as(&self, owner: OwnerId) -> MemoryJenkins {
        Self {
            owner,
            shared: Arc::clone(&self.shared),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Controller> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the controller with every event up to now processed.
    fn now(&self) -> (MutexGuard<'_, Controller>, Instant) {
        let now = Instant::now();
        let mut c = self.lock();
        c.advance(now);
        (c, now)
    }

    /// Queues a build; returns its queue item id.
    pub fn submit(
        &self,
        task: impl Into<String>,
        label: Option<LabelExpr>,
        duration: Duration,
    ) -> u64 {
        self.submit_with(Submission::new(task, label, duration))
    }

    /// Queues a build described by `s`; returns its queue item id.
    pub fn submit_with(&self, s: Submission) -> u64 {
        let (mut c, now) = self.now();
        let id = c.enqueue(
            s.task,
            s.label,
            s.duration,
            s.retry_on_agent_loss,
            None,
            now,
        );
        c.assign(now);
        id
    }

    /// Adds a node that is not ours (no marker): a static agent, online at once.
    pub fn add_static_node(&self, name: &str, labels: &str, executors: u32, mode: NodeMode) {
        let (mut c, now) = self.now();
        c.nodes.insert(
            name.to_owned(),
            node(
                name,
                &LabelSet::parse(labels),
                executors,
                mode,
                "a static agent".into(),
            ),
        );
        if let Some(n) = c.nodes.get_mut(name) {
            n.is_static = true;
        }
        c.assign(now);
    }

    /// An agent for node `name` will try to connect with `secret` at
    /// `connect_at` (not earlier than now). Returns a session id for
    /// [`end_agent_session`](Self::end_agent_session).
    pub fn start_agent_session(&self, name: &str, secret: &Secret, connect_at: Instant) -> u64 {
        let (mut c, _) = self.now();
        c.start_session(name, secret, connect_at)
    }

    /// The agent process of `session` stops at `at` (not earlier than now): if
    /// connected it disconnects and its builds are aborted; if not yet
    /// connected it never will.
    pub fn end_agent_session(&self, session: u64, at: Instant) {
        let (mut c, _) = self.now();
        c.schedule_end(session, at);
    }

    /// Connects an agent for `name` now with `secret`; `Err` with the reason
    /// when refused. Returns the session id.
    pub fn connect_agent(&self, name: &str, secret: &Secret) -> Result<u64, String> {
        let (mut c, now) = self.now();
        let sid = c.start_session(name, secret, now);
        let refused_before = c.refused.len();
        c.advance(now);
        match c.refused.get(refused_before) {
            Some(r) => Err(r.reason.clone()),
            None => Ok(sid),
        }
    }

    /// Every item ever queued, oldest first, with its build's times and outcome.
    pub fn history(&self) -> Vec<BuildRecord> {
        let (c, _) = self.now();
        c.items.values().map(|i| i.record.clone()).collect()
    }

    /// One item's record.
    pub fn item(&self, id: u64) -> Option<BuildRecord> {
        let (c, _) = self.now();
        c.items.get(&id).map(|i| i.record.clone())
    }

    /// Items waiting for an executor.
    pub fn queue_len(&self) -> usize {
        let (c, _) = self.now();
        c.queued().count()
    }

    /// Refused agent connections, in order.
    pub fn refused_connections(&self) -> Vec<RefusedConnection> {
        let (c, _) = self.now();
        c.refused.clone()
    }

    /// Counters.
    pub fn stats(&self) -> JenkinsStats {
        let (c, _) = self.now();
        c.stats.clone()
    }

    /// Whether node `name` exists and has an agent connected (static nodes count).
    pub fn is_connected(&self, name: &str) -> bool {
        let (c, _) = self.now();
        c.nodes.get(name).is_some_and(Node::online)
    }

    /// The problem this view's owner shows for `template`
    /// ([`JenkinsApi::report_template_problem`]), if any.
    pub fn template_problem(&self, template: &str) -> Option<String> {
        self.lock()
            .problems
            .get(&(self.owner.as_str().to_owned(), template.to_owned()))
            .cloned()
    }

    /// Names of every node, ours or not.
    pub fn node_names(&self) -> Vec<String> {
        let (c, _) = self.now();
        c.nodes.keys().cloned().collect()
    }

    fn check_owned<'a>(
        &self,
        c: &'a mut Controller,
        name: &str,
    ) -> Result<Option<&'a mut Node>, JenkinsError> {
        match c.nodes.get_mut(name) {
            None => Ok(None),
            Some(n) if NodeMarker::parse(&n.description).is_some_and(|m| m.owner == self.owner) => {
                Ok(Some(n))
            }
            Some(_) => Err(JenkinsError::NotOwned {
                name: name.to_owned(),
            }),
        }
    }
}

fn node(
    name: &str,
    labels: &LabelSet,
    executors: u32,
    mode: NodeMode,
    description: String,
) -> Node {
    Node {
        labels: labels
            .iter()
            .map(str::to_owned)
            .chain([name.to_owned()])
            .collect(),
        executors,
        mode,
        description,
        temporarily_offline: false,
        session: None,
        is_static: false,
        running: Default::default(),
    }
}

#[async_trait]
impl JenkinsApi for MemoryJenkins {
    fn owner(&self) -> &OwnerId {
        &self.owner
    }

    async fn demand(&self) -> Result<Demand, JenkinsError> {
        let (mut c, _) = self.now();
        c.stats.demand_calls += 1;
        let items = c
            .queued()
            .map(|i| QueueItem {
                id: i.record.id,
                task: i.record.task.clone(),
                requirement: match &i.record.label {
                    None => Requirement::AnyNode,
                    Some(e) => Requirement::Label(e.clone()),
                },
                in_queue_since_ms: c.wall_ms(i.record.submitted_at),
            })
            .collect();
        Ok(Demand {
            items,
            unattributed: Vec::new(),
        })
    }

    async fn nodes(&self) -> Result<Vec<JenkinsNode>, JenkinsError> {
        let (mut c, _) = self.now();
        c.stats.nodes_calls += 1;
        Ok(c.nodes
            .iter()
            .filter_map(|(name, n)| {
                let marker = NodeMarker::parse(&n.description).filter(|m| m.owner == self.owner)?;
                Some(JenkinsNode {
                    name: name.clone(),
                    marker,
                    executors: n.executors,
                    offline: !n.online() || n.temporarily_offline,
                    temporarily_offline: n.temporarily_offline,
                    busy_executors: n.running.len() as u32,
                    current_builds: n
                        .running
                        .iter()
                        .filter_map(|id| c.items.get(id)?.record.url.clone())
                        .collect(),
                })
            })
            .collect())
    }

    async fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError> {
        let (mut c, now) = self.now();
        c.stats.create_calls += 1;
        check_good_name(&spec.name).map_err(|message| JenkinsError::BadRequest { message })?;
        if spec.executors == 0 {
            return Err(JenkinsError::BadRequest {
                message: "numExecutors must be at least 1".into(),
            });
        }
        if c.nodes.contains_key(&spec.name) {
            return Err(JenkinsError::Conflict {
                message: format!("Agent called ‘{}’ already exists", spec.name),
            });
        }
        let n = node(
            &spec.name,
            &spec.labels,
            spec.executors,
            spec.mode,
            spec.marker.to_description(),
        );
        c.nodes.insert(spec.name.clone(), n);
        c.assign(now);
        Ok(())
    }

    async fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError> {
        let (mut c, _) = self.now();
        c.stats.secret_calls += 1;
        if !c.nodes.contains_key(name) {
            return Err(JenkinsError::NotFound {
                what: format!("node `{name}`"),
            });
        }
        Ok(c.secret_for(name))
    }

    async fn drain_node(&self, name: &str, _reason: &str) -> Result<(), JenkinsError> {
        let (mut c, _) = self.now();
        c.stats.drain_calls += 1;
        match self.check_owned(&mut c, name)? {
            None => Err(JenkinsError::NotFound {
                what: format!("node `{name}`"),
            }),
            Some(n) => {
                n.temporarily_offline = true;
                Ok(())
            }
        }
    }

    async fn delete_node(&self, name: &str) -> Result<(), JenkinsError> {
        let (mut c, now) = self.now();
        c.stats.delete_calls += 1;
        if self.check_owned(&mut c, name)?.is_none() {
            return Ok(());
        }
        if let Some(n) = c.nodes.remove(name) {
            c.forget_session_of(&n);
            for id in n.running {
                c.abort(
                    id,
                    now,
                    format!("agent `{name}` was deleted during the build"),
                );
            }
        }
        c.assign(now);
        Ok(())
    }

    async fn report_template_problem(
        &self,
        template: &str,
        problem: Option<&str>,
    ) -> Result<(), JenkinsError> {
        let key = (self.owner.as_str().to_owned(), template.to_owned());
        let mut c = self.lock();
        match problem {
            Some(text) => c.problems.insert(key, text.to_owned()),
            None => c.problems.remove(&key),
        };
        Ok(())
    }
}
