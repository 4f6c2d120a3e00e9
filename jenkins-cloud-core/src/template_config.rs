//! Templates as users write them: every field optional, with inheritance.
//!
//! A [`TemplateConfig`] is read from YAML/JSON with serde (unknown fields are
//! errors naming the field). [`TemplateConfig::inherit_from`] merges a child over
//! its parent, [`resolve_all`] follows `inherit_from` chains through a whole
//! configuration, and [`TemplateConfig::resolve`] applies defaults and validates,
//! giving the [`AgentTemplate`](crate::template::AgentTemplate) the rest of the
//! crate uses.
//!
//! ```json
//! {"name": "base", "abstract": true, "executors": 2, "idle_timeout": "10m",
//!  "spec": {"cpu": 1024, "tags": {"team": "ci"}}}
//! {"name": "linux", "inherit_from": "base", "labels": "linux docker",
//!  "environment": {"GRADLE_OPTS": "-Xmx2g"}, "spec": {"tags": {"team": null}}}
//! ```
//!
//! Cloud resource tags have no field of their own: they live in `spec` (for
//! example `spec.tags`) and are merged by key like the rest of `spec`.

mod duration;
mod resolve;
mod setting;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::retention::MinIdleWindow;
use crate::template::NodeMode;

pub use duration::{format_duration, parse_duration, DurationParseError, Expiry, HumanDuration};
pub use resolve::{
    escaped, is_hostile, resolve_all, TemplateError, TemplateProblem, MAX_EXECUTORS,
    MAX_INSTANCE_CAP, MAX_MIN_IDLE, MAX_NAME_LEN, MAX_TEMPLATE_DURATION, MAX_USES, RESERVED_ENV,
};
pub use setting::Setting;

/// A template as users write it.
///
/// Every field but `name` is optional. See [`Setting`] for absent / `null` /
/// value, [`TemplateConfig::inherit_from`] for the merge rules and
/// [`TemplateConfig::resolve`] for defaults and validation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Template name: 1–40 of `a-z`, `0-9`, `-`, not starting or ending with `-`.
    pub name: String,
    /// Name of the parent template whose settings this one inherits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit_from: Option<String>,
    /// An abstract template only serves as a parent: [`resolve_all`] neither
    /// validates nor returns it. Written `abstract: true`.
    #[serde(
        rename = "abstract",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_abstract: bool,
    /// Labels, space-separated (`"linux docker"`), without control characters.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub labels: Setting<String>,
    /// Executors per agent, 1–[`MAX_EXECUTORS`] (64). Default 1.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub executors: Setting<u32>,
    /// Absolute remote root directory. Default
    /// [`DEFAULT_REMOTE_FS`](crate::template::DEFAULT_REMOTE_FS).
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub remote_fs: Setting<String>,
    /// `NORMAL` or `EXCLUSIVE`. Default `NORMAL`.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub mode: Setting<NodeMode>,
    /// Extra environment of the agent process; merged by key, a `null` value
    /// removes the parent's variable.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub environment: Setting<BTreeMap<String, Option<String>>>,
    /// Retire agents idle this long; `"never"` switches it off. Default 5 min;
    /// at most [`MAX_TEMPLATE_DURATION`] (365 days), as every duration here.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub idle_timeout: Setting<Expiry>,
    /// Retire agents this long after launch, once idle; `"never"` (the
    /// default) switches it off.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub max_lifetime: Setting<Expiry>,
    /// Longest wait from launch until the cloud resource runs. Default 15 min.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub launch_timeout: Setting<HumanDuration>,
    /// Longest wait from running until the agent connects. Default 5 min.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub connect_timeout: Setting<HumanDuration>,
    /// One build per agent. Default false.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub one_shot: Setting<bool>,
    /// Retire after this many builds, 1–[`MAX_USES`] (100000). Default: no limit.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub max_uses: Setting<u32>,
    /// Most agents of this template at once, at most [`MAX_INSTANCE_CAP`]
    /// (100000). Default: no cap.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub instance_cap: Setting<u32>,
    /// Whether builds this template cannot take now go to the next template
    /// that can take them ([`AgentTemplate::spill`](crate::AgentTemplate::spill)).
    /// Default true.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub spill: Setting<bool>,
    /// Idle agents kept warm, at most [`MAX_MIN_IDLE`] (1000) and at most
    /// `instance_cap`. Default 0.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub min_idle: Setting<u32>,
    /// Extra warm agents in time windows (`{window: "Mon-Fri 08:00-18:00",
    /// count: 3}`), each count at most [`MAX_MIN_IDLE`] (1000) and at most
    /// `instance_cap`. A child's list replaces the parent's.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub min_idle_windows: Setting<Vec<MinIdleWindow>>,
    /// Backend-specific settings, a JSON object; merged recursively by key, a
    /// `null` value removes the parent's key. Default `{}`.
    #[serde(default, skip_serializing_if = "Setting::is_inherit")]
    pub spec: Setting<serde_json::Value>,
}

