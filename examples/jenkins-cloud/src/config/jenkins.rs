//! The `jenkins` section: controller URL, user, token source, demand mode;
//! and how URLs are checked and shown.

use jenkins_cloud_core::jenkins::client::{DemandMode, DEFAULT_MAX_RESPONSE_BYTES};
use jenkins_cloud_core::template_config::{escaped, is_hostile};
use jenkins_cloud_core::Secret;
use serde::Deserialize;
use serde_json::Value;

use super::checker::Checker;
use super::{
    check_token_file, JenkinsSettings, TokenSource, MAX_RESPONSE_BYTES, MIN_RESPONSE_BYTES,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJenkins {
    url: String,
    #[serde(default)]
    agent_url: Option<String>,
    #[serde(default)]
    tunnel: Option<String>,
    user: String,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    token_file: Option<std::path::PathBuf>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    allow_inline_token: bool,
    #[serde(default)]
    allow_insecure_http: bool,
    #[serde(default)]
    demand_mode: RawDemandMode,
    #[serde(default)]
    max_response_bytes: Option<u64>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawDemandMode {
    #[default]
    Auto,
    ScriptConsole,
    WhyParsing,
}

pub(super) fn check_jenkins(
    c: &mut Checker<'_>,
    value: &Value,
    read_token_file: bool,
) -> Option<JenkinsSettings> {
    if value.is_null() {
        c.add(
            "jenkins",
            "missing: set `url`, `user` and `token_env` or `token_file`",
        );
        return None;
    }
    // Fields that read well are checked even when others were refused.
    let raw: RawJenkins = c.fields_partial(value, "jenkins").0?;
    let before = c.problems.len();
    check_url(c, "jenkins.url", &raw.url, raw.allow_insecure_http);
    if let Some(agent_url) = &raw.agent_url {
        check_url(c, "jenkins.agent_url", agent_url, raw.allow_insecure_http);
    }
    if raw.user.trim().is_empty() {
        c.add("jenkins.user", "must not be empty");
    } else if raw.user.chars().any(is_hostile) {
        c.add(
            "jenkins.user",
            format!(
                "`{}` contains a control or invisible character",
                escaped(&raw.user)
            ),
        );
    }
    let sources = [
        raw.token_env.is_some(),
        raw.token_file.is_some(),
        raw.token.is_some(),
    ];
    let token = match (raw.token_env, raw.token_file, raw.token) {
        _ if sources.iter().filter(|s| **s).count() > 1 => {
            c.add(
                "jenkins",
                "give only one of `token_env`, `token_file` and `token`",
            );
            None
        }
        (Some(var), _, _) if var.trim().is_empty() => {
            c.add("jenkins.token_env", "must name an environment variable");
            None
        }
        (Some(var), _, _) => Some(TokenSource::Env(var)),
        (_, Some(file), _) => {
            if read_token_file {
                if let Err(e) = check_token_file(&file) {
                    c.add("jenkins.token_file", e);
                }
            }
            Some(TokenSource::File(file))
        }
        (_, _, Some(_)) if !raw.allow_inline_token => {
            c.add(
                "jenkins.token",
                "an API token written in the file is refused: use `token_env` or `token_file` (or set `allow_inline_token: true`)",
            );
            None
        }
        (_, _, Some(t)) => Some(TokenSource::Inline(Secret::new(t))),
        _ => {
            c.add(
                "jenkins",
                "missing the API token: set `token_env` (a variable name) or `token_file` (a path)",
            );
            None
        }
    };
    let max_response_bytes = match raw.max_response_bytes {
        None => DEFAULT_MAX_RESPONSE_BYTES,
        Some(n) if (MIN_RESPONSE_BYTES..=MAX_RESPONSE_BYTES).contains(&n) => n as usize,
        Some(n) => {
            c.add(
                "jenkins.max_response_bytes",
                format!("must be between {MIN_RESPONSE_BYTES} and {MAX_RESPONSE_BYTES}, found {n}"),
            );
            DEFAULT_MAX_RESPONSE_BYTES
        }
    };
    if c.problems.len() > before {
        return None;
    }
    Some(JenkinsSettings {
        max_response_bytes,
        agent_url: raw.agent_url.unwrap_or_else(|| raw.url.clone()),
        url: raw.url,
        tunnel: raw.tunnel,
        user: raw.user,
        token: token?,
        allow_insecure_http: raw.allow_insecure_http,
        demand_mode: match raw.demand_mode {
            RawDemandMode::Auto => DemandMode::Auto,
            RawDemandMode::ScriptConsole => DemandMode::ScriptConsole,
            RawDemandMode::WhyParsing => DemandMode::WhyParsing,
        },
    })
}

/// `text` as it may be shown: any `user:password@` replaced by `***@`, and
/// control characters escaped. Conservative: everything from the scheme up to
/// the last `@` is hidden, so a password holding `/`, `?` or `#` is hidden too.
pub(crate) fn shown_url(text: &str) -> String {
    let text = text.trim();
    let shown = match text.rfind('@') {
        Some(at) => {
            let start = text
                .find("://")
                .map(|i| i + 3)
                .filter(|&i| i <= at)
                .unwrap_or(0);
            format!("{}***{}", &text[..start], &text[at..])
        }
        None => text.to_owned(),
    };
    escaped(&shown)
}

fn check_url(c: &mut Checker<'_>, field: &str, text: &str, allow_insecure: bool) {
    let shown = shown_url(text);
    let url = match url::Url::parse(text.trim()) {
        Ok(u) => u,
        Err(e) => return c.add(field, format!("`{shown}` is not a URL: {e}")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        c.add(
            field,
            format!("`{shown}`: credentials (`user:password@`) in the URL are not allowed: put the user in `jenkins.user` and the token in `token_env` or `token_file`, not in the URL"),
        );
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return c.add(field, format!("`{shown}` has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback || allow_insecure => {}
        "http" => c.add(
            field,
            format!("`{shown}` is plain HTTP to a non-loopback host: the API token would travel in clear; use https or set `jenkins.allow_insecure_http: true`"),
        ),
        other => c.add(
            field,
            format!("unsupported scheme `{}`: use https", escaped(other)),
        ),
    }
    if url.query().is_some() || url.fragment().is_some() {
        c.add(
            field,
            format!("`{shown}` must not have a query (`?…`) or fragment (`#…`): give the controller's base URL"),
        );
    }
}

/// An AWS endpoint override: a URL with a host, http or https, and no
/// credentials in it.
pub(super) fn check_endpoint_url(c: &mut Checker<'_>, field: &str, text: &str) {
    let shown = shown_url(text);
    let url = match url::Url::parse(text.trim()) {
        Ok(u) => u,
        Err(e) => return c.add(field, format!("`{shown}` is not a URL: {e}")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        c.add(
            field,
            format!("`{shown}`: credentials (`user:password@`) in the URL are not allowed"),
        );
    }
    if url.host().is_none() || !matches!(url.scheme(), "http" | "https") {
        c.add(
            field,
            format!("`{shown}` must be an http or https URL with a host"),
        );
    }
}
