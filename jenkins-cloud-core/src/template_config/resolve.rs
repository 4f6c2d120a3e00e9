//! Defaults, validation and inheritance chains: [`TemplateConfig`] → [`AgentTemplate`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::{strip_nulls, Setting, TemplateConfig};
use crate::label::LabelSet;
use crate::retention::RetentionPolicy;
use crate::template::{
    AgentTemplate, NodeMode, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LAUNCH_TIMEOUT, DEFAULT_REMOTE_FS,
};

/// Environment variables jenkins-cloud sets itself; templates may not set them.
pub const RESERVED_ENV: [&str; 3] = ["JENKINS_SECRET", "JENKINS_AGENT_NAME", "JENKINS_URL"];

/// Most executors per agent.
const MAX_EXECUTORS: u32 = 64;
/// Longest template name (agent names add a suffix to it).
const MAX_NAME_LEN: usize = 40;

/// Problems found in one or more templates, each naming the template and field
/// (`templates[linux].executors: must be at least 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Each problem, naming the field.
    pub problems: Vec<String>,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{n} problem{} in templates:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TemplateError {}

/// Collects problems for one template.
struct Problems<'a> {
    template: &'a str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn add(&mut self, field: &str, msg: impl fmt::Display) {
        self.list
            .push(format!("templates[{}].{field}: {msg}", self.template));
    }
}

fn value<T: Clone>(s: &Setting<T>, default: T) -> T {
    s.get().cloned().unwrap_or(default)
}

fn check_name(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Some(format!(
            "must be 1 to {MAX_NAME_LEN} characters, found {}",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        return Some(format!(
            "`{name}` contains `{c}`: use only a-z, 0-9 and `-`"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("`{name}` must not start or end with `-`"));
    }
    None
}

fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with('/')
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'\\' | b'/'))
}

fn env_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl TemplateConfig {
    /// The resolved template: defaults applied (those of [`AgentTemplate::new`]
    /// and [`RetentionPolicy::default`]) for fields that are `Inherit` or `Unset`,
    /// then every rule checked, all problems reported at once.
    ///
    /// `inherit_from` is not followed here (see [`resolve_all`]): call it on a
    /// config already merged with [`TemplateConfig::inherit_from`]. `abstract` is
    /// ignored.
    ///
    /// Rules: name 1–40 of `a-z0-9-`, not starting or ending with `-`; labels
    /// non-empty in EXCLUSIVE mode; executors 1–64; `remote_fs` an absolute path
    /// (`/…`, or `C:\…` for Windows); every timeout longer than zero; `max_uses` at
    /// least 1 and not above 1 with `one_shot`; `min_idle` and every window count
    /// at most `instance_cap`; environment names `[A-Za-z_][A-Za-z0-9_]*` and not
    /// one of [`RESERVED_ENV`]; `spec` a JSON object.
    pub fn resolve(&self) -> Result<AgentTemplate, TemplateError> {
        let mut p = Problems {
            template: &self.name,
            list: Vec::new(),
        };
        if let Some(msg) = check_name(&self.name) {
            p.add("name", msg);
        }

        let labels = LabelSet::parse(self.labels.get().map(String::as_str).unwrap_or(""));
        let mode = value(&self.mode, NodeMode::Normal);
        if mode == NodeMode::Exclusive && labels.is_empty() {
            p.add(
                "labels",
                "must not be empty in EXCLUSIVE mode (no build could use the agents)",
            );
        }

        let executors = value(&self.executors, 1);
        if executors == 0 {
            p.add("executors", "must be at least 1");
        } else if executors > MAX_EXECUTORS {
            p.add(
                "executors",
                format_args!("must be at most {MAX_EXECUTORS}, found {executors}"),
            );
        }

        let remote_fs = value(&self.remote_fs, DEFAULT_REMOTE_FS.to_owned());
        if remote_fs.trim().is_empty() {
            p.add("remote_fs", "must not be empty");
        } else if !is_absolute(&remote_fs) {
            p.add(
                "remote_fs",
                format_args!("`{remote_fs}` must be an absolute path"),
            );
        }

        let defaults = RetentionPolicy::default();
        let idle_timeout = self
            .idle_timeout
            .get()
            .map_or(defaults.idle_timeout, |e| e.as_option());
        let max_lifetime = self
            .max_lifetime
            .get()
            .map_or(defaults.max_lifetime, |e| e.as_option());
        let launch_timeout = self
            .launch_timeout
            .get()
            .map_or(DEFAULT_LAUNCH_TIMEOUT, |d| d.0);
        let connect_timeout = self
            .connect_timeout
            .get()
            .map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0);
        for (field, d) in [
            ("idle_timeout", idle_timeout),
            ("max_lifetime", max_lifetime),
            ("launch_timeout", Some(launch_timeout)),
            ("connect_timeout", Some(connect_timeout)),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                p.add(
                    field,
                    "must be longer than zero (write `never` to switch a limit off)",
                );
            }
        }

        let one_shot = value(&self.one_shot, defaults.one_shot);
        let max_uses = self.max_uses.get().copied().or(defaults.max_uses);
        match max_uses {
            Some(0) => p.add("max_uses", "must be at least 1"),
            Some(n) if one_shot && n > 1 => p.add(
                "max_uses",
                format_args!("{n} contradicts one_shot: true (one build per agent)"),
            ),
            _ => {}
        }

        let instance_cap = self.instance_cap.get().copied();
        let spill = self.spill.get().copied().unwrap_or(true);
        let min_idle = value(&self.min_idle, defaults.min_idle);
        let min_idle_windows = value(&self.min_idle_windows, defaults.min_idle_windows);
        if let Some(cap) = instance_cap {
            if min_idle > cap {
                p.add(
                    "min_idle",
                    format_args!("{min_idle} exceeds instance_cap {cap}"),
                );
            }
            for (i, w) in min_idle_windows.iter().enumerate() {
                if w.count > cap {
                    p.add(
                        &format!("min_idle_windows[{i}].count"),
                        format_args!("{} exceeds instance_cap {cap}", w.count),
                    );
                }
            }
        }

        let mut environment = BTreeMap::new();
        for (k, v) in self.environment.get().into_iter().flatten() {
            if !env_name_ok(k) {
                p.add(
                    &format!("environment.{k}"),
                    "invalid variable name (use [A-Za-z_][A-Za-z0-9_]*)",
                );
            } else if RESERVED_ENV.contains(&k.as_str()) {
                p.add(
                    &format!("environment.{k}"),
                    "is set by jenkins-cloud and cannot be overridden",
                );
            }
            if let Some(v) = v {
                environment.insert(k.clone(), v.clone());
            }
        }

        let spec = match &self.spec {
            Setting::Set(v) if !v.is_object() => {
                p.add(
                    "spec",
                    format_args!("must be a JSON object, found {}", json_kind(v)),
                );
                serde_json::Value::Null
            }
            Setting::Set(v) => strip_nulls(v),
            _ => serde_json::Value::Object(Default::default()),
        };

        if !p.list.is_empty() {
            return Err(TemplateError { problems: p.list });
        }
        Ok(AgentTemplate {
            name: self.name.clone(),
            labels,
            executors,
            remote_fs,
            mode,
            environment,
            retention: RetentionPolicy {
                idle_timeout,
                one_shot,
                max_uses,
                max_lifetime,
                min_idle,
                min_idle_windows,
            },
            instance_cap,
            spill,
            launch_timeout,
            connect_timeout,
            spec,
        })
    }
}

