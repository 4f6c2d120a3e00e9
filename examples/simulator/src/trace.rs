//! Workloads: a list of builds (submit time, label expression, duration).
//!
//! Read from CSV (`submit_s,label,duration_s[,task]` with a header line; an
//! empty label means "any node") or JSON (an array of
//! `{"submit_s", "label", "duration_s", "task"}` objects, or `{"builds": [...]}`),
//! imported from a Jenkins build history ([`crate::import`]), or the built-in
//! one-day trace ([`Trace::builtin_day`]).

use std::fmt;

use jenkins_cloud_core::label::LabelExpr;
use serde::{Deserialize, Serialize};

/// One build of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceBuild {
    /// Seconds from the start of the trace.
    pub submit_s: f64,
    /// Label expression (`None`: any NORMAL-mode node).
    #[serde(default)]
    pub label: Option<String>,
    /// Build duration once started, seconds.
    pub duration_s: f64,
    /// Job name (for reports).
    #[serde(default)]
    pub task: String,
}

/// A workload, sorted by submit time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The builds.
    pub builds: Vec<TraceBuild>,
}

/// A trace that could not be read; the message names the line or field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError(pub String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace: {}", self.0)
    }
}

impl std::error::Error for TraceError {}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonTrace {
    List(Vec<TraceBuild>),
    Wrapped { builds: Vec<TraceBuild> },
}

impl Trace {
    /// A trace of `builds`, checked and sorted by submit time (stable).
    pub fn new(builds: Vec<TraceBuild>) -> Result<Trace, TraceError> {
        for (i, b) in builds.iter().enumerate() {
            check(&format!("builds[{i}]"), b)?;
        }
        let mut builds = builds;
        builds.sort_by(|a, b| a.submit_s.total_cmp(&b.submit_s));
        for (i, b) in builds.iter_mut().enumerate() {
            if b.task.is_empty() {
                b.task = format!("build-{i}");
            }
        }
        Ok(Trace { builds })
    }

