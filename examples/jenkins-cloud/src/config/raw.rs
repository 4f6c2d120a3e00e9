//! The file as written (serde types) and the checks that turn it into a
//! [`Config`]. Each section is deserialized on its own so that one bad section
//! does not hide the problems of the others.

use std::net::SocketAddr;

use jenkins_cloud_core::backend::{Backend, OwnerId};
use jenkins_cloud_core::jenkins::client::DemandMode;
use jenkins_cloud_core::label::LabelExpr;
use jenkins_cloud_core::memory::MemoryBackend;
use jenkins_cloud_core::template::{Setting, TemplateConfig};
use jenkins_cloud_core::template_config::{resolve_all, HumanDuration};
use jenkins_cloud_core::Secret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::yaml::{join, Document};
use super::{CloudSettings, Config, ConfigError, JenkinsSettings, Problem, TokenSource};

/// Backend kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudKind {
    /// AWS ECS on Fargate.
    Fargate,
    /// AWS EC2 instances.
    Ec2,
    /// The in-memory backend (demos and tests: nothing really runs).
    Memory,
}

/// Provisioning strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Launch at once for every uncovered queued item.
    #[default]
    NoDelay,
    /// Jenkins core's NodeProvisioner (smoothed, slower).
    JenkinsStandard,
}

/// What SIGTERM does to agents once the current pass is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnShutdown {
    /// Leave agents running; the next start adopts them (from tags and markers).
    #[default]
    Leave,
    /// Mark every idle-or-busy agent offline so it takes no new builds.
    Drain,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJenkins {
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
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawDemandMode {
    #[default]
    Auto,
    ScriptConsole,
    WhyParsing,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCaps {
    #[serde(default)]
    global: Option<u32>,
    #[serde(default)]
    per_label: Vec<RawLabelCap>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabelCap {
    label: LabelExpr,
    max: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloud {
    name: String,
    kind: CloudKind,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    endpoint_url: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    clusters: Vec<String>,
    #[serde(default)]
    family_prefix: Option<String>,
    #[serde(default)]
    defaults: Option<Value>,
    #[serde(default)]
    templates: Vec<Value>,
}

const TOP_LEVEL: [&str; 10] = [
    "owner",
    "jenkins",
    "strategy",
    "caps",
    "poll_interval",
    "orphan_grace",
    "metrics",
    "on_shutdown",
    "clouds",
    "version",
];

struct Checker<'a> {
    doc: &'a Document,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        self.problems.push(Problem {
            line: self.doc.line_of(&field),
            field,
            message: message.into(),
        });
    }

    /// Deserializes the value at `path` (`Null` when absent), naming the exact
    /// field of a type error.
    fn section<T: DeserializeOwned>(&mut self, value: &Value, path: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let mut field = if inner == "." || inner.is_empty() {
                    path.to_owned()
                } else if inner.starts_with('[') {
                    format!("{path}{inner}")
                } else {
                    join(path, &inner)
                };
                let message = e.into_inner().to_string();
                if let Some(unknown) = unknown_field(&message) {
                    if !field.ends_with(unknown) {
                        field = join(&field, unknown);
                    }
                }
                self.add(field, message);
                None
            }
        }
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn get<'v>(obj: &'v Value, key: &str) -> &'v Value {
    obj.get(key).unwrap_or(&Value::Null)
}

