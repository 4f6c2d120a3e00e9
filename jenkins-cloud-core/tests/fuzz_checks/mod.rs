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
