//! A shared moto (AWS emulator) server for backend tests.
//!
//! `./scripts/test` installs `moto[server]` into `.venv`, starts one server on a
//! free loopback port and exports `MOTO_ENDPOINT`. When a test binary runs
//! without it (say `cargo test -p jenkins-cloud-fargate` by hand), the fixture
//! starts its own server from `<workspace>/.venv/bin/moto_server`, with a
//! watchdog that stops it when the test process exits. If neither exists the
//! test **fails** with a message saying how to install moto: tests that need
//! moto are never skipped.
//!
//! Tests share the server and stay isolated through accounts: each test takes
//! [`MotoServer::fresh_account_id`] and sends it as the `x-moto-account-id`
//! header (an SDK interceptor in the backend crates does that).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::OnceCell;

/// Environment variable holding the endpoint of a running moto server.
pub const MOTO_ENDPOINT_VAR: &str = "MOTO_ENDPOINT";

/// Header moto reads to pick the account a request acts in.
pub const ACCOUNT_HEADER: &str = "x-moto-account-id";

/// A running moto server.
#[derive(Debug)]
pub struct MotoServer {
    endpoint: String,
}

static SERVER: OnceCell<MotoServer> = OnceCell::const_new();
static NEXT_ACCOUNT: AtomicU32 = AtomicU32::new(1);

/// The shared moto server, started on first use if `MOTO_ENDPOINT` is not set.
///
/// # Panics
/// When moto is neither running nor installed: the panic says how to install it.
pub async fn moto() -> &'static MotoServer {
    SERVER
        .get_or_init(|| async {
            let endpoint = match std::env::var(MOTO_ENDPOINT_VAR) {
                Ok(endpoint) if !endpoint.is_empty() => endpoint,
                _ => spawn_local_server(),
            };
            let server = MotoServer {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
            };
            server.wait_ready().await;
            server.keep_ecs_tasks_running().await;
            server
        })
        .await
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A moto server of this test's own (not shared), started from `.venv` with
/// extra environment, e.g. `INITIAL_NO_AUTH_ACTION_COUNT` to enforce IAM
/// after the first N requests. Ready when returned; stopped when the test
/// process exits. ECS tasks stay RUNNING until stopped.
///
/// # Panics
/// When moto is not installed in `.venv` (run `./scripts/test` once).
pub async fn own_moto(env: &[(&str, &str)]) -> MotoServer {
    let server = MotoServer {
        endpoint: spawn_server(env),
    };
    server.wait_ready().await;
    server.keep_ecs_tasks_running().await;
    server
}

fn spawn_local_server() -> String {
    spawn_server(&[])
}

fn spawn_server(env: &[(&str, &str)]) -> String {
    let bin = workspace_root().join(".venv/bin/moto_server");
    assert!(
        bin.exists(),
        "moto is missing: {MOTO_ENDPOINT_VAR} is not set and {} does not exist. \
         Run ./scripts/test (it installs moto[server] into .venv and starts it), \
         or set {MOTO_ENDPOINT_VAR} to a running moto server.",
        bin.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port for moto");
    // The watchdog shell stops moto once this test process is gone.
    let vars: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    let script = format!(
        "{vars}'{bin}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
        bin = bin.display(),
        parent = std::process::id()
    );
    // Not waited for: the watchdog shell outlives nothing but this process.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    format!("http://127.0.0.1:{port}")
}

impl MotoServer {
    /// The server's base URL, `http://127.0.0.1:PORT`, for SDK endpoint overrides.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A 12-digit account id no other test of this process uses.
    pub fn fresh_account_id(&self) -> String {
        let n = NEXT_ACCOUNT.fetch_add(1, Ordering::Relaxed);
        format!("{:05}{:07}", std::process::id() % 100_000, n)
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let url = format!("{}/moto-api/", self.endpoint);
        for _ in 0..300 {
            if let Ok(resp) = client.get(&url).send().await {
                if resp.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto at {} did not answer within 30 s", self.endpoint);
    }

    /// ECS tasks stay RUNNING until stopped (moto otherwise advances a task one
    /// state per DescribeTasks).
    async fn keep_ecs_tasks_running(&self) {
        self.set_transition(
            r#"{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000}}"#,
        )
        .await;
    }

    /// Posts a state-manager transition (`/moto-api/state-manager/set-transition`).
    ///
    /// # Panics
    /// If moto refuses it.
    pub async fn set_transition(&self, body: &str) {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/moto-api/state-manager/set-transition",
                self.endpoint
            ))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("moto state-manager request");
        assert!(
            resp.status().is_success(),
            "moto refused transition {body}: {}",
            resp.status()
        );
    }
}
