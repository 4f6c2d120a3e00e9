//! The configuration file: one YAML document, read with line numbers and
//! validated as a whole so that every problem is reported at once.
//!
//! [`Config::load`] reads and checks a file; [`Config::parse`] does the same for
//! text. A [`ConfigError`] lists each [`Problem`] with the file, line and field.
//! The Jenkins API token is never in the file: `jenkins.token_env` names an
//! environment variable, `jenkins.token_file` a file; it is used only when a
//! command talks to Jenkins ([`JenkinsSettings::token`]). [`Config::load`]
//! checks a `token_file` that exists (a regular file of at most
//! [`MAX_TOKEN_FILE_BYTES`], readable, not empty) by reading it and dropping
//! what it read.
//!
//! Every count has a documented maximum ([`MAX_CAP`] here, and those of
//! [`jenkins_cloud_core::template_config`]: [`MAX_EXECUTORS`],
//! [`MAX_MIN_IDLE`], [`MAX_INSTANCE_CAP`], [`MAX_USES`]); larger values are
//! refused with a problem naming the field. Text taken from the file is shown
//! with control characters escaped, and URLs without `user:password@`.
//!
//! [`MAX_EXECUTORS`]: jenkins_cloud_core::template_config::MAX_EXECUTORS
//! [`MAX_MIN_IDLE`]: jenkins_cloud_core::template_config::MAX_MIN_IDLE
//! [`MAX_INSTANCE_CAP`]: jenkins_cloud_core::template_config::MAX_INSTANCE_CAP
//! [`MAX_USES`]: jenkins_cloud_core::template_config::MAX_USES

mod checker;
pub mod interpolate;
mod jenkins;
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
use jenkins_cloud_core::template_config::escaped;
use jenkins_cloud_core::Secret;

pub use raw::{CloudKind, OnShutdown, StrategyKind};

/// Largest configuration file read: 16 MiB.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Smallest `jenkins.max_response_bytes`: 64 KiB.
pub const MIN_RESPONSE_BYTES: u64 = 64 << 10;
/// Largest `jenkins.max_response_bytes`: 1 GiB.
pub const MAX_RESPONSE_BYTES: u64 = 1 << 30;
/// Largest `jenkins.token_file` read: 64 KiB.
pub const MAX_TOKEN_FILE_BYTES: u64 = 64 << 10;
/// Largest `caps.global` and `caps.per_label[].max`: 100000 agents.
pub const MAX_CAP: u32 = 100_000;
/// Longest cloud name: 64 characters.
pub const MAX_CLOUD_NAME_LEN: usize = 64;
/// Longest `poll_interval`: 1 day.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(86_400);
/// Longest `orphan_grace`: 365 days.
pub const MAX_ORPHAN_GRACE: Duration = Duration::from_secs(365 * 86_400);

pub use jenkins_cloud_core::files::read_text as read_bounded;

/// Checks the token file the way [`JenkinsSettings::token`] reads it (the
/// content is dropped), except that a file that does not exist yet is let
/// through: it may be mounted only where the daemon runs.
pub(crate) fn check_token_file(path: &Path) -> Result<(), String> {
    if matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    {
        return Ok(());
    }
    let token = read_bounded(path, MAX_TOKEN_FILE_BYTES)?;
    if token.trim().is_empty() {
        return Err(format!(
            "`{}` is empty: it must hold the API token",
            escaped(&path.display().to_string())
        ));
    }
    Ok(())
}

/// `text` for a terminal: control characters escaped; each line after the
/// first indented under the problem it belongs to.
fn shown_lines(text: &str) -> String {
    text.split('\n')
        .map(escaped)
        .collect::<Vec<_>>()
        .join("\n      ")
}

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
        let file = escaped(&self.file);
        write!(f, "{file}: {n} problem{}", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            let line = p.line.map(|l| format!(":{l}")).unwrap_or_default();
            let field = if p.field.is_empty() {
                String::new()
            } else {
                format!(" {}:", escaped(&p.field))
            };
            write!(f, "\n  {file}{line}:{field} {}", shown_lines(&p.message))?;
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
    /// Largest Jenkins response read (`jenkins.max_response_bytes`, default
    /// 32 MiB, between [`MIN_RESPONSE_BYTES`] and [`MAX_RESPONSE_BYTES`]).
    pub max_response_bytes: usize,
}

impl JenkinsSettings {
    /// Reads the API token from its source. The error names the source, never the value.
    pub fn token(&self) -> Result<Secret, String> {
        let value = match &self.token {
            TokenSource::Inline(s) => return Ok(s.clone()),
            TokenSource::Env(var) => std::env::var(var).map_err(|_| {
                format!(
                    "jenkins.token_env: environment variable `{}` is not set",
                    escaped(var)
                )
            })?,
            TokenSource::File(path) => read_bounded(path, MAX_TOKEN_FILE_BYTES)
                .map_err(|e| format!("jenkins.token_file: {e}"))?,
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
    /// Reads and checks `path`: a regular file of at most
    /// [`MAX_CONFIG_BYTES`]. Beyond [`Config::parse`], a `jenkins.token_file`
    /// that exists is checked as [`JenkinsSettings::token`] would read it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = read_bounded(path, MAX_CONFIG_BYTES).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![Problem {
                field: String::new(),
                line: None,
                message: format!("cannot read the configuration: {e}"),
            }],
        })?;
        raw::check(&text, &file, true, &process_env)
    }

    /// Checks configuration text; `file` names it in problems. Reads no file.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        raw::check(text, file, false, &process_env)
    }

    /// [`Config::parse`] with variables (`${VAR}`) taken from `env` instead
    /// of the process environment.
    pub fn parse_with_env(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        raw::check(text, file, false, env)
    }

    /// Every template with the index of its cloud, in priority order.
    pub fn templates(&self) -> impl Iterator<Item = (usize, &AgentTemplate)> {
        self.clouds
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.templates.iter().map(move |t| (i, t)))
    }
}

/// A variable of this process's environment (`None` when unset or not UTF-8).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests;
