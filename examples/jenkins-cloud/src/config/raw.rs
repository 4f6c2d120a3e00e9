//! The file as written (serde types) and the checks that turn it into a
//! [`Config`]. Each section is deserialized on its own so that one bad section
//! does not hide the problems of the others.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use jenkins_cloud_core::backend::{Backend, OwnerId};
use jenkins_cloud_core::label::LabelExpr;
use jenkins_cloud_core::memory::MemoryBackend;
use jenkins_cloud_core::template::{Setting, TemplateConfig};
use jenkins_cloud_core::template_config::{escaped, is_hostile, resolve_all, HumanDuration};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checker::{get, unknown_field, Checker};
use super::interpolate::{expand_tree, NOT_EXPANDED};
use super::jenkins::{check_endpoint_url, check_jenkins};
use super::yaml::{join, Document};
use super::{
    CloudSettings, Config, ConfigError, Problem, MAX_CAP, MAX_CLOUD_NAME_LEN, MAX_ORPHAN_GRACE,
    MAX_POLL_INTERVAL,
};

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCaps {
    #[serde(default)]
    global: Option<u32>,
    #[serde(default)]
    per_label: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabelCap {
    label: String,
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

/// Parses and checks the whole document; with `read_token_file`, a
/// `jenkins.token_file` that exists is read (and dropped) to check it.
pub(super) fn check(
    text: &str,
    file: &str,
    read_token_file: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut doc = match Document::parse(text) {
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
    let expanded = expand_tree(&mut doc.value, env, NOT_EXPANDED);
    let mut c = Checker {
        doc: &doc,
        problems: Vec::new(),
    };
    for (field, e) in expanded {
        c.add(field, e.to_string());
    }
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
            .map_err(|e| {
                c.add(
                    "owner",
                    format!("invalid owner id `{}`: {}", escaped(s), e.reason),
                )
            })
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
    let jenkins = check_jenkins(&mut c, get(root, "jenkins"), read_token_file);
    let strategy: Option<StrategyKind> = match get(root, "strategy") {
        Value::Null => Some(StrategyKind::default()),
        v => c.section(v, "strategy"),
    };
    let caps = match get(root, "caps") {
        Value::Null => Some((None, Vec::new())),
        v => check_caps(&mut c, v),
    };
    let poll = duration(&mut c, root, "poll_interval", 10, MAX_POLL_INTERVAL);
    let grace = duration(&mut c, root, "orphan_grace", 60, MAX_ORPHAN_GRACE);
    let metrics: Option<RawMetrics> = match get(root, "metrics") {
        Value::Null => Some(RawMetrics::default()),
        v => c.fields(v, "metrics"),
    };
    let metrics_address = metrics.and_then(|m| m.address).and_then(|a| {
        a.parse::<SocketAddr>()
            .map_err(|e| {
                c.add(
                    "metrics.address",
                    format!(
                        "`{}` is not host:port ({e}); e.g. `0.0.0.0:9184`",
                        escaped(&a)
                    ),
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
        global_cap: caps.0,
        label_caps: caps.1,
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
    max: Duration,
) -> Option<Duration> {
    match get(root, key) {
        Value::Null => Some(Duration::from_secs(default_secs)),
        v => {
            let d: HumanDuration = c.section(v, key)?;
            if d.0.is_zero() {
                c.add(key, "must be longer than 0s");
                return None;
            }
            if d.0 > max {
                c.add(
                    key,
                    format!("must be at most {}, found {d}", HumanDuration(max)),
                );
                return None;
            }
            Some(d.0)
        }
    }
}

/// `n` at `field` if it is at most `max`, else a problem naming the bound.
fn bounded(c: &mut Checker<'_>, field: &str, n: u32, max: u32) -> Option<u32> {
    if n > max {
        c.add(field, format!("must be at most {max}, found {n}"));
        return None;
    }
    Some(n)
}

/// The global cap and the per-label caps, checked.
type Caps = (Option<u32>, Vec<(LabelExpr, u32)>);

/// The `caps` section: the global cap and the per-label caps, each at most
/// [`MAX_CAP`], each label expression checked.
fn check_caps(c: &mut Checker<'_>, value: &Value) -> Option<Caps> {
    // Fields that read well are checked even when others were refused.
    let raw: RawCaps = c.fields_partial(value, "caps").0?;
    let before = c.problems.len();
    let global = raw
        .global
        .and_then(|n| bounded(c, "caps.global", n, MAX_CAP));
    let mut per_label = Vec::new();
    for (i, v) in raw.per_label.iter().enumerate() {
        let path = format!("caps.per_label[{i}]");
        let Some(cap) = c.fields::<RawLabelCap>(v, &path) else {
            continue;
        };
        let label_field = join(&path, "label");
        let label = if cap.label.chars().any(is_hostile) {
            c.add(
                &label_field,
                format!(
                    "`{}` contains a control or invisible character",
                    escaped(&cap.label)
                ),
            );
            None
        } else {
            match cap.label.parse::<LabelExpr>() {
                Ok(l) => Some(l),
                Err(e) => {
                    c.add(&label_field, escaped(&e.to_string()));
                    None
                }
            }
        };
        let max = bounded(c, &join(&path, "max"), cap.max, MAX_CAP);
        if let (Some(label), Some(max)) = (label, max) {
            per_label.push((label, max));
        }
    }
    if c.problems.len() > before {
        return None;
    }
    Some((global, per_label))
}

/// A name shown to people (a cloud's): 1 to `max` characters, none of them a
/// control or invisible character. The problem shows the name escaped.
fn check_shown_name(c: &mut Checker<'_>, field: &str, name: &str, max: usize) -> bool {
    let count = name.chars().count();
    if name.trim().is_empty() || count > max {
        c.add(
            field,
            format!("must be 1 to {max} characters (not only spaces), found {count}"),
        );
        return false;
    }
    if name.chars().any(is_hostile) {
        c.add(
            field,
            format!(
                "`{}` contains a control or invisible character (newline, escape…): use plain text",
                escaped(name)
            ),
        );
        return false;
    }
    true
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
    let mut cloud_names: HashSet<String> = HashSet::new();
    // Template name → the cloud that defines it first.
    let mut template_names: HashMap<String, String> = HashMap::new();
    for (i, v) in list.iter().enumerate() {
        let path = format!("clouds[{i}]");
        // Fields that read well are checked even when others were refused.
        let Some(raw) = c.fields_partial::<RawCloud>(v, &path).0 else {
            continue;
        };
        let name_field = join(&path, "name");
        if check_shown_name(c, &name_field, &raw.name, MAX_CLOUD_NAME_LEN)
            && !cloud_names.insert(raw.name.clone())
        {
            c.add(
                name_field,
                format!("cloud `{}` is defined more than once", raw.name),
            );
        }
        if let Some(url) = &raw.endpoint_url {
            check_endpoint_url(c, &join(&path, "endpoint_url"), url);
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
        let mut configs: Vec<Entry> = Vec::new();
        for (j, t) in raw.templates.iter().enumerate() {
            let tpath = format!("{path}.templates[{j}]");
            let (tc, refused) = c.fields_partial::<TemplateConfig>(t, &tpath);
            if let Some(mut tc) = tc {
                if tc.inherit_from.is_none() {
                    let own = tc
                        .spec
                        .get()
                        .cloned()
                        .unwrap_or(Value::Object(Default::default()));
                    tc.spec = Setting::Set(merge(&own, &defaults));
                }
                configs.push(Entry {
                    index: j,
                    config: tc,
                    good_keys: refused,
                });
            }
        }
        if raw.templates.is_empty() {
            c.add(
                join(&path, "templates"),
                "a cloud needs at least one template",
            );
        }
        let tcs: Vec<TemplateConfig> = configs.iter().map(|e| e.config.clone()).collect();
        let templates = match resolve_all(&tcs) {
            Ok(t) => t,
            Err(e) => {
                for p in e.details {
                    // Placed by position, never by name: a name may hold anything.
                    let Some(entry) = p.index.and_then(|k| configs.get(k)) else {
                        c.add(join(&path, "templates"), p.to_string());
                        continue;
                    };
                    if !entry.reports(&p.field) {
                        continue;
                    }
                    c.add(
                        format!("{path}.templates[{}].{}", entry.index, p.field),
                        format!("template `{}`: {}", escaped(&p.template), p.message),
                    );
                }
                Vec::new()
            }
        };
        let owner = owner
            .cloned()
            .unwrap_or_else(|| OwnerId::new("x").expect("valid"));
        let tainted = tainted(&configs);
        // `resolve_all` returns the concrete templates in input order.
        let concrete = configs
            .iter()
            .zip(tainted)
            .filter(|(e, _)| !e.config.is_abstract);
        for (t, (entry, tainted)) in templates.iter().zip(concrete) {
            if tainted {
                // Built from what read well only: its spec may lack fields.
                continue;
            }
            let tpath = format!("{path}.templates[{}]", entry.index);
            match template_names.get(&t.name) {
                Some(prev) => c.add(join(&tpath, "name"), format!("template `{}` is also defined in cloud `{}`: names must be unique across clouds", t.name, escaped(prev))),
                None => {
                    template_names.insert(t.name.clone(), raw.name.clone());
                }
            }
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
                c.add(
                    join(&tpath, &backend_field(&p)),
                    format!("template `{}`: {p}", t.name),
                );
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

/// The field a backend's problem names (`spec.memory: …` → `spec.memory`;
/// `spec: unknown field `x`…` → `spec.x`).
fn backend_field(problem: &str) -> String {
    let (head, rest) = problem.split_once(':').unwrap_or(("spec", ""));
    let head = head.trim();
    match unknown_field(rest.trim_start()) {
        Some(key) if head == "spec" => join(head, key),
        _ => head.to_owned(),
    }
}

/// A template of a cloud as read.
struct Entry {
    /// Its position in the cloud's `templates`.
    index: usize,
    /// What read well.
    config: TemplateConfig,
    /// `None` when every field read well; else the keys that did (the others
    /// were refused, with a problem each).
    good_keys: Option<HashSet<String>>,
}

impl Entry {
    /// Whether a problem of the resolved template at `field` is reported: all
    /// are for a template read whole; for one with refused fields, only those
    /// of the fields it sets and that read well (the others would come from
    /// the refused values' absence, not from what the file says).
    fn reports(&self, field: &str) -> bool {
        let Some(keys) = &self.good_keys else {
            return true;
        };
        let top = field.split(['.', '[']).next().unwrap_or(field);
        keys.contains(top)
    }
}

/// For each entry, whether it or one of its ancestors had refused fields (or
/// its chain is broken): such templates are not checked against the backend.
/// Linear: each entry is settled once, parents looked up in a map (the last
/// definition of a name, as in `resolve_all`).
fn tainted(entries: &[Entry]) -> Vec<bool> {
    let by_name: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(k, e)| (e.config.name.as_str(), k))
        .collect();
    let mut state: Vec<Option<bool>> = vec![None; entries.len()];
    for start in 0..entries.len() {
        let mut path = Vec::new();
        let mut at = Some(start);
        let mut seen = HashSet::new();
        let verdict = loop {
            let Some(k) = at else { break false };
            if let Some(v) = state[k] {
                break v;
            }
            if entries[k].good_keys.is_some() || !seen.insert(k) {
                break true;
            }
            path.push(k);
            at = match &entries[k].config.inherit_from {
                None => None,
                Some(parent) => match by_name.get(parent.as_str()) {
                    Some(&p) => Some(p),
                    None => break true,
                },
            };
        };
        if let Some(k) = at {
            if state[k].is_none() {
                state[k] = Some(verdict);
            }
        }
        for k in path {
            state[k] = Some(verdict);
        }
    }
    state.into_iter().map(|v| v.unwrap_or(true)).collect()
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
