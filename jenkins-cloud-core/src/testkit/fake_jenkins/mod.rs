//! A protocol-faithful fake Jenkins controller over HTTP (axum, 127.0.0.1).
//!
//! It serves the endpoints [`crate::jenkins::client::JenkinsClient`] uses, with
//! Jenkins' shapes and quirks: default-depth Pipeline placeholder tasks without a
//! name, `why` texts with typographic quotes (a node name instead of the label
//! when exactly one node carries it), `discoverableItems` stubs for items the user
//! may not read, 302 on success, 400 with `X-Error` on duplicate or invalid
//! names, 401 on a bad token, 403 without the permission or (session mode)
//! without a valid crumb, secrets as HMAC-SHA256 of the node name (64 hex), and
//! `X-Jenkins` on every response. XML node creation exists only from 2.539 on;
//! the form path applies `checkGoodName`, the XML path does not.
//!
//! Tests drive it from Rust: queue builds ([`FakeJenkins::queue_freestyle`],
//! [`FakeJenkins::queue_pipeline`]), connect agents with `(name, secret)`
//! ([`FakeJenkins::connect_agent`]), finish builds, inspect nodes and the queue,
//! and inject faults ([`Faults`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::label::{LabelExpr, LabelSet};
use crate::template::NodeMode;

mod http;
mod queue;

/// Overall/Administer: implies every other permission, and the script console.
pub const ADMINISTER: &str = "Overall/Administer";
/// Agent/Create.
pub const AGENT_CREATE: &str = "Agent/Create";
/// Agent/Connect (read the JNLP file with the secret).
pub const AGENT_CONNECT: &str = "Agent/Connect";
/// Agent/Delete.
pub const AGENT_DELETE: &str = "Agent/Delete";
/// Agent/Disconnect (mark temporarily offline).
pub const AGENT_DISCONNECT: &str = "Agent/Disconnect";

/// A user with an API token and permissions (Overall/Read is implied).
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// User id.
    pub name: String,
    /// API token.
    pub token: String,
    /// Permissions such as [`AGENT_CREATE`]; [`ADMINISTER`] implies all.
    pub permissions: Vec<&'static str>,
}

impl FakeUser {
    /// An administrator.
    pub fn admin(name: &str, token: &str) -> Self {
        Self::with(name, token, &[ADMINISTER])
    }

    /// A user with the given permissions.
    pub fn with(name: &str, token: &str, permissions: &[&'static str]) -> Self {
        Self {
            name: name.into(),
            token: token.into(),
            permissions: permissions.to_vec(),
        }
    }

    /// A user with every agent permission but not Overall/Administer.
    pub fn agent_manager(name: &str, token: &str) -> Self {
        Self::with(
            name,
            token,
            &[AGENT_CREATE, AGENT_CONNECT, AGENT_DELETE, AGENT_DISCONNECT],
        )
    }

    pub(crate) fn has(&self, permission: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| *p == permission || *p == ADMINISTER)
    }
}

/// Settings of a [`FakeJenkins`].
#[derive(Debug, Clone)]
pub struct FakeJenkinsConfig {
    /// The `X-Jenkins` version (decides whether XML creation exists).
    pub version: String,
    /// Users and tokens.
    pub users: Vec<FakeUser>,
    /// Session mode: POSTs need the crumb of the caller's `JSESSIONID` session.
    pub session_mode: bool,
    /// Builds finish by themselves after this long (tokio time); `None`: only
    /// through [`FakeJenkins::finish_build`].
    pub build_duration: Option<Duration>,
    /// The key agent secrets are derived from.
    pub controller_key: Vec<u8>,
}

impl Default for FakeJenkinsConfig {
    fn default() -> Self {
        Self {
            version: "2.541.1".into(),
            users: vec![FakeUser::admin(
                "admin",
                "11aa22bb33cc44dd55ee66ff77889900aa",
            )],
            session_mode: false,
            build_duration: None,
            controller_key: b"fake-jenkins-controller-key".to_vec(),
        }
    }
}

/// Fault injection knobs, applied before authentication.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer the next N requests with a 503 HTML page.
    pub html_503_next: u32,
    /// Answer the next N JSON requests with 200 and truncated JSON.
    pub invalid_json_next: u32,
    /// Delay every response by this much.
    pub delay: Option<Duration>,
}

/// A node as the fake stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeNode {
    /// Name.
    pub name: String,
    /// Description (holds our marker).
    pub description: String,
    /// Labels (the self-label, the name, is implied).
    pub labels: LabelSet,
    /// Executors.
    pub executors: u32,
    /// NORMAL or EXCLUSIVE.
    pub mode: NodeMode,
    /// Remote root directory.
    pub remote_fs: String,
    /// WebSocket launcher.
    pub web_socket: bool,
    /// Marked temporarily offline.
    pub temporarily_offline: bool,
    /// The offline message given when marked offline.
    pub offline_reason: Option<String>,
    /// The open agent connection, if any.
    pub connection: Option<u64>,
    /// How it was created: `"form"` or `"xml"`.
    pub created_via: &'static str,
}