    /// Parses a trace file: JSON when it starts with `[` or `{`, CSV otherwise.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        match text.trim_start().chars().next() {
            Some('[') | Some('{') => Self::parse_json(text),
            _ => Self::parse_csv(text),
        }
    }

    /// Parses the JSON form.
    pub fn parse_json(text: &str) -> Result<Trace, TraceError> {
        let parsed: JsonTrace = serde_json::from_str(text).map_err(|e| {
            // The untagged enum hides the inner message: retry on the list form for it.
            let inner = serde_json::from_str::<Vec<TraceBuild>>(text)
                .err()
                .or_else(|| {
                    #[derive(Deserialize)]
                    #[allow(dead_code)]
                    struct W {
                        builds: Vec<TraceBuild>,
                    }
                    serde_json::from_str::<W>(text).err()
                });
            TraceError(format!(
                "JSON: {}",
                inner.map_or(e.to_string(), |i| i.to_string())
            ))
        })?;
        let builds = match parsed {
            JsonTrace::List(b) | JsonTrace::Wrapped { builds: b } => b,
        };
        Self::new(builds)
    }

    /// Parses the CSV form (header line naming the columns, `#` comments allowed).
    pub fn parse_csv(text: &str) -> Result<Trace, TraceError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let Some((hline, header)) = lines.next() else {
            return Err(TraceError(
                "CSV: empty file (expected a header `submit_s,label,duration_s`)".into(),
            ));
        };
        let columns = split_csv(header).map_err(|e| TraceError(format!("line {hline}: {e}")))?;
        let find = |name: &str| columns.iter().position(|c| c == name);
        let (Some(submit), Some(label), Some(duration)) =
            (find("submit_s"), find("label"), find("duration_s"))
        else {
            return Err(TraceError(format!(
                "line {hline}: header must name the columns submit_s, label and duration_s (found `{header}`)"
            )));
        };
        let task = find("task");
        let mut builds = Vec::new();
        for (n, line) in lines {
            let fields = split_csv(line).map_err(|e| TraceError(format!("line {n}: {e}")))?;
            if fields.len() != columns.len() {
                return Err(TraceError(format!(
                    "line {n}: expected {} fields, found {}",
                    columns.len(),
                    fields.len()
                )));
            }
            let number = |col: usize, name: &str| {
                fields[col].parse::<f64>().map_err(|_| {
                    TraceError(format!(
                        "line {n}, field {name}: `{}` is not a number",
                        fields[col]
                    ))
                })
            };
            let b = TraceBuild {
                submit_s: number(submit, "submit_s")?,
                label: Some(fields[label].clone()).filter(|l| !l.trim().is_empty()),
                duration_s: number(duration, "duration_s")?,
                task: task.map(|t| fields[t].clone()).unwrap_or_default(),
            };
            check(&format!("line {n}"), &b)?;
            builds.push(b);
        }
        Self::new(builds)
    }

    /// The built-in one-day trace: a nightly batch at 01:00, a morning burst
    /// from 08:45, a steady working day until 18:00 and a quiet evening, over
    /// five labels (`linux`, `linux&&large`, `arm64`, `docker-host`, `spot`).
    /// Fixed: the same trace whatever the simulation seed.
    pub fn builtin_day() -> Trace {
        let mut rng = fastrand::Rng::with_seed(0x05EE_DDA7);
        let mut builds = Vec::new();
        let mut add =
            |rng: &mut fastrand::Rng, at: f64, label: &str, min_m: u64, max_m: u64, task: &str| {
                builds.push(TraceBuild {
                    submit_s: at.round(),
                    label: Some(label.to_owned()),
                    duration_s: (rng.u64(min_m * 60..=max_m * 60)) as f64,
                    task: task.to_owned(),
                });
            };
        let h = 3600.0;
        // Nightly batch: integration suites on large agents and EC2 docker hosts.
        for i in 0..40 {
            add(
                &mut rng,
                1.0 * h + i as f64 * 5.0,
                "linux&&large",
                20,
                60,
                "nightly-integration",
            );
        }
        for i in 0..20 {
            add(
                &mut rng,
                1.0 * h + 30.0 + i as f64 * 3.0,
                "docker-host",
                15,
                40,
                "nightly-images",
            );
        }
        for i in 0..30 {
            add(
                &mut rng,
                2.0 * h + i as f64 * 10.0,
                "spot",
                10,
                30,
                "nightly-fuzz",
            );
        }
        // Morning burst: everyone pushes between 08:45 and 09:30.
        for _ in 0..150 {
            let at = 8.75 * h + rng.f64() * 0.75 * h;
            add(&mut rng, at, "linux", 3, 12, "pr-build");
        }
        for _ in 0..30 {
            let at = 8.75 * h + rng.f64() * 0.75 * h;
            add(&mut rng, at, "linux&&large", 8, 25, "pr-e2e");
        }
        // Steady day 09:30-18:00 (Poisson arrivals), then a quiet evening until 23:00.
        let mut poisson = |rng: &mut fastrand::Rng,
                           from: f64,
                           to: f64,
                           per_hour: f64,
                           label: &str,
                           lo: u64,
                           hi: u64,
                           task: &str| {
            let mut t = from;
            loop {
                t += -(1.0 - rng.f64()).ln() * h / per_hour;
                if t >= to {
                    break;
                }
                add(rng, t, label, lo, hi, task);
            }
        };
        poisson(&mut rng, 9.5 * h, 18.0 * h, 40.0, "linux", 2, 15, "ci");
        poisson(
            &mut rng,
            9.5 * h,
            18.0 * h,
            8.0,
            "linux&&large",
            10,
            30,
            "e2e",
        );
        poisson(
            &mut rng,
            9.5 * h,
            18.0 * h,
            6.0,
            "arm64",
            5,
            20,
            "arm-build",
        );
        poisson(
            &mut rng,
            9.5 * h,
            18.0 * h,
            4.0,
            "docker-host",
            5,
            25,
            "image-build",
        );
        poisson(&mut rng, 18.0 * h, 23.0 * h, 6.0, "linux", 2, 15, "ci");
        Trace::new(builds).expect("the built-in trace is valid")
    }

    /// Sum of build durations, seconds.
    pub fn build_seconds(&self) -> f64 {
        self.builds.iter().map(|b| b.duration_s).sum()
    }
}

