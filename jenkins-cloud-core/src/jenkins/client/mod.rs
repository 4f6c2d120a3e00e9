//! The HTTP client for a real Jenkins controller: [`JenkinsClient`].
//!
//! * Auth: user + API token as basic auth (no crumb needed since Jenkins 2.96).
//!   When Jenkins answers a POST with 403 `No valid crumb…` (session-based
//!   setups), the client fetches `/crumbIssuer/api/json` once, keeps the
//!   `JSESSIONID` cookie and replays the request with the crumb header.
//! * Every response's `X-Jenkins` header is recorded; node creation uses the XML
//!   `createItem` endpoint on 2.539+ and the form `doCreateItem` before (or when
//!   the version is unknown).
//! * Demand comes from a [`DemandSource`]: the script console (exact labels,
//!   needs Overall/Administer) or `why` parsing with placeholder nodes (Overall/Read
//!   only). [`DemandMode::Auto`] tries the script console and falls back to `why`
//!   parsing for good on the first 403. See `docs/jenkins.md`.
//! * Errors are [`JenkinsError`]s with a retry class; the API token, crumbs and
//!   agent secrets never appear in them, nor in `Debug` output or logs.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::backend::OwnerId;
use crate::label::LabelSet;
use crate::secret::Secret;
use crate::template::AgentTemplate;

use super::{Demand, JenkinsApi, JenkinsError, JenkinsNode, NodeSpec};

mod demand;
mod errors;
mod http;
mod nodes;
pub mod why;

pub use demand::{DemandSource, ScriptConsoleDemand, WhyDemand, SCRIPT_CONSOLE_DEMAND};
pub use nodes::{placeholder_name, PlaceholderReport, MAX_EXECUTORS};

/// How demand is read from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DemandMode {
    /// Script console first; on 403 switch to `why` parsing for the client's lifetime.
    #[default]
    Auto,
    /// Only the script console (exact labels; needs Overall/Administer).
    ScriptConsole,
    /// Only `why` parsing with placeholder nodes (needs Overall/Read, Agent/Create
    /// and Agent/Delete for the placeholders).
    WhyParsing,
}

/// The name and labels of a template, for its placeholder node in `why` mode and
/// to map node names in `why` messages back to templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceholderTemplate {
    /// Template name (`a-z0-9-`).
    pub name: String,
    /// The labels its agents carry.
    pub labels: LabelSet,
}

impl From<&AgentTemplate> for PlaceholderTemplate {
    fn from(t: &AgentTemplate) -> Self {
        Self {
            name: t.name.clone(),
            labels: t.labels.clone(),
        }
    }
}

/// Settings of a [`JenkinsClient`]. `Debug` never shows the token.
#[derive(Debug, Clone)]
pub struct JenkinsClientConfig {
    /// Controller URL, e.g. `https://jenkins.example.com/` (a path prefix is kept).
    pub url: String,
    /// Jenkins user id.
    pub user: String,
    /// The user's API token.
    pub token: Secret,
    /// The owner whose nodes this client creates and sees.
    pub owner: OwnerId,
    /// How demand is read.
    pub demand_mode: DemandMode,
    /// Templates, for placeholders and node-name attribution in `why` mode.
    pub templates: Vec<PlaceholderTemplate>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Allow `http://` to a host other than loopback (the token travels in clear).
    pub allow_insecure_http: bool,
    /// Fetch a crumb before the first POST instead of waiting for a 403.
    pub always_crumb: bool,
    /// Largest response body read (default [`DEFAULT_MAX_RESPONSE_BYTES`]); a
    /// larger answer fails with [`JenkinsError::BadResponse`].
    pub max_response_bytes: usize,
    /// Never write to Jenkins (the `plan` and `check` commands): in `why` mode
    /// the placeholders are not created, demand is read with those that exist.
    pub read_only: bool,
}

/// Default limit of a response body: 32 MiB (a `computer/api/json` of 10,000
/// nodes is about 5 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;

impl JenkinsClientConfig {
    /// A configuration with defaults: auto demand mode, no templates, 5 s connect
    /// and 30 s request timeouts, HTTPS required except on loopback.
    pub fn new(
        url: impl Into<String>,
        user: impl Into<String>,
        token: Secret,
        owner: OwnerId,
    ) -> Self {
        Self {
            url: url.into(),
            user: user.into(),
            token,
            owner,
            demand_mode: DemandMode::Auto,
            templates: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            allow_insecure_http: false,
            always_crumb: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            read_only: false,
        }
    }
}

