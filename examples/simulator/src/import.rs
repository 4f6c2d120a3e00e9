//! Turns a Jenkins build history into a [`Trace`], so users replay their own load.
//!
//! Input: the answer of
//! `GET /api/json?tree=jobs[name,builds[timestamp,duration,builtOn],jobs[name,builds[timestamp,duration,builtOn],jobs[…]]]`
//! (nest `jobs[…]` as deep as your folders go). Folders (any item with a
//! `jobs` array, such as `com.cloudbees.hudson.plugins.folder.Folder` or a
//! multibranch project) are walked recursively; every build with a `timestamp`
//! and a positive `duration` becomes a trace entry (a build still running has
//! duration 0 and is skipped).
//!
//! Labels: Jenkins does not record the label a build asked for, only the node it
//! ran on (`builtOn`, a node name; `""` is the built-in node; Pipeline runs have
//! no `builtOn`). [`ImportOptions::node_labels`] maps node names to label
//! expressions: an exact name wins, otherwise the longest prefix (cloud agents
//! have generated names like `linux-7f3a`); anything unmapped gets
//! [`ImportOptions::default_label`]. The submit time is the build's
//! `timestamp` (when it started: the historical queue wait is not in the API)
//! relative to the earliest build.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::trace::{Trace, TraceBuild, TraceError};

/// How node names become labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Node name (exact) or name prefix → label expression (empty: any node).
    pub node_labels: BTreeMap<String, String>,
    /// Label for builds whose node is not in the map, has no `builtOn`, or ran
    /// on the built-in node (`None`: any node).
    pub default_label: Option<String>,
}

/// What the importer read.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The trace.
    pub trace: Trace,
    /// Jobs seen (folders excluded).
    pub jobs: usize,
    /// Builds skipped (still running, or no timestamp).
    pub skipped: usize,
}

/// Imports a Jenkins `api/json` build history.
pub fn import_jenkins(text: &str, options: &ImportOptions) -> Result<Imported, TraceError> {
    let root: Value =
        serde_json::from_str(text).map_err(|e| TraceError(format!("Jenkins JSON: {e}")))?;
    let mut raw = Vec::new();
    let mut out = Imported {
        trace: Trace::default(),
        jobs: 0,
        skipped: 0,
    };
    let jobs = root
        .get("jobs")
        .and_then(Value::as_array)
        .ok_or_else(|| TraceError("Jenkins JSON: no `jobs` array at the top level".into()))?;
    walk(jobs, "jobs", "", options, &mut raw, &mut out)?;
    let start = raw.iter().map(|(ts, _)| *ts).min().unwrap_or(0);
    let builds = raw
        .into_iter()
        .map(|(ts, mut b)| {
            b.submit_s = (ts - start) as f64 / 1000.0;
            b
        })
        .collect();
    out.trace = Trace::new(builds)?;
    Ok(out)
}

fn walk(
    jobs: &[Value],
    at: &str,
    folder: &str,
    options: &ImportOptions,
    raw: &mut Vec<(i64, TraceBuild)>,
    out: &mut Imported,
) -> Result<(), TraceError> {
    for (i, job) in jobs.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let name = job.get("name").and_then(Value::as_str).ok_or_else(|| {
            TraceError(format!(
                "Jenkins JSON: {here}.name: missing or not a string"
            ))
        })?;
        let path = if folder.is_empty() {
            name.to_owned()
        } else {
            format!("{folder}/{name}")
        };
        if let Some(children) = job.get("jobs") {
            let children = children.as_array().ok_or_else(|| {
                TraceError(format!("Jenkins JSON: {here}.jobs: expected an array"))
            })?;
            walk(children, &format!("{here}.jobs"), &path, options, raw, out)?;
        }
        let Some(builds) = job.get("builds") else {
            continue;
        };
        let builds = builds
            .as_array()
            .ok_or_else(|| TraceError(format!("Jenkins JSON: {here}.builds: expected an array")))?;
        out.jobs += 1;
        for (j, build) in builds.iter().enumerate() {
            let field = |f: &str| build.get(f).filter(|v| !v.is_null());
            let ts = field("timestamp");
            let duration = field("duration");
            let (Some(ts), Some(duration)) = (ts, duration) else {
                out.skipped += 1;
                continue;
            };
            let number = |v: &Value, f: &str| {
                v.as_i64().ok_or_else(|| {
                    TraceError(format!(
                        "Jenkins JSON: {here}.builds[{j}].{f}: expected an integer of milliseconds"
                    ))
                })
            };
            let (ts, duration) = (number(ts, "timestamp")?, number(duration, "duration")?);
            if duration <= 0 {
                out.skipped += 1;
                continue;
            }
            let node = field("builtOn").and_then(Value::as_str).unwrap_or("");
            raw.push((
                ts,
                TraceBuild {
                    submit_s: 0.0,
                    label: label_for(node, options),
                    duration_s: duration as f64 / 1000.0,
                    task: path.clone(),
                },
            ));
        }
    }
    Ok(())
}

fn label_for(node: &str, options: &ImportOptions) -> Option<String> {
    let mapped = if node.is_empty() {
        None
    } else {
        options.node_labels.get(node).or_else(|| {
            options
                .node_labels
                .iter()
                .filter(|(prefix, _)| node.starts_with(prefix.as_str()))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, label)| label)
        })
    };
    mapped
        .or(options.default_label.as_ref())
        .filter(|l| !l.trim().is_empty())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_then_default() {
        let options = ImportOptions {
            node_labels: [
                ("linux-".to_owned(), "linux".to_owned()),
                ("linux-big-".to_owned(), "linux&&large".to_owned()),
            ]
            .into_iter()
            .collect(),
            default_label: Some("linux".into()),
        };
        assert_eq!(
            label_for("linux-big-1", &options).as_deref(),
            Some("linux&&large")
        );
        assert_eq!(label_for("linux-2", &options).as_deref(), Some("linux"));
        assert_eq!(label_for("", &options).as_deref(), Some("linux"));
        assert_eq!(label_for("mac", &ImportOptions::default()), None);
    }
}
