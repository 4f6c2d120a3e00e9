//! The in-memory controller's state and its discrete-event engine: agent
//! connections, build starts and finishes, processed in time order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::time::Instant;

use crate::label::{LabelExpr, LabelSet};
use crate::secret::Secret;
use crate::template::NodeMode;

/// How a build ended (or that it has not yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// Still in the queue.
    Queued,
    /// Running on a node.
    Running,
    /// Finished its full duration.
    Succeeded,
    /// Aborted: its agent went away (the reason says how).
    Aborted(String),
}

/// One queue item and, once started, its build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecord {
    /// Queue item id.
    pub id: u64,
    /// Task name.
    pub task: String,
    /// The label it asked for.
    pub label: Option<LabelExpr>,
    /// When it entered the queue.
    pub submitted_at: Instant,
    /// When it started on a node.
    pub started_at: Option<Instant>,
    /// When it finished or was aborted.
    pub finished_at: Option<Instant>,
    /// The node it ran on.
    pub node: Option<String>,
    /// The build's (fake) URL, `job/<task>/<n>/`.
    pub url: Option<String>,
    /// Where it stands.
    pub outcome: BuildOutcome,
    /// The item this one retries, when re-queued after an agent loss.
    pub retry_of: Option<u64>,
}

impl BuildRecord {
    /// Time spent in the queue (until now if it has not started).
    pub fn wait(&self, now: Instant) -> Duration {
        self.started_at
            .unwrap_or(now)
            .saturating_duration_since(self.submitted_at)
    }
}

/// An agent connection the controller refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedConnection {
    /// The node name the agent asked for.
    pub node: String,
    /// Why: `no such node`, `wrong secret`, `already connected`.
    pub reason: String,
    /// When.
    pub at: Instant,
}

/// Counters of a [`MemoryJenkins`](super::MemoryJenkins) controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JenkinsStats {
    /// `demand` calls.
    pub demand_calls: u64,
    /// `nodes` calls.
    pub nodes_calls: u64,
    /// `create_node` calls (successful or not).
    pub create_calls: u64,
    /// `agent_secret` calls.
    pub secret_calls: u64,
    /// `drain_node` calls.
    pub drain_calls: u64,
    /// `delete_node` calls.
    pub delete_calls: u64,
    /// Items submitted (retries included).
    pub submitted: u64,
    /// Builds started.
    pub builds_started: u64,
    /// Builds finished normally.
    pub builds_succeeded: u64,
    /// Builds aborted because their agent went away.
    pub builds_aborted: u64,
    /// Aborted builds re-queued (`retry_on_agent_loss`).
    pub requeued: u64,
    /// Agent connections accepted.
    pub connects: u64,
    /// Agent connections refused.
    pub refused: u64,
}

pub(super) struct Node {
    pub(super) labels: LabelSet,
    pub(super) executors: u32,
    pub(super) mode: NodeMode,
    pub(super) description: String,
    pub(super) temporarily_offline: bool,
    /// Connected through a session, or a static node (always online).
    pub(super) session: Option<u64>,
    pub(super) is_static: bool,
    pub(super) running: BTreeSet<u64>,
}

impl Node {
    pub(super) fn online(&self) -> bool {
        self.is_static || self.session.is_some()
    }

    fn accepts(&self, label: Option<&LabelExpr>) -> bool {
        self.online()
            && !self.temporarily_offline
            && (self.running.len() as u32) < self.executors
            && match label {
                None => self.mode == NodeMode::Normal,
                Some(e) => e.matches(&self.labels),
            }
    }
}

struct Session {
    node: String,
    secret: Secret,
    connect_at: Instant,
    disconnect_at: Option<Instant>,
    connected: bool,
}

pub(super) struct Item {
    pub(super) record: BuildRecord,
    duration: Duration,
    retry_on_agent_loss: bool,
}

enum Event {
    Finish(u64),
    End(u64),
    Connect(u64),
}

pub(super) struct Controller {
    epoch: SystemTime,
    base: Instant,
    pub(super) key: Vec<u8>,
    clock: Instant,
    pub(super) nodes: BTreeMap<String, Node>,
    pub(super) items: BTreeMap<u64, Item>,
    queue: BTreeSet<u64>,
    /// Running builds by finish time.
    finishing: BTreeSet<(Instant, u64)>,
    next_item: u64,
    sessions: BTreeMap<u64, Session>,
    next_session: u64,
    /// Template problems shown by each owner: (owner, template) → text.
    pub(super) problems: BTreeMap<(String, String), String>,
    build_numbers: BTreeMap<String, u64>,
    pub(super) refused: Vec<RefusedConnection>,
    pub(super) stats: JenkinsStats,
}