/// A configuration value that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Jenkins client setting `{field}`: {message}")]
pub struct ConfigError {
    /// The field (`url`, `user`, `token`, `templates`…).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn config_error(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}

/// A Jenkins version from the `X-Jenkins` header (`2.541.1`, `2.539`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JenkinsVersion(Vec<u32>);

impl JenkinsVersion {
    /// The first version with XML node creation (`POST /computer/createItem`).
    pub const XML_CREATE: [u32; 2] = [2, 539];

    /// Parses `2.541.1`; a suffix such as `-SNAPSHOT` or ` (private)` is ignored.
    /// `None` if there is no leading number.
    pub fn parse(text: &str) -> Option<Self> {
        let core: String = text
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let parts: Option<Vec<u32>> = core
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().ok())
            .collect();
        parts.filter(|p| !p.is_empty()).map(Self)
    }

    /// Whether this version has XML node creation.
    pub fn has_xml_create(&self) -> bool {
        self.0.as_slice() >= Self::XML_CREATE.as_slice()
    }
}

impl fmt::Display for JenkinsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// The HTTP client for one Jenkins controller and one owner. Implements
/// [`JenkinsApi`].
pub struct JenkinsClient {
    http: http::Http,
    owner: OwnerId,
    read_only: bool,
    mode: DemandMode,
    templates: Vec<PlaceholderTemplate>,
    fell_back: AtomicBool,
    script: ScriptConsoleDemand,
    why: WhyDemand,
}