fn push(problems: &mut Vec<String>, msg: String) {
    if !problems.contains(&msg) {
        problems.push(msg);
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Resolves a whole configuration: follows each template's `inherit_from` chain
/// (any depth), merges it root first with [`TemplateConfig::inherit_from`], then
/// [`TemplateConfig::resolve`]s it.
///
/// Abstract templates (`abstract: true`) only serve as parents: they are merged
/// into their children but neither validated on their own nor returned. The
/// others are returned in input order.
///
/// Errors list every problem of every template at once: duplicate names, unknown
/// parents and inheritance cycles (each naming the templates involved), and the
/// validation problems of each concrete template whose chain is sound.
pub fn resolve_all(configs: &[TemplateConfig]) -> Result<Vec<AgentTemplate>, TemplateError> {
    let mut problems: Vec<String> = Vec::new();
    let mut by_name: HashMap<&str, &TemplateConfig> = HashMap::new();
    for (i, c) in configs.iter().enumerate() {
        if by_name.insert(c.name.as_str(), c).is_some() {
            push(
                &mut problems,
                format!(
                    "templates[{}].name: defined more than once (entry {i})",
                    c.name
                ),
            );
        }
    }

    let mut resolved = Vec::new();
    'templates: for c in configs {
        // Chain from the template up to its root.
        let mut chain: Vec<&TemplateConfig> = vec![c];
        while let Some(parent_name) = &chain[chain.len() - 1].inherit_from {
            let child = chain[chain.len() - 1];
            let Some(parent) = by_name.get(parent_name.as_str()) else {
                push(
                    &mut problems,
                    format!(
                        "templates[{}].inherit_from: unknown parent template `{parent_name}`",
                        child.name
                    ),
                );
                continue 'templates;
            };
            if let Some(pos) = chain.iter().position(|t| t.name == parent.name) {
                let mut names: Vec<&str> = chain[pos..].iter().map(|t| t.name.as_str()).collect();
                // Name the cycle from its alphabetically first member so each cycle is reported once.
                let start = names
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, n)| **n)
                    .map_or(0, |(i, _)| i);
                names.rotate_left(start);
                names.push(names[0]);
                push(
                    &mut problems,
                    format!(
                        "templates[{}].inherit_from: inheritance cycle {}",
                        names[0],
                        names.join(" -> ")
                    ),
                );
                continue 'templates;
            }
            chain.push(parent);
        }
        if c.is_abstract {
            continue;
        }
        let mut merged = chain.pop().cloned().unwrap_or_default();
        while let Some(child) = chain.pop() {
            merged = child.inherit_from(&merged);
        }
        match merged.resolve() {
            Ok(t) => resolved.push(t),
            Err(e) => e.problems.into_iter().for_each(|m| push(&mut problems, m)),
        }
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(TemplateError { problems })
    }
}
