//! The configuration file: one YAML document, read with line numbers and
//! validated as a whole so that every problem is reported at once.
//!
//! [`Config::load`] reads and checks a file; [`Config::parse`] does the same for
//! text. A [`ConfigError`] lists each [`Problem`] with the file, line and field.
//! The Jenkins API token is never in the file: `jenkins.token_env` names an
//! environment variable, `jenkins.token_file` a file; it is read only when a
//! command talks to Jenkins ([`JenkinsSettings::token`]).

mod raw;
pub mod yaml;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jenkins_cloud_core::backend::{AgentTransport, JenkinsEndpoint, OwnerId};
use jenkins_cloud_core::jenkins::client::DemandMode;
use jenkins_cloud_core::label::LabelExpr;
use jenkins_cloud_core::template::AgentTemplate;
use jenkins_cloud_core::Secret;

pub use raw::{CloudKind, OnShutdown, StrategyKind};

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field (`clouds[0].templates[1].executors`), or empty for the document.
    pub field: String,
    /// Line in the file (1-based), when known.
    pub line: Option<u64>,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<text>`).
    pub file: String,
    /// The problems, in document order where known.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            let line = p.line.map(|l| format!(":{l}")).unwrap_or_default();
            let field = if p.field.is_empty() {
                String::new()
            } else {
                format!(" {}:", p.field)
            };
            write!(f, "\n  {}{line}:{field} {}", self.file, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Where the Jenkins API token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable.
    Env(String),
    /// A file (trailing whitespace is trimmed).
    File(PathBuf),
    /// Written in the configuration (only with `allow_inline_token: true`).
    Inline(Secret),
}

/// The `jenkins` section.
#[derive(Debug, Clone)]
pub struct JenkinsSettings {
    /// Controller URL.
    pub url: String,
    /// The URL agents connect to (default: `url`).
    pub agent_url: String,
    /// TCP tunnel `host:port` instead of WebSocket.
    pub tunnel: Option<String>,
    /// Jenkins user id.
    pub user: String,
    /// Where the API token comes from.
    pub token: TokenSource,
    /// Plain HTTP to a non-loopback host allowed.
    pub allow_insecure_http: bool,
    /// How demand is read.
    pub demand_mode: DemandMode,
}

impl JenkinsSettings {
    /// Reads the API token from its source. The error names the source, never the value.
    pub fn token(&self) -> Result<Secret, String> {
        let value = match &self.token {
            TokenSource::Inline(s) => return Ok(s.clone()),
            TokenSource::Env(var) => std::env::var(var).map_err(|_| {
                format!("jenkins.token_env: environment variable `{var}` is not set")
            })?,
            TokenSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                format!("jenkins.token_file: cannot read `{}`: {e}", path.display())
            })?,
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err("jenkins: the API token is empty".to_owned());
        }
        Ok(Secret::new(value))
    }

    /// Where agents connect.
    pub fn endpoint(&self) -> JenkinsEndpoint {
        let mut url = self.agent_url.clone();
        if !url.ends_with('/') {
            url.push('/');
        }
        JenkinsEndpoint {
            url,
            transport: match &self.tunnel {
                Some(t) => AgentTransport::Tunnel(t.clone()),
                None => AgentTransport::WebSocket,
            },
        }
    }
}

/// One cloud: a backend and its templates.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    /// Name (unique).
    pub name: String,
    /// Backend kind.
    pub kind: CloudKind,
    /// AWS region (`None`: the SDK's default chain).
    pub region: Option<String>,
    /// AWS endpoint override (emulators, VPC endpoints).
    pub endpoint_url: Option<String>,
    /// AWS account id, for ARNs in `iam-policy` (`*` when absent).
    pub account_id: Option<String>,
    /// ECS clusters (Fargate).
    pub clusters: Vec<String>,
    /// Task-definition family prefix (Fargate).
    pub family_prefix: String,
    /// Resolved templates, in priority order, with the defaults merged in.
    pub templates: Vec<AgentTemplate>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub file: String,
    /// Owner id of every node and cloud resource.
    pub owner: OwnerId,
    /// The controller.
    pub jenkins: JenkinsSettings,
    /// Provisioning strategy.
    pub strategy: StrategyKind,
    /// Most agents across all templates.
    pub global_cap: Option<u32>,
    /// Most agents matching each label expression.
    pub label_caps: Vec<(LabelExpr, u32)>,
    /// Time between reconcile passes.
    pub poll_interval: Duration,
    /// Grace before a node without a resource (or the reverse) is an orphan.
    pub orphan_grace: Duration,
    /// Address of `/metrics` and `/healthz` (`None`: no listener).
    pub metrics_address: Option<SocketAddr>,
    /// What SIGTERM does to agents.
    pub on_shutdown: OnShutdown,
    /// Clouds, in priority order.
    pub clouds: Vec<CloudSettings>,
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![Problem {
                field: String::new(),
                line: None,
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        Self::parse(&text, &file)
    }

    /// Checks configuration text; `file` names it in problems.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        raw::check(text, file)
    }

    /// Every template with the index of its cloud, in priority order.
    pub fn templates(&self) -> impl Iterator<Item = (usize, &AgentTemplate)> {
        self.clouds
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.templates.iter().map(move |t| (i, t)))
    }
}

#[cfg(test)]
mod tests;
