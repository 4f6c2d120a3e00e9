//! What the loop knows about each agent, rebuilt from observations.
//!
//! The record of an agent combines three sources: what we did (launch time,
//! drains), what Jenkins says (the node), and what the cloud says (the
//! instance). After a restart only the last two exist, and they are enough:
//! the node marker carries the template and creation time, the cloud tags carry
//! the agent name and template.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{CloudId, CloudInstance, CloudState};
use crate::jenkins::JenkinsNode;
use crate::lifecycle::AgentState;

/// One agent as the reconcile loop tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Jenkins node name (also the cloud's agent tag).
    pub name: String,
    /// Template name.
    pub template: String,
    /// Lifecycle state.
    pub state: AgentState,
    /// Executors of the node.
    pub executors: u32,
    /// Busy executors at the last observation.
    pub busy_executors: u32,
    /// The cloud resource, once known.
    pub cloud_id: Option<CloudId>,
    /// The cloud's state at the last observation (`None`: not listed).
    pub cloud_state: Option<CloudState>,
    /// Whether the Jenkins node existed at the last observation (or was just created).
    pub node_exists: bool,
    /// Whether the agent has connected at least once.
    pub ever_connected: bool,
    /// Whether we (or someone) marked the node temporarily offline.
    pub draining: bool,
    /// When the launch started (tokio time; after a restart, estimated from the marker).
    pub launched_at: Instant,
    /// When the agent entered its current state.
    pub state_since: Instant,
    /// Since when the agent has been idle (connected, no build).
    pub idle_since: Option<Instant>,
    /// Builds seen running on it (URLs), to count uses.
    pub builds_seen: BTreeSet<String>,
    /// Queue items this agent was launched for (for logs).
    pub serving: Vec<u64>,
    /// When the oldest of those items entered the queue (for the provisioning
    /// latency: queue entry → agent online).
    pub queued_since: Option<Instant>,
    /// Since when a once-connected agent has been disconnected while its cloud
    /// resource runs (it may reconnect: WebSocket agents retry by themselves).
    pub disconnected_since: Option<Instant>,
    /// Whether its failure was already counted against its template's launch
    /// backoff (each agent counts once).
    pub failure_counted: bool,
}

impl Agent {
    /// A freshly requested agent.
    pub fn requested(name: String, template: String, executors: u32, now: Instant) -> Self {
        Self {
            name,
            template,
            state: AgentState::Requested,
            executors,
            busy_executors: 0,
            cloud_id: None,
            cloud_state: None,
            node_exists: false,
            ever_connected: false,
            draining: false,
            launched_at: now,
            state_since: now,
            idle_since: None,
            builds_seen: BTreeSet::new(),
            serving: Vec::new(),
            queued_since: None,
            disconnected_since: None,
            failure_counted: false,
        }
    }

    /// Moves to `next`, keeping `state_since` when the state does not change.
    /// Transitions the lifecycle forbids are ignored and reported as `false`.
    pub fn set_state(&mut self, next: AgentState, now: Instant) -> bool {
        if self.state == next {
            return true;
        }
        if !self.state.can_transition_to(&next) {
            return false;
        }
        if next == AgentState::Idle {
            self.idle_since = Some(now);
        } else if next != AgentState::Draining {
            self.idle_since = None;
        }
        self.state = next;
        self.state_since = now;
        true
    }

    /// Builds started on this agent so far.
    pub fn builds_started(&self) -> u32 {
        self.builds_seen.len() as u32
    }

    /// Whether the cloud resource is known to be gone (or was never created).
    pub fn cloud_gone(&self) -> bool {
        match &self.cloud_state {
            None => true,
            Some(s) => s.is_gone(),
        }
    }
}

/// One pass's view of Jenkins and the clouds.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Our nodes in Jenkins, by name.
    pub nodes: BTreeMap<String, JenkinsNode>,
    /// Our cloud resources, by agent name (the newest when several carry one name).
    pub instances: BTreeMap<String, CloudInstance>,
    /// Wall-clock time of the pass, milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Templates whose backend could not be listed this pass: their agents
    /// keep their records unchanged (their resources are simply unknown), and
    /// nodes of theirs found without a record are adopted but not judged.
    pub frozen: BTreeSet<String>,
}

