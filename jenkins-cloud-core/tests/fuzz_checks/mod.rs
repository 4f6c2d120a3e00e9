#![allow(dead_code)] // each includer (fuzz target, no_panic test) uses only some checks.
//! The properties the fuzz targets check, shared by `fuzz/fuzz_targets/*` (run by
//! cargo-fuzz) and `tests/no_panic.rs` (a seeded corpus in every `cargo test`).
//! Each function takes arbitrary bytes and panics only when a property fails.

use std::str::FromStr;

use jenkins_cloud_core::jenkins::{Demand, JenkinsNode, NodeMarker, QueueItem};
use jenkins_cloud_core::label::{LabelExpr, LabelSet};
use jenkins_cloud_core::schedule::Window;

/// Label expressions and label sets: parsing never panics; what parses prints
/// as text that parses back to the same expression (and set).
pub fn label_expr(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<LabelExpr>() {
        Ok(expr) => {
            assert_round_trip(text, &expr);
            let _ = expr.matches(&LabelSet::parse(text));
            let _ = expr.atoms();
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(
                e.position() <= text.chars().count(),
                "{text:?}: error position {} past the end",
                e.position()
            );
        }
    }
    if let Ok(Some(expr)) = LabelExpr::parse_optional(text) {
        assert_round_trip(text, &expr);
    }
    assert_round_trip(text, &LabelExpr::parse_lax(text));

    let set = LabelSet::parse(text);
    let shown = set.to_string();
    assert_eq!(
        LabelSet::parse(&shown),
        set,
        "{text:?}: label set printed as {shown:?} reads back differently"
    );
}

fn assert_round_trip(input: &str, expr: &LabelExpr) {
    let shown = expr.to_string();
    match shown.parse::<LabelExpr>() {
        Ok(again) => assert_eq!(
            &again, expr,
            "{input:?} printed as {shown:?} parses to a different expression"
        ),
        Err(e) => panic!("{input:?} printed as {shown:?}, which does not parse: {e}"),
    }
}

/// JSON read from (or about) Jenkins: deserializing arbitrary bytes never panics,
/// and whatever deserializes serializes back to an equal value. Node-description
/// markers and time windows: parsing never panics and round-trips.
pub fn jenkins_json(data: &[u8]) {
    json_round_trip::<Demand>(data);
    json_round_trip::<QueueItem>(data);
    json_round_trip::<JenkinsNode>(data);
    json_round_trip::<Vec<JenkinsNode>>(data);

    // Jenkins HTTP client response types (`jenkins::client`, written in
    // parallel): add one `json_round_trip::<client::…>(data)` (or a plain
    // `let _ = serde_json::from_slice::<…>(data)` for Deserialize-only types)
    // per response type here once the client is merged.

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(marker) = NodeMarker::parse(text) {
        assert_eq!(
            NodeMarker::parse(&marker.to_description()),
            Some(marker.clone()),
            "{text:?}: marker {marker:?} does not survive its own description"
        );
    }
    if let Ok(window) = Window::from_str(text) {
        let shown = window.to_string();
        assert_eq!(
            Window::from_str(&shown).as_ref(),
            Ok(&window),
            "{text:?}: window printed as {shown:?} reads back differently"
        );
        for at in [0, 1_795_996_800, 1_796_040_000, u64::MAX] {
            let _ = window.contains(at);
        }
    }
}

fn json_round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let bytes = serde_json::to_vec(&value).expect("a deserialized value serializes");
        let again: T = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{value:?} serialized as {} does not read back: {e}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(again, value);
    }
}

/// Reads arbitrary bytes as numbers, with extremes likely.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }

    /// A count: small most of the time, sometimes 0, `u32::MAX` or huge.
    fn count(&mut self) -> u32 {
        match self.byte() {
            250 => u32::MAX,
            251 => u32::MAX - 1,
            252 => 70_000_000,
            253 => 4_096,
            b => u32::from(b % 12),
        }
    }
}