impl fmt::Debug for JenkinsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JenkinsClient")
            .field("url", &self.http.base().as_str())
            .field("owner", &self.owner)
            .field("mode", &self.mode)
            .field("token", &"***")
            .finish()
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl JenkinsClient {
    /// Checks the configuration and builds the client (no request is sent).
    pub fn new(config: JenkinsClientConfig) -> Result<Self, ConfigError> {
        let shown = http::without_userinfo(config.url.trim());
        let mut base = Url::parse(config.url.trim())
            .map_err(|e| config_error("url", format!("`{shown}` is not a URL: {e}")))?;
        if !base.username().is_empty() || base.password().is_some() {
            return Err(config_error(
                "url",
                format!(
                    "`{shown}`: credentials in the URL are not allowed; use `user` and `token`"
                ),
            ));
        }
        match base.scheme() {
            "https" => {}
            "http" if config.allow_insecure_http || is_loopback(&base) => {}
            "http" => {
                return Err(config_error(
                    "url",
                    format!(
                        "`{base}` is plain HTTP to a non-loopback host; use https or set allow_insecure_http"
                    ),
                ))
            }
            other => return Err(config_error("url", format!("unsupported scheme `{other}`"))),
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(config_error("url", "the URL has no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(config_error(
                "url",
                "the URL must not have a query or fragment",
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if config.user.trim().is_empty() {
            return Err(config_error("user", "must not be empty"));
        }
        if config.token.is_empty() {
            return Err(config_error("token", "must not be empty"));
        }
        for (i, t) in config.templates.iter().enumerate() {
            let name = placeholder_name(&config.owner, &t.name);
            super::agent_name::check_good_name(&name).map_err(|e| {
                config_error("templates", format!("template #{i} `{}`: {e}", t.name))
            })?;
        }
        let http = http::Http::new(
            base,
            config.user,
            config.token,
            config.always_crumb,
            config.connect_timeout,
            config.request_timeout,
            config.max_response_bytes.max(1024),
        )
        .map_err(|e| config_error("url", format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            why: WhyDemand::new(
                config.owner.clone(),
                config.templates.clone(),
                config.read_only,
            ),
            owner: config.owner,
            read_only: config.read_only,
            mode: config.demand_mode,
            templates: config.templates,
            fell_back: AtomicBool::new(false),
            script: ScriptConsoleDemand,
        })
    }

    /// The demand mode in use now (`Auto` resolves to one of the others after
    /// the first read).
    pub fn effective_demand_mode(&self) -> DemandMode {
        match self.mode {
            DemandMode::Auto if self.fell_back.load(Ordering::Relaxed) => DemandMode::WhyParsing,
            other => other,
        }
    }

    /// The controller version from the last `X-Jenkins` header, if any was seen.
    pub fn version(&self) -> Option<JenkinsVersion> {
        self.http.version()
    }

    /// The templates this client knows.
    pub fn templates(&self) -> &[PlaceholderTemplate] {
        &self.templates
    }

    /// `Err` for a write when the client is read-only.
    fn writable(&self, what: &str) -> Result<(), JenkinsError> {
        if self.read_only {
            return Err(JenkinsError::BadRequest {
                message: format!(
                    "{what}: this client is read-only (plan, check) and changes nothing"
                ),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl JenkinsApi for JenkinsClient {
    fn owner(&self) -> &OwnerId {
        &self.owner
    }

    async fn demand(&self) -> Result<Demand, JenkinsError> {
        match self.effective_demand_mode() {
            DemandMode::ScriptConsole => self.script.read(self).await,
            DemandMode::WhyParsing => self.why.read(self).await,
            DemandMode::Auto => match self.script.read(self).await {
                Err(JenkinsError::Forbidden { permission }) => {
                    tracing::warn!(
                        %permission,
                        "script console refused; reading demand from `why` messages from now on"
                    );
                    self.fell_back.store(true, Ordering::Relaxed);
                    self.why.read(self).await
                }
                other => other,
            },
        }
    }

    async fn nodes(&self) -> Result<Vec<JenkinsNode>, JenkinsError> {
        nodes::list(self).await
    }

    async fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError> {
        self.writable("create node")?;
        nodes::create(self, spec).await
    }

    async fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError> {
        nodes::secret(self, name).await
    }

    async fn drain_node(&self, name: &str, reason: &str) -> Result<(), JenkinsError> {
        self.writable("drain node")?;
        nodes::drain(self, name, reason).await
    }

    async fn delete_node(&self, name: &str) -> Result<(), JenkinsError> {
        self.writable("delete node")?;
        nodes::delete(self, name).await
    }

    async fn report_template_problem(
        &self,
        template: &str,
        problem: Option<&str>,
    ) -> Result<(), JenkinsError> {
        if self.read_only {
            return Ok(());
        }
        self.report_problem(template, problem).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> JenkinsClientConfig {
        JenkinsClientConfig::new(
            url,
            "bot",
            Secret::new("11aa22bb33cc44dd55ee66ff77889900aa"),
            OwnerId::new("ci").unwrap(),
        )
    }

    #[test]
    fn versions_parse_and_compare() {
        let v = |s| JenkinsVersion::parse(s).unwrap();
        assert!(v("2.539").has_xml_create());
        assert!(v("2.541.1").has_xml_create());
        assert!(v("3.1").has_xml_create());
        assert!(!v("2.538").has_xml_create());
        assert!(!v("2.528.3").has_xml_create());
        assert_eq!(v("2.540-SNAPSHOT (private)").to_string(), "2.540");
        assert_eq!(JenkinsVersion::parse("unknown"), None);
        assert_eq!(JenkinsVersion::parse(""), None);
    }

    #[test]
    fn urls_are_checked_with_the_field_named() {
        JenkinsClient::new(cfg("https://jenkins.example.com")).unwrap();
        JenkinsClient::new(cfg("http://127.0.0.1:8080/jenkins")).unwrap();
        JenkinsClient::new(cfg("http://localhost:8080/")).unwrap();
        for bad in [
            "http://jenkins.example.com/",
            "ftp://x/",
            "not a url",
            "https://u:p@x/",
            "https://x/?a=b",
        ] {
            let e = JenkinsClient::new(cfg(bad)).unwrap_err();
            assert_eq!(e.field, "url", "{bad}");
        }
        let mut c = cfg("http://jenkins.internal/");
        c.allow_insecure_http = true;
        JenkinsClient::new(c).unwrap();
        let mut c = cfg("https://x/");
        c.user = " ".into();
        assert_eq!(JenkinsClient::new(c).unwrap_err().field, "user");
        let mut c = cfg("https://x/");
        c.token = Secret::new("");
        assert_eq!(JenkinsClient::new(c).unwrap_err().field, "token");
    }

    #[test]
    fn path_segments_are_encoded_under_the_base_path() {
        let c = JenkinsClient::new(cfg("http://127.0.0.1:1/jenkins")).unwrap();
        let url = c
            .http
            .url(&["computer", "a b#c?", "api", "json"], &[("tree", "x[y]")]);
        assert_eq!(url.path(), "/jenkins/computer/a%20b%23c%3F/api/json");
        assert!(url.query().unwrap().starts_with("tree="));
    }
}