/// Parses and checks the whole document.
pub(super) fn check(text: &str, file: &str) -> Result<Config, ConfigError> {
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(message) => {
            return Err(ConfigError {
                file: file.to_owned(),
                problems: vec![Problem {
                    field: String::new(),
                    line: None,
                    message: format!("not valid YAML: {message}"),
                }],
            })
        }
    };
    let mut c = Checker {
        doc: &doc,
        problems: Vec::new(),
    };
    let root = &doc.value;
    let Some(map) = root.as_object() else {
        c.add(
            "",
            "the document must be a mapping with `owner`, `jenkins` and `clouds`",
        );
        return Err(finish(file, c.problems));
    };
    for key in map.keys() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            c.add(
                key.clone(),
                format!(
                    "unknown field `{key}`, expected one of {}",
                    TOP_LEVEL.join(", ")
                ),
            );
        }
    }

    let owner = match get(root, "owner") {
        Value::String(s) => OwnerId::new(s.clone())
            .map_err(|e| c.add("owner", e.to_string()))
            .ok(),
        Value::Null => {
            c.add(
                "owner",
                "missing: set a short id (a-z, 0-9, -) naming this installation",
            );
            None
        }
        _ => {
            c.add("owner", "must be a string");
            None
        }
    };
    let jenkins = check_jenkins(&mut c, get(root, "jenkins"));
    let strategy: Option<StrategyKind> = match get(root, "strategy") {
        Value::Null => Some(StrategyKind::default()),
        v => c.section(v, "strategy"),
    };
    let caps: Option<RawCaps> = match get(root, "caps") {
        Value::Null => Some(RawCaps::default()),
        v => c.section(v, "caps"),
    };
    let poll = duration(&mut c, root, "poll_interval", 10);
    let grace = duration(&mut c, root, "orphan_grace", 60);
    let metrics: Option<RawMetrics> = match get(root, "metrics") {
        Value::Null => Some(RawMetrics::default()),
        v => c.section(v, "metrics"),
    };
    let metrics_address = metrics.and_then(|m| m.address).and_then(|a| {
        a.parse::<SocketAddr>()
            .map_err(|e| {
                c.add(
                    "metrics.address",
                    format!("`{a}` is not host:port ({e}); e.g. `0.0.0.0:9184`"),
                )
            })
            .ok()
    });
    let on_shutdown: Option<OnShutdown> = match get(root, "on_shutdown") {
        Value::Null => Some(OnShutdown::default()),
        v => c.section(v, "on_shutdown"),
    };
    let clouds = check_clouds(&mut c, get(root, "clouds"), owner.as_ref());

    if !c.problems.is_empty() {
        return Err(finish(file, c.problems));
    }
    let (
        Some(owner),
        Some(jenkins),
        Some(strategy),
        Some(caps),
        Some(poll),
        Some(grace),
        Some(on_shutdown),
    ) = (owner, jenkins, strategy, caps, poll, grace, on_shutdown)
    else {
        unreachable!("every missing section added a problem");
    };
    Ok(Config {
        file: file.to_owned(),
        owner,
        jenkins,
        strategy,
        global_cap: caps.global,
        label_caps: caps
            .per_label
            .into_iter()
            .map(|c| (c.label, c.max))
            .collect(),
        poll_interval: poll,
        orphan_grace: grace,
        metrics_address,
        on_shutdown,
        clouds,
    })
}

fn finish(file: &str, mut problems: Vec<Problem>) -> ConfigError {
    problems.sort_by_key(|p| p.line.unwrap_or(u64::MAX));
    ConfigError {
        file: file.to_owned(),
        problems,
    }
}

fn duration(
    c: &mut Checker<'_>,
    root: &Value,
    key: &str,
    default_secs: u64,
) -> Option<std::time::Duration> {
    match get(root, key) {
        Value::Null => Some(std::time::Duration::from_secs(default_secs)),
        v => {
            let d: HumanDuration = c.section(v, key)?;
            if d.0.is_zero() {
                c.add(key, "must be longer than 0s");
                return None;
            }
            Some(d.0)
        }
    }
}

