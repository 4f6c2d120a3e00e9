//! The memory backend's part of a template ([`AgentTemplate::spec`](crate::template::AgentTemplate::spec)).

use std::time::Duration;

/// Parsed memory spec: latency overrides for one template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct MemorySpec {
    pub(super) start_latency: Option<Duration>,
    pub(super) stop_latency: Option<Duration>,
    pub(super) connect_latency: Option<Duration>,
}

const KEYS: &[&str] = &["start_latency_ms", "stop_latency_ms", "connect_latency_ms"];

impl MemorySpec {
    /// Parses `spec`: `null` or an object with only the keys above, each a
    /// non-negative integer of milliseconds. Every problem is reported, naming
    /// its field.
    pub(super) fn parse(spec: &serde_json::Value) -> Result<Self, Vec<String>> {
        let map = match spec {
            serde_json::Value::Null => return Ok(Self::default()),
            serde_json::Value::Object(map) => map,
            other => {
                return Err(vec![format!(
                    "spec: expected an object, found {}",
                    kind(other)
                )])
            }
        };
        let mut problems = Vec::new();
        let mut out = Self::default();
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by_key(|(k, _)| k.as_str());
        for (key, value) in entries {
            if !KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    "spec.{key}: unknown key (expected one of {})",
                    KEYS.join(", ")
                ));
                continue;
            }
            let Some(ms) = value.as_u64() else {
                problems.push(format!(
                    "spec.{key}: expected a non-negative integer of milliseconds, found {}",
                    kind(value)
                ));
                continue;
            };
            let d = Some(Duration::from_millis(ms));
            match key.as_str() {
                "start_latency_ms" => out.start_latency = d,
                "stop_latency_ms" => out.stop_latency = d,
                _ => out.connect_latency = d,
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_known_keys_and_null() {
        assert_eq!(
            MemorySpec::parse(&json!(null)).unwrap(),
            MemorySpec::default()
        );
        let s =
            MemorySpec::parse(&json!({"start_latency_ms": 1500, "connect_latency_ms": 0})).unwrap();
        assert_eq!(s.start_latency, Some(Duration::from_millis(1500)));
        assert_eq!(s.connect_latency, Some(Duration::ZERO));
        assert_eq!(s.stop_latency, None);
    }

    #[test]
    fn reports_every_problem_by_field() {
        let errs =
            MemorySpec::parse(&json!({"cpu": 256, "stop_latency_ms": -1, "start_latency_ms": "5"}))
                .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("spec.cpu: unknown key"), "{errs:?}");
        assert!(
            errs[1].starts_with("spec.start_latency_ms: expected a non-negative integer"),
            "{errs:?}"
        );
        assert!(
            errs[2].starts_with("spec.stop_latency_ms: expected"),
            "{errs:?}"
        );
        assert_eq!(
            MemorySpec::parse(&json!([1])).unwrap_err(),
            vec!["spec: expected an object, found an array".to_owned()]
        );
    }
}
