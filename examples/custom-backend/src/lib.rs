//! A complete third-party backend for jenkins-cloud, in one file: each agent is
//! a **local process** (`sleep` stands in for `java -jar agent.jar`). It passes
//! core's conformance suite (`tests/conformance.rs`) and is the model for
//! writing your own backend (Docker, Kubernetes, another cloud…).
//!
//! What a backend must do (see `jenkins_cloud_core::backend`):
//! * **own what it starts**: every resource carries owner, template and agent
//!   name (here: a JSON file per process in a state directory, the equivalent
//!   of cloud tags), and every list/describe/terminate is filtered by owner;
//! * **survive restarts**: state lives in the "cloud" (the directory), never only
//!   in memory, so a new backend for the same owner sees what an old one started;
//! * **one outcome per agent**, in order, so partial failures keep successes;
//! * **idempotent launches** by client token, idempotent terminates;
//! * **classify errors** (capacity, throttled, transient, permanent);
//! * never put the agent secret anywhere but the agent's own environment.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use jenkins_cloud_core::backend::{
    Backend, BackendError, Capabilities, CloudId, CloudInstance, CloudState, LaunchBatch,
    LaunchOutcome, OwnerId, TerminateOutcome,
};
use jenkins_cloud_core::AgentTemplate;
use serde::{Deserialize, Serialize};

/// The record kept for each process: the "tags" of the resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    owner: String,
    template: String,
    agent: String,
    client_token: String,
    pid: u32,
    stopped: bool,
    launched_at: SystemTime,
}

/// Agents as local processes, tracked in a state directory.
#[derive(Debug, Clone)]
pub struct ProcessBackend {
    owner: OwnerId,
    dir: PathBuf,
    /// Serialises launches so a client token is never used twice concurrently.
    lock: Arc<Mutex<()>>,
    fail_next: Arc<AtomicUsize>,
}

impl ProcessBackend {
    /// A backend for `owner` keeping its records in `dir` (created if missing).
    pub fn new(owner: OwnerId, dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            owner,
            dir,
            lock: Arc::new(Mutex::new(())),
            fail_next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Shares a failure counter: while above zero, each agent launch fails
    /// (capacity) and decrements it. For tests of partial failure.
    pub fn with_failures(mut self, counter: Arc<AtomicUsize>) -> Self {
        self.fail_next = counter;
        self
    }

    fn records(&self) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<Record> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    fn save(&self, r: &Record) -> Result<(), BackendError> {
        let path = self.dir.join(format!("{}.json", r.id));
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(r).map_err(|e| BackendError::permanent(e.to_string()))?;
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| BackendError::transient(format!("state dir {}: {e}", self.dir.display())))
    }

    fn instance(r: &Record) -> CloudInstance {
        let state = if r.stopped {
            CloudState::Terminated
        } else if alive(r.pid) {
            CloudState::Running
        } else {
            CloudState::Failed("agent process exited".into())
        };
        CloudInstance {
            id: CloudId(r.id.clone()),
            agent_name: r.agent.clone(),
            template: r.template.clone(),
            state,
            launched_at: Some(r.launched_at),
        }
    }

    fn launch_one(&self, batch: &LaunchBatch<'_>, i: usize) -> Result<CloudId, BackendError> {
        let agent = &batch.agents[i];
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = self
            .records()
            .into_iter()
            .find(|r| r.owner == self.owner.as_str() && r.client_token == agent.client_token)
        {
            return Ok(CloudId(r.id)); // same token: same resource
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(BackendError::capacity("injected: no process slots"));
        }
        let cmd = command_of(batch.template);
        let child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .env("JENKINS_URL", &batch.jenkins.url)
            .env("JENKINS_AGENT_NAME", &agent.agent_name)
            .env("JENKINS_SECRET", agent.secret.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BackendError::permanent(format!("cannot start `{}`: {e}", cmd[0])))?;
        let pid = child.id();
        // Reap the process when it exits (no zombies); the record outlives us.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        let r = Record {
            id: format!("proc-{pid}-{}", nonce()),
            owner: self.owner.to_string(),
            template: batch.template.name.clone(),
            agent: agent.agent_name.clone(),
            client_token: agent.client_token.clone(),
            pid,
            stopped: false,
            launched_at: SystemTime::now(),
        };
        self.save(&r)?;
        Ok(CloudId(r.id))
    }
}

fn nonce() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Whether `pid` runs (a zombie counts as gone). Linux `/proc`.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// The template's command: `spec.command`, default `sleep 3600`.
fn command_of(t: &AgentTemplate) -> Vec<String> {
    t.spec
        .get("command")
        .and_then(|c| serde_json::from_value::<Vec<String>>(c.clone()).ok())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| vec!["sleep".into(), "3600".into()])
}

#[async_trait]
impl Backend for ProcessBackend {
    fn kind(&self) -> &str {
        "process"
    }

    fn owner(&self) -> &OwnerId {
        &self.owner
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(5, 100, 100)
    }

    /// `spec`: an object with an optional `command` (non-empty list of strings).
    fn validate_template(&self, t: &AgentTemplate) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        match t.spec.as_object() {
            None if !t.spec.is_null() => problems.push("spec: must be an object".into()),
            None => {}
            Some(obj) => {
                for key in obj.keys().filter(|k| *k != "command") {
                    problems.push(format!("spec.{key}: unknown field (only `command`)"));
                }
                if let Some(c) = obj.get("command") {
                    match c.as_array() {
                        Some(a) if !a.is_empty() && a.iter().all(|v| v.is_string()) => {}
                        _ => problems.push("spec.command: a non-empty list of strings".into()),
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        let invalid = self.validate_template(batch.template).err();
        (0..batch.agents.len())
            .map(|i| LaunchOutcome {
                agent_name: batch.agents[i].agent_name.clone(),
                result: match &invalid {
                    Some(p) => Err(BackendError::permanent(p.join("; "))),
                    None => self.launch_one(&batch, i),
                },
            })
            .collect()
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        let records = self.records();
        Ok(ids
            .iter()
            .filter_map(|id| {
                records
                    .iter()
                    .find(|r| r.id == id.0 && r.owner == self.owner.as_str())
            })
            .map(Self::instance)
            .collect())
    }

    async fn terminate(&self, ids: &[CloudId], _reason: &str) -> Vec<TerminateOutcome> {
        ids.iter()
            .map(|id| {
                let found = self.records().into_iter().find(|r| r.id == id.0);
                let result = match found {
                    None => Err(BackendError::permanent(format!("unknown process `{id}`"))),
                    Some(r) if r.owner != self.owner.as_str() => Err(BackendError::permanent(
                        format!("`{id}` is not ours; left alone"),
                    )),
                    Some(r) if r.stopped => Ok(()),
                    Some(mut r) => {
                        if alive(r.pid) {
                            let _ = Command::new("kill").arg(r.pid.to_string()).status();
                        }
                        r.stopped = true;
                        self.save(&r)
                    }
                };
                TerminateOutcome {
                    id: id.clone(),
                    result,
                }
            })
            .collect()
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        Ok(self
            .records()
            .iter()
            .filter(|r| r.owner == self.owner.as_str())
            .map(Self::instance)
            .collect())
    }
}
