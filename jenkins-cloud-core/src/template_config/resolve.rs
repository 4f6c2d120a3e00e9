//! Defaults, validation and inheritance chains: [`TemplateConfig`] → [`AgentTemplate`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use super::{strip_nulls, Setting, TemplateConfig};
use crate::label::LabelSet;
use crate::retention::RetentionPolicy;
use crate::template::{
    AgentTemplate, NodeMode, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LAUNCH_TIMEOUT, DEFAULT_REMOTE_FS,
};

/// Environment variables jenkins-cloud sets itself; templates may not set them.
pub const RESERVED_ENV: [&str; 3] = ["JENKINS_SECRET", "JENKINS_AGENT_NAME", "JENKINS_URL"];

/// Most executors per agent: 64.
pub const MAX_EXECUTORS: u32 = 64;
/// Most idle agents a template keeps warm: 1000, for `min_idle` and for the
/// `count` of each `min_idle_windows` entry.
pub const MAX_MIN_IDLE: u32 = 1000;
/// Largest `instance_cap`: 100000 agents.
pub const MAX_INSTANCE_CAP: u32 = 100_000;
/// Largest `max_uses`: 100000 builds per agent.
pub const MAX_USES: u32 = 100_000;
/// Longest template timeout or lifetime (`idle_timeout`, `max_lifetime`,
/// `launch_timeout`, `connect_timeout`): 365 days (`never` switches the
/// first two off).
pub const MAX_TEMPLATE_DURATION: Duration = Duration::from_secs(365 * 86_400);
/// Longest template name: 40 characters (agent names add a suffix to it).
pub const MAX_NAME_LEN: usize = 40;

/// One problem of one template, with where it is, for callers that name the
/// template their own way (by its position in a file, for example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// Position of the template in the slice given to [`resolve_all`]; `None`
    /// from [`TemplateConfig::resolve`].
    pub index: Option<usize>,
    /// The template's name as written. It may hold any character: show it
    /// escaped (as [`Display`](fmt::Display) of this type does).
    pub template: String,
    /// The field, relative to the template (`executors`,
    /// `min_idle_windows[0].count`, `environment.<key as written>`).
    pub field: String,
    /// What is wrong. Text taken from the configuration is escaped in it.
    pub message: String,
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "templates[{}].{}: {}",
            bracketed(&self.template),
            escaped(&self.field),
            self.message
        )
    }
}

/// Problems found in one or more templates, each naming the template and field
/// (`templates[linux].executors: must be at least 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Each problem as text, naming the template and the field: the
    /// [`Display`](fmt::Display) of each of [`details`](Self::details).
    pub problems: Vec<String>,
    /// The same problems, with the template's position and the field apart.
    pub details: Vec<TemplateProblem>,
}

