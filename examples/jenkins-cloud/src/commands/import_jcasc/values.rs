//! Reading JCasC values the way the plugins' data binding does (numbers
//! written as text and the reverse), and the notes every converter writes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::variables::failures_in;

thread_local! {
    /// Unresolved strings (see [`failures_in`]) a converter has read.
    static READ_FAILURES: RefCell<BTreeSet<usize>> = const { RefCell::new(BTreeSet::new()) };
}

/// `s`, noting an unresolved variable in it as read.
fn read(s: &str) -> &str {
    let found = failures_in(s);
    if !found.is_empty() {
        READ_FAILURES.with(|r| r.borrow_mut().extend(found));
    }
    s
}

/// The unresolved strings read since the last call (and forgets them).
pub(super) fn take_read_failures() -> Vec<usize> {
    READ_FAILURES.with(|r| std::mem::take(&mut *r.borrow_mut()).into_iter().collect())
}

/// Collects notes, each prefixed with the JCasC path of its field.
#[derive(Default)]
pub(super) struct Notes(pub(super) Vec<String>);

impl Notes {
    pub(super) fn add(&mut self, path: &str, message: impl AsRef<str>) {
        self.0.push(format!("{path}: {}", message.as_ref()));
    }
}

/// A template or cloud name in our alphabet (`a-z`, `0-9`, `-`, at most 40).
pub(super) fn sanitize_name(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.chars().take(40).collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// `name`, or `default` when `name` is empty.
pub(super) fn or_default(name: String, default: &str) -> String {
    if name.is_empty() {
        default.to_owned()
    } else {
        name
    }
}

/// `base`, made unique among `used` with a `-2`, `-3`… suffix.
pub(super) fn unique_name(base: String, used: &mut Vec<String>) -> String {
    let mut name = or_default(base, "template");
    if used.contains(&name) {
        let mut n = 2;
        while used.contains(&format!("{name}-{n}")) {
            n += 1;
        }
        name = format!("{name}-{n}");
    }
    used.push(name.clone());
    name
}

/// A JCasC scalar as text (numbers are often written as strings there and the reverse).
pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(read(s).trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => read(s).trim().parse().ok(),
        _ => None,
    }
}

/// A count the plugins store as an `int`, as `u32` (negative: `None`).
pub(super) fn count(v: &Value) -> Option<u32> {
    int(v).and_then(|n| u32::try_from(n).ok())
}

pub(super) fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => read(s).trim().parse().ok(),
        _ => None,
    }
}

/// `[{name, value}]` lists (environments, tags, log driver options).
pub(super) fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    Some((
                        text(e.get("name")?)?,
                        e.get("value").and_then(text).unwrap_or_default(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `[{name, value}]` tags as a spec `tags` object.
pub(super) fn tags(v: &Value) -> Value {
    let tags: Map<String, Value> = pairs(v)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Value::Object(tags)
}

/// A list written as one string, split on commas and white space (the ec2
/// plugin separates subnets with spaces, the amazon-ecs plugin with commas).
pub(super) fn split_list(v: &Value) -> Vec<String> {
    text(v)
        .map(|s| {
            s.split([',', ' ', '\n', '\t'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a JCasC value is "unset" (null, empty string, empty list, false, 0).
pub(super) fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// Notes each set field of `obj` that is not in `known`, with the reason
/// from `dropped` (or "no equivalent").
pub(super) fn note_dropped(
    obj: &Map<String, Value>,
    path: &str,
    known: &[&str],
    dropped: &[(&str, &str)],
    notes: &mut Notes,
) {
    for (k, v) in obj {
        if known.contains(&k.as_str()) || is_unset(v) {
            continue;
        }
        let why = dropped
            .iter()
            .find(|(n, _)| n == k)
            .map_or("no equivalent", |(_, why)| why);
        notes.add(&format!("{path}.{k}"), format!("not carried: {why}"));
    }
}

/// Plugin template names → ours, for `inheritFrom`.
pub(super) type Renamed = BTreeMap<String, String>;