/// The plan step over arbitrary templates, agents, demand and caps: it never
/// panics (no overflow, no huge allocation) and never plans past the global
/// cap or the per-pass bound.
pub fn plan_inputs(data: &[u8]) {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use jenkins_cloud_core::backend::{CloudId, CloudState};
    use jenkins_cloud_core::jenkins::Requirement;
    use jenkins_cloud_core::lifecycle::AgentState;
    use jenkins_cloud_core::reconcile::plan::{plan, Action, Caps, PlanInput};
    use jenkins_cloud_core::reconcile::Agent;
    use jenkins_cloud_core::strategy::{JenkinsStandard, NoDelay, ProvisioningStrategy};
    use jenkins_cloud_core::template::{AgentTemplate, NodeMode};
    use tokio::time::Instant;

    const LABELS: [&str; 4] = ["linux", "arm", "linux docker", "gpu"];
    const EXPRS: [&str; 4] = ["linux", "arm", "linux&&docker", "gpu||arm"];
    let mut b = Bytes(data);
    let now = Instant::now();
    let templates: Vec<Arc<AgentTemplate>> = (0..1 + b.byte() % 4)
        .map(|i| {
            let mut t = AgentTemplate::new(
                format!("t{i}"),
                LabelSet::parse(LABELS[usize::from(b.byte()) % LABELS.len()]),
            );
            t.executors = b.count().max(1);
            t.retention.min_idle = b.count();
            t.instance_cap = (b.byte() % 2 == 0).then(|| b.count());
            t.spill = b.byte() % 3 != 0;
            if b.byte() % 4 == 0 {
                t.mode = NodeMode::Exclusive;
            }
            Arc::new(t)
        })
        .collect();
    let states = [
        AgentState::Requested,
        AgentState::Launching,
        AgentState::Starting,
        AgentState::Idle,
        AgentState::Busy,
        AgentState::Draining,
        AgentState::Terminating,
        AgentState::Failed("x".into()),
    ];
    let mut agents = BTreeMap::new();
    for i in 0..b.byte() % 16 {
        let template = format!("t{}", b.byte() % 6);
        let mut a = Agent::requested(format!("a{i}"), template, b.count(), now);
        a.state = states[usize::from(b.byte()) % states.len()].clone();
        a.busy_executors = b.count();
        a.node_exists = b.byte() % 2 == 0;
        a.ever_connected = b.byte() % 2 == 0;
        a.cloud_id = Some(CloudId(format!("c{i}")));
        a.cloud_state = Some(CloudState::Running);
        agents.insert(a.name.clone(), a);
    }
    let mut demand = Demand::default();
    for _ in 0..b.byte() {
        let requirement = match b.byte() % 4 {
            0 => Requirement::AnyNode,
            1 => Requirement::Template(format!("t{}", b.byte() % 6)),
            _ => Requirement::Label(
                EXPRS[usize::from(b.byte()) % EXPRS.len()]
                    .parse()
                    .expect("test label"),
            ),
        };
        demand.items.push(QueueItem {
            id: u64::from(b.byte() % 64),
            task: "job".into(),
            requirement,
            in_queue_since_ms: u64::from(b.byte()),
        });
    }
    let caps = Caps {
        global: (b.byte() % 2 == 0).then(|| b.count()),
        per_label: Vec::new(),
        launches_per_pass: (b.byte() % 2 == 0).then(|| b.count()),
    };
    let mut blocked = BTreeMap::new();
    if b.byte() % 3 == 0 {
        blocked.insert(
            "t0".to_owned(),
            now + Duration::from_secs(u64::from(b.byte())),
        );
    }
    let mut frozen = BTreeMap::new();
    if b.byte() % 4 == 0 {
        frozen.insert("t1".to_owned(), "down".to_owned());
    }
    let input = PlanInput {
        templates: &templates,
        agents: &agents,
        demand: &demand,
        caps: &caps,
        blocked_until: &blocked,
        frozen: &frozen,
        now,
        wall_secs: u64::from(b.byte()) * 3600,
        terminate_retry: Duration::from_secs(60),
    };
    let mut strategy: Box<dyn ProvisioningStrategy> = if b.byte() % 2 == 0 {
        Box::new(NoDelay)
    } else {
        Box::new(JenkinsStandard::new())
    };
    let out = plan(&input, strategy.as_mut());
    let launched: u64 = out
        .actions
        .iter()
        .map(|a| match a {
            Action::Launch { count, .. } => u64::from(*count),
            _ => 0,
        })
        .sum();
    if let Some(bound) = caps.launches_per_pass {
        assert!(
            launched <= u64::from(bound),
            "{launched} launches past the per-pass bound {bound}"
        );
    }
    if let Some(cap) = caps.global {
        let alive = agents
            .values()
            .filter(|a| a.state.counts_against_cap())
            .count() as u64;
        assert!(
            launched == 0 || alive + launched <= u64::from(cap),
            "{launched} launches with {alive} alive past the global cap {cap}"
        );
    }
}