impl TemplateError {
    fn new(details: Vec<TemplateProblem>) -> Self {
        Self {
            problems: details.iter().map(ToString::to_string).collect(),
            details,
        }
    }
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

/// `text` with control characters (and the invisible characters that reorder
/// or hide text) escaped, so that it can be shown on a terminal as is.
pub fn escaped(text: &str) -> String {
    if !text.chars().any(is_hostile) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if is_hostile(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Whether `c` must not reach a terminal raw: a control character (NUL,
/// newline, ESC…) or an invisible formatting character (zero-width, bidi
/// override, byte-order mark).
pub fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// A template name as shown between brackets: as is when it is made of
/// letters, digits, `-`, `_` and `.` only, else quoted and escaped
/// (`templates["a]b"]`), so that no name can change the path shown.
fn bracketed(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// Collects problems for one template.
struct Problems<'a> {
    template: &'a str,
    list: Vec<TemplateProblem>,
}

impl Problems<'_> {
    fn add(&mut self, field: &str, msg: impl fmt::Display) {
        self.list.push(TemplateProblem {
            index: None,
            template: self.template.to_owned(),
            field: field.to_owned(),
            message: msg.to_string(),
        });
    }

    /// A problem unless `n` is at most `max`.
    fn at_most(&mut self, field: &str, n: u32, max: u32) {
        if n > max {
            self.add(field, format_args!("must be at most {max}, found {n}"));
        }
    }
}

fn value<T: Clone>(s: &Setting<T>, default: T) -> T {
    s.get().cloned().unwrap_or(default)
}

fn check_name(name: &str) -> Option<String> {
    let shown = format!("`{}`", escaped(name));
    let count = name.chars().count();
    if name.is_empty() || count > MAX_NAME_LEN {
        return Some(format!(
            "must be 1 to {MAX_NAME_LEN} characters, found {count}"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        return Some(format!(
            "{shown} contains `{}`: use only a-z, 0-9 and `-`",
            escaped(&c.to_string())
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("{shown} must not start or end with `-`"));
    }
    None
}

/// Labels may be separated by spaces, tabs and newlines; no other control
/// character may appear, and none at all inside a (quoted) label.
fn check_labels(text: &str, labels: &LabelSet) -> Option<String> {
    let bad_separator = text
        .chars()
        .find(|c| is_hostile(*c) && !matches!(c, ' ' | '\t' | '\n' | '\r'));
    let bad_label = labels.iter().find(|l| l.chars().any(is_hostile));
    if bad_separator.is_some() || bad_label.is_some() {
        return Some(format!(
            "`{}` contains a control or invisible character: write labels as plain words separated by spaces",
            escaped(text)
        ));
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
    /// non-empty in EXCLUSIVE mode and free of control characters; executors
    /// 1–[`MAX_EXECUTORS`]; `remote_fs` an absolute path (`/…`, or `C:\…` for
    /// Windows) without control characters; every timeout longer than zero and
    /// at most [`MAX_TEMPLATE_DURATION`]; `max_uses` 1–[`MAX_USES`] and not above
    /// 1 with `one_shot`; `instance_cap` at most [`MAX_INSTANCE_CAP`]; `min_idle`
    /// and every window count at most [`MAX_MIN_IDLE`] and at most
    /// `instance_cap`; environment names `[A-Za-z_][A-Za-z0-9_]*` and not one of
    /// [`RESERVED_ENV`]; `spec` a JSON object.
    pub fn resolve(&self) -> Result<AgentTemplate, TemplateError> {
        let mut p = Problems {
            template: &self.name,
            list: Vec::new(),
        };
        if let Some(msg) = check_name(&self.name) {
            p.add("name", msg);
        }

        let labels_text = self.labels.get().map(String::as_str).unwrap_or("");
        let labels = LabelSet::parse(labels_text);
        if let Some(msg) = check_labels(labels_text, &labels) {
            p.add("labels", msg);
        }
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
        } else {
            p.at_most("executors", executors, MAX_EXECUTORS);
        }

        let remote_fs = value(&self.remote_fs, DEFAULT_REMOTE_FS.to_owned());
        if remote_fs.trim().is_empty() {
            p.add("remote_fs", "must not be empty");
        } else if remote_fs.chars().any(is_hostile) {
            p.add(
                "remote_fs",
                format_args!(
                    "`{}` contains a control or invisible character",
                    escaped(&remote_fs)
                ),
            );
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
            } else if d.is_some_and(|d| d > MAX_TEMPLATE_DURATION) {
                p.add(
                    field,
                    format_args!(
                        "must be at most {} days{}",
                        MAX_TEMPLATE_DURATION.as_secs() / 86_400,
                        if field == "idle_timeout" || field == "max_lifetime" {
                            " (write `never` to switch the limit off)"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }

        let one_shot = value(&self.one_shot, defaults.one_shot);
        let max_uses = self.max_uses.get().copied().or(defaults.max_uses);
        match max_uses {
            Some(0) => p.add("max_uses", "must be at least 1"),
            Some(n) if n > MAX_USES => p.at_most("max_uses", n, MAX_USES),
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
            p.at_most("instance_cap", cap, MAX_INSTANCE_CAP);
        }
        let counts = std::iter::once(("min_idle".to_owned(), min_idle)).chain(
            min_idle_windows
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("min_idle_windows[{i}].count"), w.count)),
        );
        for (field, n) in counts {
            match instance_cap {
                _ if n > MAX_MIN_IDLE => p.at_most(&field, n, MAX_MIN_IDLE),
                Some(cap) if n > cap => {
                    p.add(&field, format_args!("{n} exceeds instance_cap {cap}"))
                }
                _ => {}
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
            return Err(TemplateError::new(p.list));
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

/// Problems of a whole configuration, each listed once.
#[derive(Default)]
struct Collector {
    list: Vec<TemplateProblem>,
    seen: HashSet<String>,
}

impl Collector {
    fn add(&mut self, index: usize, template: &str, field: &str, message: String) {
        self.push(TemplateProblem {
            index: Some(index),
            template: template.to_owned(),
            field: field.to_owned(),
            message,
        });
    }

    fn push(&mut self, problem: TemplateProblem) {
        if self.seen.insert(problem.to_string()) {
            self.list.push(problem);
        }
    }
}

/// Where the walk of [`resolve_all`] is with one template.
enum Walk {
    /// Not reached yet.
    Todo,
    /// On the stack of the current walk, at this position.
    OnStack(usize),
    /// Merged with all its ancestors; `None` when its chain is broken (unknown
    /// parent or cycle, already reported).
    Done(Option<Box<TemplateConfig>>),
}

/// Merges template `start` with its ancestors, memoising every template of
/// its chain in `walk` so that each is merged once whatever the number of its
/// descendants: linear in the number of templates overall.
fn merge_chain(
    start: usize,
    configs: &[TemplateConfig],
    by_name: &HashMap<&str, usize>,
    walk: &mut [Walk],
    out: &mut Collector,
) {
    if !matches!(walk[start], Walk::Todo) {
        return;
    }
    let mut stack = vec![start];
    walk[start] = Walk::OnStack(0);
    let broken = |stack: &[usize], walk: &mut [Walk]| {
        for &i in stack {
            walk[i] = Walk::Done(None);
        }
    };
    while let Some(&top) = stack.last() {
        let child = &configs[top];
        let Some(parent_name) = &child.inherit_from else {
            walk[top] = Walk::Done(Some(Box::new(child.clone())));
            stack.pop();
            continue;
        };
        let Some(&parent) = by_name.get(parent_name.as_str()) else {
            out.add(
                top,
                &child.name,
                "inherit_from",
                format!("unknown parent template `{}`", escaped(parent_name)),
            );
            return broken(&stack, walk);
        };
        match &walk[parent] {
            Walk::Done(Some(merged)) => {
                let merged = child.inherit_from(merged);
                walk[top] = Walk::Done(Some(Box::new(merged)));
                stack.pop();
            }
            Walk::Done(None) => return broken(&stack, walk),
            Walk::OnStack(pos) => {
                let cycle = &stack[*pos..];
                // Named from its alphabetically first member so that it reads
                // the same whichever template the walk entered it by.
                let first = (0..cycle.len())
                    .min_by_key(|&k| configs[cycle[k]].name.as_str())
                    .unwrap_or(0);
                let names: Vec<String> = (0..=cycle.len())
                    .map(|k| bracketed(&configs[cycle[(first + k) % cycle.len()]].name))
                    .collect();
                let at = cycle[first];
                out.add(
                    at,
                    &configs[at].name,
                    "inherit_from",
                    format!("inheritance cycle {}", names.join(" -> ")),
                );
                return broken(&stack, walk);
            }
            Walk::Todo => {
                walk[parent] = Walk::OnStack(stack.len());
                stack.push(parent);
            }
        }
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
/// validation problems of each concrete template whose chain is sound. Each
/// [`TemplateProblem::index`] is the template's position in `configs`.
///
/// Linear in the number of templates (and in the depth of inheritance): each
/// template is merged once with its already merged parent, and names are
/// looked up in a map. Where a name is defined more than once, children
/// inherit from its last definition.
pub fn resolve_all(configs: &[TemplateConfig]) -> Result<Vec<AgentTemplate>, TemplateError> {
    let mut out = Collector::default();
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        if by_name.insert(c.name.as_str(), i).is_some() {
            out.add(
                i,
                &c.name,
                "name",
                format!("defined more than once (entry {i})"),
            );
        }
    }

    let mut walk: Vec<Walk> = configs.iter().map(|_| Walk::Todo).collect();
    let mut resolved = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        merge_chain(i, configs, &by_name, &mut walk, &mut out);
        if c.is_abstract {
            continue;
        }
        let Walk::Done(Some(merged)) = &walk[i] else {
            continue;
        };
        match merged.resolve() {
            Ok(t) => resolved.push(t),
            Err(e) => {
                for mut p in e.details {
                    p.index = Some(i);
                    out.push(p);
                }
            }
        }
    }
    if out.list.is_empty() {
        Ok(resolved)
    } else {
        Err(TemplateError::new(out.list))
    }
}