/// Folds an observation into the agent records: adopts agents found after a
/// restart, and derives each agent's state from its node and cloud resource.
///
/// `orphan_grace` is how long a node may exist without a cloud resource (or the
/// other way round) before it counts as an orphan.
pub fn absorb(
    agents: &mut BTreeMap<String, Agent>,
    obs: &Observation,
    now: Instant,
    orphan_grace: Duration,
) {
    adopt_unknown(agents, obs, now);
    for agent in agents.values_mut() {
        if obs.frozen.contains(&agent.template) {
            continue;
        }
        let node = obs.nodes.get(&agent.name);
        let instance = obs.instances.get(&agent.name);
        agent.node_exists = node.is_some();
        if let Some(instance) = instance {
            agent.cloud_id = Some(instance.id.clone());
            agent.cloud_state = Some(instance.state.clone());
        } else if agent.cloud_id.is_some() {
            // Launched by us but not listed: right after a launch the cloud's list
            // may lag (eventual consistency); later, the cloud forgot it.
            let just_launched =
                matches!(agent.state, AgentState::Requested | AgentState::Launching)
                    && now.duration_since(agent.launched_at) < orphan_grace;
            if !just_launched {
                agent.cloud_state = Some(CloudState::Terminated);
            }
        }
        if let Some(node) = node {
            agent.executors = node.executors.max(1);
            agent.busy_executors = node.busy_executors;
            agent.draining = node.temporarily_offline;
            agent
                .builds_seen
                .extend(node.current_builds.iter().cloned());
            if node.is_connected() {
                agent.ever_connected = true;
            }
        }
        let connected = node.is_some_and(JenkinsNode::is_connected);
        if connected || !agent.ever_connected {
            agent.disconnected_since = None;
        } else if agent.disconnected_since.is_none() {
            agent.disconnected_since = Some(now);
        }
        derive_state(agent, node, now, orphan_grace);
    }
}

fn adopt_unknown(agents: &mut BTreeMap<String, Agent>, obs: &Observation, now: Instant) {
    let since_ms = |created_ms: u64| Duration::from_millis(obs.wall_ms.saturating_sub(created_ms));
    for (name, node) in &obs.nodes {
        if agents.contains_key(name) {
            continue;
        }
        let age = since_ms(node.marker.created_at_ms);
        let mut agent = Agent::requested(
            name.clone(),
            node.marker.template.clone(),
            node.executors,
            now,
        );
        agent.launched_at = now.checked_sub(age).unwrap_or(now);
        agent.state = AgentState::Launching;
        agent.node_exists = true;
        agents.insert(name.clone(), agent);
    }
    for (name, instance) in &obs.instances {
        if agents.contains_key(name) || instance.state.is_gone() {
            continue;
        }
        let mut agent = Agent::requested(name.clone(), instance.template.clone(), 1, now);
        agent.state = AgentState::Launching;
        agents.insert(name.clone(), agent);
    }
}

fn derive_state(
    agent: &mut Agent,
    node: Option<&JenkinsNode>,
    now: Instant,
    orphan_grace: Duration,
) {
    use AgentState::*;
    if matches!(agent.state, Terminating | Terminated) {
        if agent.cloud_gone() && !agent.node_exists {
            agent.set_state(Terminated, now);
        }
        return;
    }
    if let Some(CloudState::Failed(reason)) = &agent.cloud_state {
        let reason = reason.clone();
        agent.set_state(Failed(reason), now);
        return;
    }
    if matches!(agent.state, Failed(_)) {
        return;
    }
    let cloud_running = matches!(agent.cloud_state, Some(CloudState::Running));
    let cloud_pending = matches!(agent.cloud_state, Some(CloudState::Pending));
    match node {
        Some(node) if node.is_connected() && node.is_busy() => {
            agent.set_state(if agent.draining { Draining } else { Busy }, now);
        }
        // A drained node reads as offline whether or not its agent is connected
        // (Jenkins' `offline` includes temporarily offline), and a record adopted
        // after a restart has not seen it connect: draining is enough.
        Some(node) if node.is_connected() || agent.draining => {
            if agent.draining && !agent.set_state(Draining, now) {
                // Adopted (Launching/Starting) while already drained: the
                // lifecycle goes through Idle.
                agent.set_state(Idle, now);
                agent.set_state(Draining, now);
            } else if !agent.draining {
                agent.set_state(Idle, now);
            }
        }
        Some(_) if agent.ever_connected && !agent.draining => {
            // Lost its connection. While the cloud resource runs, give it the
            // grace to reconnect (it keeps its state); after that, or if the
            // resource is gone, it has failed.
            let lost_for = agent
                .disconnected_since
                .map_or(Duration::ZERO, |t| now.duration_since(t));
            if !cloud_running || lost_for >= orphan_grace {
                agent.set_state(Failed("agent disconnected".into()), now);
            }
        }
        Some(_) if cloud_running => {
            agent.set_state(Starting, now);
        }
        Some(_) if cloud_pending => {
            agent.set_state(Launching, now);
        }
        Some(_) if agent.cloud_gone() && agent.cloud_id.is_some() => {
            let reason = match &agent.cloud_state {
                Some(CloudState::Terminated) => "cloud resource stopped before the agent connected",
                _ => "cloud resource gone",
            };
            agent.set_state(Failed(reason.into()), now);
        }
        Some(_) => {
            // Node without a cloud resource: fine while a launch is in flight.
            if now.duration_since(agent.launched_at) >= orphan_grace && agent.state != Requested {
                agent.set_state(
                    Failed("node has no cloud resource (orphaned node)".into()),
                    now,
                );
            }
        }
        None if agent.state == Requested => {}
        None => {
            // Cloud resource without a node: the node was deleted (by us or an operator).
            if agent.cloud_gone() {
                agent.set_state(Failed("node and cloud resource are gone".into()), now);
            } else if now.duration_since(agent.launched_at) >= orphan_grace || agent.ever_connected
            {
                agent.set_state(
                    Failed("cloud resource has no Jenkins node (orphaned resource)".into()),
                    now,
                );
            }
        }
    }
}