fn check(at: &str, b: &TraceBuild) -> Result<(), TraceError> {
    if !(b.submit_s.is_finite() && b.submit_s >= 0.0) {
        return Err(TraceError(format!(
            "{at}, field submit_s: must be a non-negative number, found {}",
            b.submit_s
        )));
    }
    if !(b.duration_s.is_finite() && b.duration_s >= 0.0) {
        return Err(TraceError(format!(
            "{at}, field duration_s: must be a non-negative number, found {}",
            b.duration_s
        )));
    }
    if let Some(label) = &b.label {
        LabelExpr::parse_optional(label).map_err(|e| {
            TraceError(format!(
                "{at}, field label: `{label}` is not a label expression: {e}"
            ))
        })?;
    }
    Ok(())
}

/// Splits one CSV line: commas separate, double quotes quote (`""` escapes).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => out.push(std::mem::take(&mut cur).trim().to_owned()),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur.trim().to_owned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quotes_comments_and_any_node() {
        let t = Trace::parse(
            "# a comment\nsubmit_s,label,duration_s,task\n10,\"linux && docker\",60,a\n5,,30,b\n",
        )
        .unwrap();
        assert_eq!(t.builds.len(), 2);
        assert_eq!(t.builds[0].task, "b", "sorted by submit time");
        assert_eq!(t.builds[0].label, None);
        assert_eq!(t.builds[1].label.as_deref(), Some("linux && docker"));
    }

    #[test]
    fn csv_errors_name_line_and_field() {
        let e = Trace::parse("submit_s,label,duration_s\n1,linux,60\n2,linux,soon\n").unwrap_err();
        assert_eq!(e.0, "line 3, field duration_s: `soon` is not a number");
        let e = Trace::parse("submit_s,label,duration_s\n1,linux &&,60\n").unwrap_err();
        assert!(
            e.0.starts_with("line 2, field label: `linux &&` is not a label expression"),
            "{e}"
        );
        let e = Trace::parse("submit_s,label,duration_s\n-1,linux,60\n").unwrap_err();
        assert!(
            e.0.starts_with("line 2, field submit_s: must be a non-negative"),
            "{e}"
        );
        let e = Trace::parse("submit_s,label\n").unwrap_err();
        assert!(e.0.starts_with("line 1: header must name"), "{e}");
        let e = Trace::parse("submit_s,label,duration_s\n1,a\n").unwrap_err();
        assert_eq!(e.0, "line 2: expected 3 fields, found 2");
    }

    #[test]
    fn json_forms_and_errors() {
        let t = Trace::parse(r#"[{"submit_s": 3, "label": "arm64", "duration_s": 9}]"#).unwrap();
        assert_eq!(t.builds[0].task, "build-0");
        let t = Trace::parse(r#"{"builds": [{"submit_s": 3, "duration_s": 9}]}"#).unwrap();
        assert_eq!(t.builds[0].label, None);
        let e = Trace::parse("[{\"submit_s\": 3,\n \"duration\": 9}]").unwrap_err();
        assert!(
            e.0.contains("unknown field `duration`") && e.0.contains("line 2"),
            "{e}"
        );
        let e = Trace::parse(
            r#"[{"submit_s": 3, "duration_s": 9}, {"submit_s": 1, "duration_s": -9}]"#,
        )
        .unwrap_err();
        assert!(e.0.starts_with("builds[1], field duration_s"), "{e}");
    }

    #[test]
    fn builtin_day_is_fixed_and_spans_the_day() {
        let a = Trace::builtin_day();
        assert_eq!(a, Trace::builtin_day());
        assert!(a.builds.len() > 500, "{}", a.builds.len());
        assert!(a.builds.iter().all(|b| b.submit_s < 86_400.0));
        let labels: std::collections::BTreeSet<_> =
            a.builds.iter().filter_map(|b| b.label.clone()).collect();
        assert_eq!(labels.len(), 5, "{labels:?}");
    }
}