impl FakeNode {
    /// Whether Jenkins would call it offline (not connected, or marked offline).
    pub fn is_offline(&self) -> bool {
        self.connection.is_none() || self.temporarily_offline
    }

    fn all_labels(&self) -> LabelSet {
        self.labels
            .iter()
            .map(str::to_owned)
            .chain(std::iter::once(self.name.clone()))
            .collect()
    }

    /// `Node.canTake` for the label part: no label only on NORMAL nodes; a label
    /// expression must match the node's labels (its name included).
    pub fn can_take(&self, label: Option<&LabelExpr>) -> bool {
        match label {
            None => self.mode == NodeMode::Normal,
            Some(expr) => expr.matches(&self.all_labels()),
        }
    }
}

/// What a queued item runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    /// A freestyle job.
    Freestyle,
    /// A Pipeline `node(label)` step of run `#run`.
    Pipeline {
        /// The Pipeline run number.
        run: u32,
    },
}

/// A queued item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeItem {
    /// Queue id.
    pub id: u64,
    /// Job name.
    pub job: String,
    /// Freestyle or Pipeline.
    pub kind: TaskKind,
    /// The assigned label, if any.
    pub label: Option<LabelExpr>,
    /// Milliseconds since the epoch.
    pub in_queue_since_ms: u64,
    /// Only administrators may read it (others see a `discoverableItems` stub).
    pub hidden: bool,
}

impl FakeItem {
    /// The task name as Jenkins shows it.
    pub fn task_name(&self) -> String {
        match self.kind {
            TaskKind::Freestyle => self.job.clone(),
            TaskKind::Pipeline { run } => format!("part of {} #{run}", self.job),
        }
    }
}

/// A running build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeBuild {
    /// Unique build id within the fake.
    pub id: u64,
    /// The queue item it came from.
    pub queue_id: u64,
    /// Job name.
    pub job: String,
    /// Build number.
    pub number: u32,
    /// The node it runs on.
    pub node: String,
    /// Build URL relative to the root (`job/x/3/`).
    pub url: String,
}

/// Why an agent connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// No such node.
    #[error("no node `{0}`")]
    UnknownNode(String),
    /// The secret does not match.
    #[error("wrong secret for `{0}`")]
    WrongSecret(String),
    /// Another connection for the name is open.
    #[error("`{0}` is already connected")]
    AlreadyConnected(String),
}