fn check_jenkins(c: &mut Checker<'_>, value: &Value) -> Option<JenkinsSettings> {
    if value.is_null() {
        c.add(
            "jenkins",
            "missing: set `url`, `user` and `token_env` or `token_file`",
        );
        return None;
    }
    let raw: RawJenkins = c.section(value, "jenkins")?;
    let before = c.problems.len();
    check_url(c, "jenkins.url", &raw.url, raw.allow_insecure_http);
    if let Some(agent_url) = &raw.agent_url {
        check_url(c, "jenkins.agent_url", agent_url, raw.allow_insecure_http);
    }
    if raw.user.trim().is_empty() {
        c.add("jenkins.user", "must not be empty");
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
        (_, Some(file), _) => Some(TokenSource::File(file)),
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
    if c.problems.len() > before {
        return None;
    }
    Some(JenkinsSettings {
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

fn check_url(c: &mut Checker<'_>, field: &str, text: &str, allow_insecure: bool) {
    let url = match url::Url::parse(text) {
        Ok(u) => u,
        Err(e) => return c.add(field, format!("`{text}` is not a URL: {e}")),
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return c.add(field, format!("`{text}` has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback || allow_insecure => {}
        "http" => c.add(
            field,
            format!("`{text}` is plain HTTP to a non-loopback host: the API token would travel in clear; use https or set `jenkins.allow_insecure_http: true`"),
        ),
        other => c.add(field, format!("unsupported scheme `{other}`: use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        c.add(
            field,
            "credentials in the URL are not allowed: use `user` and `token_env`",
        );
    }
}

fn check_clouds(c: &mut Checker<'_>, value: &Value, owner: Option<&OwnerId>) -> Vec<CloudSettings> {
    let Some(list) = value.as_array() else {
        c.add(
            "clouds",
            "missing: list at least one cloud (`kind: fargate`, `ec2` or `memory`)",
        );
        return Vec::new();
    };
    if list.is_empty() {
        c.add("clouds", "list at least one cloud");
    }
    let mut out: Vec<CloudSettings> = Vec::new();
    let mut template_names: Vec<(String, String)> = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let path = format!("clouds[{i}]");
        let Some(raw) = c.section::<RawCloud>(v, &path) else {
            continue;
        };
        if out.iter().any(|o| o.name == raw.name) {
            c.add(
                join(&path, "name"),
                format!("cloud `{}` is defined more than once", raw.name),
            );
        }
        if raw.kind == CloudKind::Fargate && raw.clusters.is_empty() {
            c.add(
                join(&path, "clusters"),
                "a fargate cloud needs at least one ECS cluster",
            );
        }
        let defaults = match raw.defaults {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => {
                c.add(join(&path, "defaults"), "must be a mapping of spec fields");
                Value::Object(Default::default())
            }
        };
        let mut configs = Vec::new();
        for (j, t) in raw.templates.iter().enumerate() {
            let tpath = format!("{path}.templates[{j}]");
            if let Some(mut tc) = c.section::<TemplateConfig>(t, &tpath) {
                if tc.inherit_from.is_none() {
                    let own = tc
                        .spec
                        .get()
                        .cloned()
                        .unwrap_or(Value::Object(Default::default()));
                    tc.spec = Setting::Set(merge(&own, &defaults));
                }
                configs.push((j, tc));
            }
        }
        if raw.templates.is_empty() {
            c.add(
                join(&path, "templates"),
                "a cloud needs at least one template",
            );
        }
        let tcs: Vec<TemplateConfig> = configs.iter().map(|(_, t)| t.clone()).collect();
        let index_of = |name: &str| {
            configs
                .iter()
                .find(|(_, t)| t.name == name)
                .map(|(j, _)| *j)
        };
        let templates = match resolve_all(&tcs) {
            Ok(t) => t,
            Err(e) => {
                for p in e.problems {
                    c.add(template_field(&path, &p, &index_of), p);
                }
                Vec::new()
            }
        };
        let owner = owner
            .cloned()
            .unwrap_or_else(|| OwnerId::new("x").expect("valid"));
        for t in &templates {
            let tpath = format!("{path}.templates[{}]", index_of(&t.name).unwrap_or(0));
            if let Some(prev) = template_names.iter().find(|(n, _)| *n == t.name) {
                c.add(join(&tpath, "name"), format!("template `{}` is also defined in cloud `{}`: names must be unique across clouds", t.name, prev.1));
            }
            template_names.push((t.name.clone(), raw.name.clone()));
            let problems = match raw.kind {
                CloudKind::Fargate => fargate_problems(t, &raw.clusters),
                CloudKind::Ec2 => jenkins_cloud_ec2::Ec2Spec::parse(&t.spec)
                    .err()
                    .unwrap_or_default(),
                CloudKind::Memory => MemoryBackend::new(owner.clone())
                    .validate_template(t)
                    .err()
                    .unwrap_or_default(),
            };
            for p in problems {
                let field = p.split(':').next().unwrap_or("spec").trim().to_owned();
                c.add(join(&tpath, &field), format!("template `{}`: {p}", t.name));
            }
        }
        out.push(CloudSettings {
            name: raw.name,
            kind: raw.kind,
            region: raw.region,
            endpoint_url: raw.endpoint_url,
            account_id: raw.account_id,
            clusters: raw.clusters,
            family_prefix: raw
                .family_prefix
                .unwrap_or_else(|| "jenkins-cloud".to_owned()),
            templates,
        });
    }
    out
}

fn fargate_problems(t: &jenkins_cloud_core::AgentTemplate, clusters: &[String]) -> Vec<String> {
    let mut problems = jenkins_cloud_fargate::FargateSpec::from_value(&t.spec)
        .err()
        .unwrap_or_default();
    match t.spec.get("cluster").and_then(Value::as_str) {
        Some(cluster) if !clusters.iter().any(|c| c == cluster) => problems.push(format!(
            "spec.cluster: `{cluster}` is not in the cloud's `clusters` ({})",
            clusters.join(", ")
        )),
        _ => {}
    }
    problems
}

/// `templates[linux].executors: …` → `clouds[0].templates[2].executors`.
fn template_field(path: &str, problem: &str, index_of: &dyn Fn(&str) -> Option<usize>) -> String {
    let head = problem.split(':').next().unwrap_or("");
    let Some(rest) = head.strip_prefix("templates[") else {
        return join(path, "templates");
    };
    let Some((name, field)) = rest.split_once(']') else {
        return join(path, "templates");
    };
    match index_of(name) {
        Some(j) => format!("{path}.templates[{j}]{field}"),
        None => join(path, "templates"),
    }
}

/// `over` merged onto `base`: objects by key, recursively; anything else replaces.
pub(crate) fn merge(over: &Value, base: &Value) -> Value {
    match (over, base) {
        (Value::Object(o), Value::Object(b)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match b.get(k) {
                    Some(bv) => merge(v, bv),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => over.clone(),
    }
}
