//! The configuration written by the import, in the order a reader expects.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::interpolate::{walk, NOT_EXPANDED};

#[derive(Serialize)]
pub(super) struct OutFile {
    pub(super) owner: String,
    pub(super) jenkins: OutJenkins,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) caps: Option<Value>,
    pub(super) clouds: Vec<OutCloud>,
}

#[derive(Serialize)]
pub(super) struct OutJenkins {
    pub(super) url: String,
    pub(super) user: String,
    pub(super) token_env: String,
}

#[derive(Serialize)]
pub(super) struct OutCloud {
    pub(super) name: String,
    pub(super) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) region: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) clusters: Vec<String>,
    pub(super) templates: Vec<OutTemplate>,
}

#[derive(Serialize, Default)]
pub(super) struct OutTemplate {
    pub(super) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) inherit_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) labels: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) executors: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) remote_fs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) idle_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) launch_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) instance_cap: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_uses: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) min_idle: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) min_idle_windows: Vec<Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub(super) spec: Map<String, Value>,
}

impl OutFile {
    /// Calls `f` on every string our loader expands variables in (all but
    /// names, `environment` and `spec.user_data_template`).
    pub(super) fn for_each_expanded_string(&mut self, f: &mut dyn FnMut(&mut String)) {
        f(&mut self.jenkins.url);
        for cloud in &mut self.clouds {
            cloud.region.iter_mut().for_each(&mut *f);
            cloud.clusters.iter_mut().for_each(&mut *f);
            for t in &mut cloud.templates {
                t.labels.iter_mut().for_each(&mut *f);
                t.remote_fs.iter_mut().for_each(&mut *f);
                for (key, value) in t.spec.iter_mut() {
                    if !NOT_EXPANDED.contains(&key.as_str()) {
                        walk(value, String::new(), NOT_EXPANDED, &mut |_, s| f(s));
                    }
                }
            }
        }
    }
}