#[derive(Debug)]
pub(crate) struct State {
    pub config: FakeJenkinsConfig,
    pub nodes: BTreeMap<String, FakeNode>,
    pub queue: Vec<FakeItem>,
    pub builds: Vec<FakeBuild>,
    pub faults: Faults,
    pub sessions: HashMap<String, String>,
    pub next_id: u64,
    pub numbers: HashMap<String, u32>,
    pub requests: u64,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn secret_for(&self, name: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.config.controller_key).expect("any key length");
        mac.update(name.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A running fake controller. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeJenkins {
    shared: Shared,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeJenkins {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An open agent connection from [`FakeJenkins::connect_agent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConnection {
    /// The node name.
    pub name: String,
    /// Connection id.
    pub id: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl FakeJenkins {
    /// Binds 127.0.0.1 on a free port and serves. Panics if it cannot bind.
    pub async fn start(config: FakeJenkinsConfig) -> Self {
        let shared: Shared = Arc::new(Mutex::new(State {
            config,
            nodes: BTreeMap::new(),
            queue: Vec::new(),
            builds: Vec::new(),
            faults: Faults::default(),
            sessions: HashMap::new(),
            next_id: 0,
            numbers: HashMap::new(),
            requests: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Jenkins: bind 127.0.0.1:0");
        let url = format!("http://{}/", listener.local_addr().expect("local addr"));
        let app = http::router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            shared,
            url,
            server,
        }
    }

    /// The root URL, ending in `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Changes the `X-Jenkins` version.
    pub fn set_version(&self, version: &str) {
        lock(&self.shared).config.version = version.into();
    }

    /// Turns session (crumb) mode on or off.
    pub fn set_session_mode(&self, on: bool) {
        lock(&self.shared).config.session_mode = on;
    }

    /// Adds a user.
    pub fn add_user(&self, user: FakeUser) {
        lock(&self.shared).config.users.push(user);
    }

    /// Replaces the fault knobs.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared).faults = faults;
    }

    /// Requests served so far (including refused ones).
    pub fn request_count(&self) -> u64 {
        lock(&self.shared).requests
    }

    /// The secret Jenkins gives node `name`: HMAC-SHA256(key, name), 64 hex.
    pub fn secret_for(&self, name: &str) -> String {
        lock(&self.shared).secret_for(name)
    }

    /// Queues a freestyle build of `job` with label expression `label` (blank: none).
    /// Panics on an invalid expression (test input).
    pub fn queue_freestyle(&self, job: &str, label: &str) -> u64 {
        self.queue(job, label, false, false)
    }

    /// Queues a Pipeline `node(label)` step of a new run of `job`.
    pub fn queue_pipeline(&self, job: &str, label: &str) -> u64 {
        self.queue(job, label, true, false)
    }

    /// Queues a freestyle build only administrators may read.
    pub fn queue_hidden(&self, job: &str, label: &str) -> u64 {
        self.queue(job, label, false, true)
    }

    fn queue(&self, job: &str, label: &str, pipeline: bool, hidden: bool) -> u64 {
        let label = LabelExpr::parse_optional(label).expect("test label expression");
        let started = {
            let mut s = lock(&self.shared);
            let id = s.next_id();
            let kind = if pipeline {
                let n = s.numbers.entry(job.to_owned()).or_insert(0);
                *n += 1;
                TaskKind::Pipeline { run: *n }
            } else {
                TaskKind::Freestyle
            };
            s.queue.push(FakeItem {
                id,
                job: job.into(),
                kind,
                label,
                in_queue_since_ms: now_ms(),
                hidden,
            });
            let started = queue::maintain(&mut s);
            (id, started)
        };
        queue::spawn_timers(&self.shared, started.1);
        started.0
    }

    /// Connects an agent as `name` with `secret`, as remoting would.
    pub fn connect_agent(&self, name: &str, secret: &str) -> Result<AgentConnection, ConnectError> {
        let started;
        let conn = {
            let mut s = lock(&self.shared);
            let expected = s.secret_for(name);
            let id = s.next_id();
            let node = s
                .nodes
                .get_mut(name)
                .ok_or_else(|| ConnectError::UnknownNode(name.into()))?;
            if secret != expected {
                return Err(ConnectError::WrongSecret(name.into()));
            }
            if node.connection.is_some() {
                return Err(ConnectError::AlreadyConnected(name.into()));
            }
            node.connection = Some(id);
            started = queue::maintain(&mut s);
            AgentConnection {
                name: name.into(),
                id,
            }
        };
        queue::spawn_timers(&self.shared, started);
        Ok(conn)
    }

    /// Closes an agent connection; builds running on it are aborted.
    pub fn disconnect(&self, conn: &AgentConnection) {
        let mut s = lock(&self.shared);
        if let Some(node) = s.nodes.get_mut(&conn.name) {
            if node.connection == Some(conn.id) {
                node.connection = None;
                s.builds.retain(|b| b.node != conn.name);
            }
        }
    }

    /// Finishes a running build; `false` if it is not running. Frees the executor
    /// and schedules waiting items.
    pub fn finish_build(&self, build_id: u64) -> bool {
        queue::finish(&self.shared, build_id)
    }

    /// The running builds.
    pub fn builds(&self) -> Vec<FakeBuild> {
        lock(&self.shared).builds.clone()
    }

    /// The nodes, by name.
    pub fn nodes(&self) -> Vec<FakeNode> {
        lock(&self.shared).nodes.values().cloned().collect()
    }

    /// One node.
    pub fn node(&self, name: &str) -> Option<FakeNode> {
        lock(&self.shared).nodes.get(name).cloned()
    }

    /// Adds a node directly (a static agent, or one created by someone else).
    pub fn add_node(&self, node: FakeNode) {
        lock(&self.shared).nodes.insert(node.name.clone(), node);
    }

    /// The queued items.
    pub fn queue_items(&self) -> Vec<FakeItem> {
        lock(&self.shared).queue.clone()
    }

    /// The `why` Jenkins would show for a queued item now.
    pub fn why(&self, id: u64) -> Option<String> {
        let s = lock(&self.shared);
        s.queue
            .iter()
            .find(|i| i.id == id)
            .map(|i| queue::why(&s, i))
    }
}

impl FakeNode {
    /// A node with one executor, NORMAL mode, no connection.
    pub fn new(name: &str, labels: &str) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            labels: LabelSet::parse(labels),
            executors: 1,
            mode: NodeMode::Normal,
            remote_fs: "/home/jenkins".into(),
            web_socket: true,
            temporarily_offline: false,
            offline_reason: None,
            connection: None,
            created_via: "test",
        }
    }
}