impl Controller {
    pub(super) fn new(epoch: SystemTime, key: Vec<u8>) -> Self {
        let now = Instant::now();
        Self {
            epoch,
            base: now,
            key,
            clock: now,
            nodes: BTreeMap::new(),
            items: BTreeMap::new(),
            queue: BTreeSet::new(),
            finishing: BTreeSet::new(),
            next_item: 1,
            sessions: BTreeMap::new(),
            next_session: 1,
            problems: BTreeMap::new(),
            build_numbers: BTreeMap::new(),
            refused: Vec::new(),
            stats: JenkinsStats::default(),
        }
    }

    /// Milliseconds since the Unix epoch of a tokio instant.
    pub(super) fn wall_ms(&self, at: Instant) -> u64 {
        let wall = self.epoch + at.saturating_duration_since(self.base);
        wall.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// HMAC-SHA256 of the node name under the controller key, in hex.
    pub(super) fn secret_for(&self, name: &str) -> Secret {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(name.as_bytes());
        Secret::new(hex::encode(mac.finalize().into_bytes()))
    }

    pub(super) fn queued(&self) -> impl Iterator<Item = &Item> {
        self.queue.iter().filter_map(|id| self.items.get(id))
    }

    /// Processes every event due up to `now` in time order, assigning queued
    /// items after each, then once more at `now`.
    pub(super) fn advance(&mut self, now: Instant) {
        while let Some((at, event)) = self.next_event(now) {
            self.clock = self.clock.max(at);
            match event {
                Event::Finish(id) => self.finish(id, at),
                Event::End(sid) => self.end_session(sid, at),
                Event::Connect(sid) => self.connect(sid, at),
            }
            self.assign(at);
        }
        self.clock = self.clock.max(now);
        self.assign(self.clock);
    }

    fn next_event(&self, now: Instant) -> Option<(Instant, Event)> {
        let mut best: Option<((Instant, u8, u64), Event)> = None;
        let mut offer = |key: (Instant, u8, u64), e: Event| {
            if key.0 <= now && best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, e));
            }
        };
        if let Some(&(at, id)) = self.finishing.first() {
            offer((at, 0, id), Event::Finish(id));
        }
        for (&sid, s) in &self.sessions {
            match s.disconnect_at {
                Some(at) if s.connected || at <= s.connect_at => {
                    offer((at, 1, sid), Event::End(sid))
                }
                _ if !s.connected => offer((s.connect_at, 2, sid), Event::Connect(sid)),
                _ => {}
            }
        }
        best.map(|((at, _, _), e)| (at, e))
    }

    fn finish(&mut self, id: u64, at: Instant) {
        let Some(item) = self.items.get_mut(&id) else {
            return;
        };
        self.finishing.remove(&(at, id));
        item.record.outcome = BuildOutcome::Succeeded;
        item.record.finished_at = Some(at);
        if let Some(node) = item
            .record
            .node
            .as_ref()
            .and_then(|n| self.nodes.get_mut(n))
        {
            node.running.remove(&id);
        }
        self.stats.builds_succeeded += 1;
    }

    fn connect(&mut self, sid: u64, at: Instant) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let name = session.node.clone();
        let expected = self.secret_for(&name);
        let refusal = match self.nodes.get(&name) {
            None => Some("no such node"),
            Some(_) if session.secret != expected => Some("wrong secret"),
            Some(n) if n.online() => Some("already connected"),
            Some(_) => None,
        };
        match refusal {
            Some(reason) => {
                self.sessions.remove(&sid);
                self.stats.refused += 1;
                self.refused.push(RefusedConnection {
                    node: name,
                    reason: reason.to_owned(),
                    at,
                });
            }
            None => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.connected = true;
                }
                if let Some(n) = self.nodes.get_mut(&name) {
                    n.session = Some(sid);
                }
                self.stats.connects += 1;
            }
        }
    }

    fn end_session(&mut self, sid: u64, at: Instant) {
        let Some(session) = self.sessions.remove(&sid) else {
            return;
        };
        if !session.connected {
            return;
        }
        if let Some(node) = self.nodes.get_mut(&session.node) {
            if node.session == Some(sid) {
                node.session = None;
                let running = std::mem::take(&mut node.running);
                for id in running {
                    self.abort(
                        id,
                        at,
                        format!("agent `{}` went offline during the build", session.node),
                    );
                }
            }
        }
    }

    /// Aborts a running build (the caller removed it from its node) and
    /// re-queues it when the submission asked for a retry.
    pub(super) fn abort(&mut self, id: u64, at: Instant, reason: String) {
        let Some(item) = self.items.get_mut(&id) else {
            return;
        };
        if let Some(started) = item.record.started_at {
            self.finishing.remove(&(started + item.duration, id));
        }
        item.record.outcome = BuildOutcome::Aborted(reason);
        item.record.finished_at = Some(at);
        self.stats.builds_aborted += 1;
        if item.retry_on_agent_loss {
            let (task, label, duration) = (
                item.record.task.clone(),
                item.record.label.clone(),
                item.duration,
            );
            self.stats.requeued += 1;
            self.enqueue(task, label, duration, true, Some(id), at);
        }
    }

    pub(super) fn enqueue(
        &mut self,
        task: String,
        label: Option<LabelExpr>,
        duration: Duration,
        retry_on_agent_loss: bool,
        retry_of: Option<u64>,
        at: Instant,
    ) -> u64 {
        let id = self.next_item;
        self.next_item += 1;
        self.stats.submitted += 1;
        let record = BuildRecord {
            id,
            task,
            label,
            submitted_at: at,
            started_at: None,
            finished_at: None,
            node: None,
            url: None,
            outcome: BuildOutcome::Queued,
            retry_of,
        };
        self.items.insert(
            id,
            Item {
                record,
                duration,
                retry_on_agent_loss,
            },
        );
        self.queue.insert(id);
        id
    }

    /// Starts queued items, oldest first, each on the first (by name) online,
    /// accepting node with a free executor whose labels match.
    pub(super) fn assign(&mut self, at: Instant) {
        if self.queue.is_empty() || !self.nodes.values().any(|n| n.accepts_any()) {
            return;
        }
        let queued: Vec<u64> = self.queue.iter().copied().collect();
        for id in queued {
            let Some(item) = self.items.get(&id) else {
                continue;
            };
            let label = item.record.label.as_ref();
            let Some(name) = self
                .nodes
                .iter()
                .find(|(_, n)| n.accepts(label))
                .map(|(k, _)| k.clone())
            else {
                continue;
            };
            let number = self
                .build_numbers
                .entry(item.record.task.clone())
                .or_insert(0);
            *number += 1;
            let url = format!("job/{}/{}/", item.record.task, number);
            let Some(item) = self.items.get_mut(&id) else {
                continue;
            };
            item.record.started_at = Some(at);
            item.record.node = Some(name.clone());
            item.record.url = Some(url);
            item.record.outcome = BuildOutcome::Running;
            self.finishing.insert((at + item.duration, id));
            self.queue.remove(&id);
            self.stats.builds_started += 1;
            if let Some(node) = self.nodes.get_mut(&name) {
                node.running.insert(id);
            }
            if !self.nodes.values().any(|n| n.accepts_any()) {
                break;
            }
        }
    }

    pub(super) fn start_session(
        &mut self,
        node: &str,
        secret: &Secret,
        connect_at: Instant,
    ) -> u64 {
        let sid = self.next_session;
        self.next_session += 1;
        self.sessions.insert(
            sid,
            Session {
                node: node.to_owned(),
                secret: secret.clone(),
                connect_at: connect_at.max(self.clock),
                disconnect_at: None,
                connected: false,
            },
        );
        sid
    }

    pub(super) fn schedule_end(&mut self, sid: u64, at: Instant) {
        let clock = self.clock;
        if let Some(s) = self.sessions.get_mut(&sid) {
            let at = at.max(clock);
            s.disconnect_at = Some(s.disconnect_at.map_or(at, |d| d.min(at)));
        }
    }

    /// Drops the agent connection of a node being deleted (builds already aborted).
    pub(super) fn forget_session_of(&mut self, node: &Node) {
        if let Some(sid) = node.session {
            self.sessions.remove(&sid);
        }
    }
}

impl Node {
    fn accepts_any(&self) -> bool {
        self.online() && !self.temporarily_offline && (self.running.len() as u32) < self.executors
    }
}