impl TemplateConfig {
    /// A config with only a name: every field inherits.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// This template merged over `parent`; the result has no `Inherit` field the
    /// parent had set.
    ///
    /// Rules, field by field:
    /// * `name`, `inherit_from` and `abstract` are the child's own: never inherited.
    /// * A field the child sets (`Set`) wins over the parent's.
    /// * A field the child writes as `null` (`Unset`) stays `Unset`: the parent's
    ///   value is dropped and [`resolve`](Self::resolve) applies the default.
    /// * A field the child leaves out (`Inherit`) takes the parent's setting,
    ///   whatever it is (`Set`, `Unset` or `Inherit`).
    /// * Lists (`min_idle_windows`, and arrays inside `spec`) replace the
    ///   parent's: they are never concatenated.
    /// * Maps merge by key when both set them: `environment`, and JSON objects in
    ///   `spec`, recursively (so `spec.tags` merges tag by tag). The child's key
    ///   wins; a child key set to `null` removes the parent's key. A child value
    ///   that is not an object replaces the parent's value whole.
    pub fn inherit_from(&self, parent: &TemplateConfig) -> TemplateConfig {
        // Destructured so that a new field cannot be forgotten here.
        let TemplateConfig {
            name,
            inherit_from,
            is_abstract,
            labels,
            executors,
            remote_fs,
            mode,
            environment,
            idle_timeout,
            max_lifetime,
            launch_timeout,
            connect_timeout,
            one_shot,
            max_uses,
            instance_cap,
            spill,
            min_idle,
            min_idle_windows,
            spec,
        } = self;
        TemplateConfig {
            name: name.clone(),
            inherit_from: inherit_from.clone(),
            is_abstract: *is_abstract,
            labels: labels.or_inherit(&parent.labels),
            executors: executors.or_inherit(&parent.executors),
            remote_fs: remote_fs.or_inherit(&parent.remote_fs),
            mode: mode.or_inherit(&parent.mode),
            environment: merge_env(environment, &parent.environment),
            idle_timeout: idle_timeout.or_inherit(&parent.idle_timeout),
            max_lifetime: max_lifetime.or_inherit(&parent.max_lifetime),
            launch_timeout: launch_timeout.or_inherit(&parent.launch_timeout),
            connect_timeout: connect_timeout.or_inherit(&parent.connect_timeout),
            one_shot: one_shot.or_inherit(&parent.one_shot),
            max_uses: max_uses.or_inherit(&parent.max_uses),
            instance_cap: instance_cap.or_inherit(&parent.instance_cap),
            spill: spill.or_inherit(&parent.spill),
            min_idle: min_idle.or_inherit(&parent.min_idle),
            min_idle_windows: min_idle_windows.or_inherit(&parent.min_idle_windows),
            spec: merge_spec(spec, &parent.spec),
        }
    }
}

type EnvMap = BTreeMap<String, Option<String>>;

fn merge_env(child: &Setting<EnvMap>, parent: &Setting<EnvMap>) -> Setting<EnvMap> {
    match (child, parent) {
        (Setting::Set(c), Setting::Set(p)) => {
            let mut out = p.clone();
            for (k, v) in c {
                match v {
                    Some(_) => {
                        out.insert(k.clone(), v.clone());
                    }
                    None => {
                        out.remove(k);
                    }
                }
            }
            Setting::Set(out)
        }
        (Setting::Set(c), _) => Setting::Set(
            c.iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        (other, p) => other.or_inherit(p),
    }
}

fn merge_spec(
    child: &Setting<serde_json::Value>,
    parent: &Setting<serde_json::Value>,
) -> Setting<serde_json::Value> {
    match (child, parent) {
        (Setting::Set(c), Setting::Set(p)) => Setting::Set(merge_json(c, p)),
        (Setting::Set(c), _) => Setting::Set(strip_nulls(c)),
        (other, p) => other.or_inherit(p),
    }
}

/// `child` over `parent`: objects merge by key recursively (a `null` child value
/// removes the key), anything else in the child replaces the parent's value.
fn merge_json(child: &serde_json::Value, parent: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (child, parent) {
        (Value::Object(c), Value::Object(p)) => {
            let mut out = p.clone();
            for (k, v) in c {
                if v.is_null() {
                    out.remove(k);
                } else if let Some(pv) = p.get(k) {
                    out.insert(k.clone(), merge_json(v, pv));
                } else {
                    out.insert(k.clone(), strip_nulls(v));
                }
            }
            Value::Object(out)
        }
        _ => strip_nulls(child),
    }
}

/// Removes keys whose value is `null` from objects, recursively (not from arrays).
pub(crate) fn strip_nulls(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
