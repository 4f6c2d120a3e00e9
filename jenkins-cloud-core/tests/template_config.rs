//! TemplateConfig: serde, inheritance merge rules, resolution and validation.

use std::collections::BTreeSet;
use std::time::Duration;

use jenkins_cloud_core::template::{
    NodeMode, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LAUNCH_TIMEOUT, DEFAULT_REMOTE_FS,
};
use jenkins_cloud_core::template_config::{
    escaped, resolve_all, Expiry, HumanDuration, Setting, TemplateConfig, MAX_EXECUTORS,
    MAX_INSTANCE_CAP, MAX_MIN_IDLE, MAX_TEMPLATE_DURATION, MAX_USES,
};
use serde_json::json;

fn cfg(v: serde_json::Value) -> TemplateConfig {
    serde_json::from_value(v).expect("valid template config")
}

fn problems(v: serde_json::Value) -> Vec<String> {
    cfg(v).resolve().expect_err("should be invalid").problems
}

/// A parent with every field set to a non-default value.
fn full_parent() -> serde_json::Value {
    json!({
        "name": "parent",
        "labels": "linux docker",
        "executors": 4,
        "remote_fs": "/var/jenkins",
        "mode": "EXCLUSIVE",
        "environment": {"A": "1", "B": "2"},
        "idle_timeout": "10m",
        "max_lifetime": "8h",
        "launch_timeout": "20m",
        "connect_timeout": "3m",
        "one_shot": true,
        "max_uses": 1,
        "instance_cap": 10,
        "spill": false,
        "min_idle": 2,
        "min_idle_windows": [{"window": "Mon-Fri 08:00-18:00", "count": 3}],
        "spec": {"cpu": 1024, "tags": {"team": "ci", "cost": "x"}}
    })
}

/// Every field name `TemplateConfig` accepts, read from serde's own
/// unknown-field error, so that the list follows the struct.
fn all_field_names() -> BTreeSet<String> {
    let err = serde_json::from_value::<TemplateConfig>(json!({"name": "x", "no_such_field": 1}))
        .unwrap_err()
        .to_string();
    let list = err
        .split("expected one of ")
        .nth(1)
        .expect("serde lists the fields");
    list.split(", ")
        .map(|f| {
            f.trim_matches(|c: char| c == '`' || c.is_whitespace())
                .to_owned()
        })
        .collect()
}

#[test]
fn absent_null_and_value_map_to_the_three_states() {
    let c = cfg(json!({"name": "a", "executors": null, "labels": "x"}));
    assert_eq!(c.executors, Setting::Unset);
    assert_eq!(c.labels, Setting::Set("x".to_owned()));
    assert_eq!(c.remote_fs, Setting::Inherit);
    let back = serde_json::to_value(&c).unwrap();
    assert_eq!(
        back,
        json!({"name": "a", "executors": null, "labels": "x"}),
        "Inherit is skipped, Unset is null"
    );
}

#[test]
fn serde_round_trip_of_a_full_config() {
    let mut v = full_parent();
    v["inherit_from"] = json!("base");
    v["abstract"] = json!(true);
    let c = cfg(v);
    assert_eq!(
        c.idle_timeout,
        Setting::Set(Expiry::After(HumanDuration(Duration::from_secs(600))))
    );
    let text = serde_json::to_string(&c).unwrap();
    let again: TemplateConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(again, c);
    assert_eq!(
        serde_json::to_value(&again).unwrap()["max_lifetime"],
        json!("8h")
    );
}

#[test]
fn unknown_fields_and_bad_values_are_named() {
    let e = serde_json::from_value::<TemplateConfig>(json!({"name": "a", "executers": 2}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `executers`"), "{e}");
    let e = serde_json::from_str::<TemplateConfig>(r#"{"name": "a", "idle_timeout": "5 minutes"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("invalid duration `5 minutes`") && e.contains("line 1"),
        "{e}"
    );
    let e = serde_json::from_str::<TemplateConfig>(r#"{"name": "a", "mode": "SOMETIMES"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("SOMETIMES"), "{e}");
}

#[test]
fn durations_accept_integers_and_never() {
    let t = cfg(json!({"name": "a", "idle_timeout": "never", "launch_timeout": 90, "connect_timeout": "1h30m"}))
        .resolve()
        .unwrap();
    assert_eq!(t.retention.idle_timeout, None);
    assert_eq!(t.launch_timeout, Duration::from_secs(90));
    assert_eq!(t.connect_timeout, Duration::from_secs(5400));
}

#[test]
fn defaults_are_those_of_agent_template_new() {
    let t = TemplateConfig::named("plain").resolve().unwrap();
    let expected = jenkins_cloud_core::AgentTemplate::new("plain", Default::default());
    assert_eq!(t, expected);
    assert_eq!(t.remote_fs, DEFAULT_REMOTE_FS);
    assert_eq!(t.launch_timeout, DEFAULT_LAUNCH_TIMEOUT);
    assert_eq!(t.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
}

#[test]
fn a_child_inherits_every_field_the_parent_sets() {
    let parent = cfg(full_parent());
    let child = TemplateConfig {
        inherit_from: Some("parent".into()),
        ..TemplateConfig::named("child")
    };
    let merged = child.inherit_from(&parent);

    // The test parent really sets every field but the never-inherited ones.
    let parent_json = serde_json::to_value(&parent).unwrap();
    let set_fields: BTreeSet<String> = parent_json.as_object().unwrap().keys().cloned().collect();
    let mut expected_fields = all_field_names();
    for own in ["name", "inherit_from", "abstract"] {
        assert!(expected_fields.remove(own), "{own} is a field");
    }
    expected_fields.insert("name".into());
    assert_eq!(
        set_fields, expected_fields,
        "full_parent() must set every field of TemplateConfig"
    );

    // ...and the child gets each of them.
    let mut merged_json = serde_json::to_value(&merged).unwrap();
    assert_eq!(merged_json["name"], json!("child"));
    assert_eq!(merged_json["inherit_from"], json!("parent"));
    merged_json["name"] = json!("parent");
    merged_json.as_object_mut().unwrap().remove("inherit_from");
    assert_eq!(merged_json, parent_json);
}

#[test]
fn name_inherit_from_and_abstract_are_never_inherited() {
    let parent = cfg(json!({"name": "base", "abstract": true, "inherit_from": "root"}));
    let merged = TemplateConfig::named("child").inherit_from(&parent);
    assert_eq!(merged.name, "child");
    assert_eq!(merged.inherit_from, None);
    assert!(!merged.is_abstract);
}

#[test]
fn child_value_wins_and_null_drops_the_parent_value() {
    let parent = cfg(full_parent());
    let child = cfg(
        json!({"name": "c", "executors": 8, "labels": null, "mode": null, "idle_timeout": null,
                           "one_shot": null, "instance_cap": null}),
    );
    let m = child.inherit_from(&parent);
    assert_eq!(m.executors, Setting::Set(8));
    assert_eq!(m.labels, Setting::Unset);
    let t = m.resolve().unwrap();
    assert_eq!(t.executors, 8);
    assert!(t.labels.is_empty(), "labels dropped");
    assert_eq!(t.mode, NodeMode::Normal, "back to the default mode");
    assert_eq!(
        t.retention.idle_timeout,
        Some(Duration::from_secs(300)),
        "back to the default idle timeout"
    );
    assert!(!t.retention.one_shot);
    assert_eq!(t.instance_cap, None);
    assert_eq!(
        t.remote_fs, "/var/jenkins",
        "untouched fields still inherited"
    );
}

#[test]
fn inherit_takes_the_parents_unset_too() {
    let grandparent = cfg(json!({"name": "g", "remote_fs": "/g"}));
    let parent = cfg(json!({"name": "p", "remote_fs": null})).inherit_from(&grandparent);
    let child = TemplateConfig::named("c").inherit_from(&parent);
    assert_eq!(child.remote_fs, Setting::Unset);
    assert_eq!(child.resolve().unwrap().remote_fs, DEFAULT_REMOTE_FS);
}

#[test]
fn lists_replace_never_concatenate() {
    let parent = cfg(full_parent());
    let child = cfg(
        json!({"name": "c", "min_idle_windows": [{"window": "Sat-Sun 10:00-12:00", "count": 1}],
                           "spec": {"subnets": ["b"]}}),
    );
    let p2 = cfg(json!({"name": "p", "spec": {"subnets": ["a", "c"]}}));
    let m = child.inherit_from(&parent);
    let windows = m.min_idle_windows.get().unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].window.to_string(), "Sat-Sun 10:00-12:00");
    assert_eq!(
        child.inherit_from(&p2).spec,
        Setting::Set(json!({"subnets": ["b"]}))
    );
}

#[test]
fn environment_merges_by_key_and_null_removes() {
    let parent = cfg(json!({"name": "p", "environment": {"A": "1", "B": "2", "C": "3"}}));
    let child = cfg(json!({"name": "c", "environment": {"B": "20", "C": null, "D": "4"}}));
    let t = child.inherit_from(&parent).resolve().unwrap();
    let env: Vec<(&str, &str)> = t
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("A", "1"), ("B", "20"), ("D", "4")]);
    let dropped = cfg(json!({"name": "c", "environment": null}))
        .inherit_from(&parent)
        .resolve()
        .unwrap();
    assert!(dropped.environment.is_empty());
}

#[test]
fn spec_merges_deeply_with_null_removal() {
    let parent = cfg(json!({"name": "p", "spec": {
        "cpu": 1024, "memory": 2048,
        "tags": {"team": "ci", "cost": "x"},
        "container": {"image": "a", "env": {"X": "1"}}
    }}));
    let child = cfg(json!({"name": "c", "spec": {
        "memory": 4096, "memory_reservation": null,
        "tags": {"cost": null, "owner": "me"},
        "container": {"env": {"Y": "2"}}
    }}));
    let grandchild = cfg(json!({"name": "g", "spec": {"container": "replaced"}}));
    let merged = child.inherit_from(&parent);
    assert_eq!(
        merged.spec,
        Setting::Set(json!({
            "cpu": 1024, "memory": 4096,
            "tags": {"team": "ci", "owner": "me"},
            "container": {"image": "a", "env": {"X": "1", "Y": "2"}}
        }))
    );
    let dropped = cfg(json!({"name": "d", "spec": null})).inherit_from(&merged);
    assert_eq!(
        dropped.resolve().unwrap().spec,
        json!({}),
        "null spec drops the parent's spec"
    );
    let g = grandchild.inherit_from(&merged).resolve().unwrap();
    assert_eq!(
        g.spec["container"],
        json!("replaced"),
        "a non-object replaces the object"
    );
    assert_eq!(g.spec["tags"], json!({"team": "ci", "owner": "me"}));
    let root_nulls = cfg(json!({"name": "r", "spec": {"a": null, "b": {"c": null, "d": 1}}}))
        .resolve()
        .unwrap();
    assert_eq!(
        root_nulls.spec,
        json!({"b": {"d": 1}}),
        "null keys mean absent after resolution"
    );
}

#[test]
fn resolve_all_follows_chains_of_any_depth_and_skips_abstract() {
    let configs = vec![
        cfg(json!({"name": "leaf", "inherit_from": "mid", "labels": "leaf"})),
        cfg(json!({"name": "mid", "inherit_from": "base", "abstract": true, "executors": 3})),
        cfg(json!({"name": "base", "abstract": true, "remote_fs": "/base", "mode": "EXCLUSIVE"})),
        cfg(json!({"name": "other", "inherit_from": "leaf", "executors": 5})),
    ];
    let out = resolve_all(&configs).unwrap();
    let names: Vec<&str> = out.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["leaf", "other"]);
    assert_eq!(
        (out[0].executors, out[0].remote_fs.as_str(), out[0].mode),
        (3, "/base", NodeMode::Exclusive)
    );
    assert_eq!(
        (out[1].executors, out[1].labels.to_string().as_str()),
        (5, "leaf")
    );
}

#[test]
fn abstract_parents_are_not_validated_alone() {
    // EXCLUSIVE without labels is invalid, but only the concrete child is checked.
    let configs = vec![
        cfg(json!({"name": "base", "abstract": true, "mode": "EXCLUSIVE"})),
        cfg(json!({"name": "leaf", "inherit_from": "base", "labels": "x"})),
    ];
    assert_eq!(resolve_all(&configs).unwrap().len(), 1);
}

#[test]
fn cycles_and_unknown_parents_name_the_templates() {
    let configs = vec![
        cfg(json!({"name": "a", "inherit_from": "b"})),
        cfg(json!({"name": "b", "inherit_from": "c"})),
        cfg(json!({"name": "c", "inherit_from": "a"})),
        cfg(json!({"name": "self", "inherit_from": "self"})),
        cfg(json!({"name": "orphan", "inherit_from": "nobody"})),
        cfg(json!({"name": "d", "inherit_from": "orphan"})),
        cfg(json!({"name": "fine"})),
    ];
    let e = resolve_all(&configs).unwrap_err();
    assert_eq!(
        e.problems,
        [
            "templates[a].inherit_from: inheritance cycle a -> b -> c -> a",
            "templates[self].inherit_from: inheritance cycle self -> self",
            "templates[orphan].inherit_from: unknown parent template `nobody`",
        ]
    );
}

#[test]
fn duplicate_names_are_reported() {
    let configs = vec![TemplateConfig::named("x"), TemplateConfig::named("x")];
    let e = resolve_all(&configs).unwrap_err();
    assert_eq!(
        e.problems,
        ["templates[x].name: defined more than once (entry 1)"]
    );
}

#[test]
fn every_validation_rule() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({"name": ""}),
            "templates[].name: must be 1 to 40 characters",
        ),
        (
            json!({"name": "a".repeat(41)}),
            "must be 1 to 40 characters, found 41",
        ),
        (json!({"name": "Linux"}), "contains `L`"),
        (json!({"name": "a_b"}), "contains `_`"),
        (json!({"name": "-a"}), "must not start or end with `-`"),
        (json!({"name": "a-"}), "must not start or end with `-`"),
        (
            json!({"name": "t", "mode": "EXCLUSIVE"}),
            "templates[t].labels: must not be empty in EXCLUSIVE mode",
        ),
        (
            json!({"name": "t", "mode": "EXCLUSIVE", "labels": "  "}),
            "templates[t].labels: must not be empty",
        ),
        (
            json!({"name": "t", "executors": 0}),
            "templates[t].executors: must be at least 1",
        ),
        (
            json!({"name": "t", "executors": 65}),
            "templates[t].executors: must be at most 64, found 65",
        ),
        (
            json!({"name": "t", "remote_fs": ""}),
            "templates[t].remote_fs: must not be empty",
        ),
        (
            json!({"name": "t", "remote_fs": "home/x"}),
            "templates[t].remote_fs: `home/x` must be an absolute path",
        ),
        (
            json!({"name": "t", "idle_timeout": 0}),
            "templates[t].idle_timeout: must be longer than zero",
        ),
        (
            json!({"name": "t", "max_lifetime": "0s"}),
            "templates[t].max_lifetime: must be longer than zero",
        ),
        (
            json!({"name": "t", "launch_timeout": 0}),
            "templates[t].launch_timeout: must be longer than zero",
        ),
        (
            json!({"name": "t", "connect_timeout": "0m"}),
            "templates[t].connect_timeout: must be longer than zero",
        ),
        (
            json!({"name": "t", "one_shot": true, "max_uses": 3}),
            "templates[t].max_uses: 3 contradicts one_shot",
        ),
        (
            json!({"name": "t", "max_uses": 0}),
            "templates[t].max_uses: must be at least 1",
        ),
        (
            json!({"name": "t", "instance_cap": 2, "min_idle": 3}),
            "templates[t].min_idle: 3 exceeds instance_cap 2",
        ),
        (
            json!({"name": "t", "instance_cap": 2, "min_idle_windows": [{"window": "09:00-17:00", "count": 5}]}),
            "templates[t].min_idle_windows[0].count: 5 exceeds instance_cap 2",
        ),
        (
            json!({"name": "t", "environment": {"1X": "v"}}),
            "templates[t].environment.1X: invalid variable name",
        ),
        (
            json!({"name": "t", "environment": {"A-B": "v"}}),
            "templates[t].environment.A-B: invalid variable name",
        ),
        (
            json!({"name": "t", "environment": {"": "v"}}),
            "templates[t].environment.: invalid variable name",
        ),
        (
            json!({"name": "t", "environment": {"JENKINS_SECRET": "v"}}),
            "environment.JENKINS_SECRET: is set by jenkins-cloud",
        ),
        (
            json!({"name": "t", "environment": {"JENKINS_AGENT_NAME": "v"}}),
            "environment.JENKINS_AGENT_NAME: is set by",
        ),
        (
            json!({"name": "t", "environment": {"JENKINS_URL": "v"}}),
            "environment.JENKINS_URL: is set by",
        ),
        (
            json!({"name": "t", "spec": [1, 2]}),
            "templates[t].spec: must be a JSON object, found an array",
        ),
        (
            json!({"name": "t", "spec": "cpu=1"}),
            "templates[t].spec: must be a JSON object, found a string",
        ),
    ];
    for (input, needle) in cases {
        let ps = problems(input.clone());
        assert_eq!(ps.len(), 1, "{input}: {ps:?}");
        assert!(ps[0].contains(needle), "{input}: {ps:?} lacks {needle:?}");
    }
}

#[test]
fn valid_edge_values_pass() {
    for input in [
        json!({"name": "a"}),
        json!({"name": "a".repeat(40)}),
        json!({"name": "linux-2", "executors": 64, "remote_fs": "C:\\jenkins"}),
        json!({"name": "t", "one_shot": true, "max_uses": 1}),
        json!({"name": "t", "instance_cap": 2, "min_idle": 2}),
        json!({"name": "t", "instance_cap": 0}),
        json!({"name": "t", "environment": {"_X1": "v", "JENKINS_JAVA_OPTS": "-Xmx1g"}}),
        json!({"name": "t", "mode": "EXCLUSIVE", "labels": "x"}),
        json!({"name": "t", "max_lifetime": "never", "idle_timeout": "never"}),
    ] {
        assert!(cfg(input.clone()).resolve().is_ok(), "{input}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let e = cfg(json!({
        "name": "Bad_Name",
        "executors": 0,
        "remote_fs": "relative",
        "mode": "EXCLUSIVE",
        "environment": {"JENKINS_SECRET": "s3cr3t", "OK_VAR": "1"},
        "spec": 3
    }))
    .resolve()
    .unwrap_err();
    let fields: Vec<&str> = e
        .problems
        .iter()
        .map(|p| p.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "templates[Bad_Name].name",
            "templates[Bad_Name].labels",
            "templates[Bad_Name].executors",
            "templates[Bad_Name].remote_fs",
            "templates[Bad_Name].environment.JENKINS_SECRET",
            "templates[Bad_Name].spec",
        ]
    );
    let shown = e.to_string();
    assert_eq!(
        shown.lines().count(),
        7,
        "a header and one line per problem:\n{shown}"
    );
    assert!(shown.starts_with("6 problems in templates:"), "{shown}");
    assert!(
        !shown.contains("s3cr3t"),
        "values of environment variables are not echoed"
    );
}

#[test]
fn resolve_all_reports_problems_of_several_templates() {
    let configs = vec![
        cfg(json!({"name": "a", "executors": 0})),
        cfg(json!({"name": "b", "inherit_from": "a", "executors": 2, "remote_fs": "x"})),
        cfg(json!({"name": "c", "inherit_from": "a"})),
    ];
    let e = resolve_all(&configs).unwrap_err();
    assert_eq!(
        e.problems,
        [
            "templates[a].executors: must be at least 1",
            "templates[b].remote_fs: `x` must be an absolute path",
            "templates[c].executors: must be at least 1",
        ]
    );
}

#[test]
fn every_count_has_a_documented_maximum() {
    assert_eq!(
        (MAX_EXECUTORS, MAX_MIN_IDLE, MAX_INSTANCE_CAP, MAX_USES),
        (64, 1000, 100_000, 100_000)
    );
    let window = |count: u64| json!([{"window": "Mon-Fri 08:00-18:00", "count": count}]);
    for (input, needle) in [
        (
            json!({"name": "t", "min_idle": 4294967295u64}),
            "templates[t].min_idle: must be at most 1000, found 4294967295",
        ),
        (
            json!({"name": "t", "executors": 64, "min_idle": 70000000}),
            "templates[t].min_idle: must be at most 1000, found 70000000",
        ),
        (
            json!({"name": "t", "min_idle_windows": window(4294967295)}),
            "templates[t].min_idle_windows[0].count: must be at most 1000, found 4294967295",
        ),
        (
            json!({"name": "t", "instance_cap": 4294967295u64}),
            "templates[t].instance_cap: must be at most 100000, found 4294967295",
        ),
        (
            json!({"name": "t", "max_uses": 4294967295u64}),
            "templates[t].max_uses: must be at most 100000, found 4294967295",
        ),
        (
            json!({"name": "t", "executors": 65}),
            "templates[t].executors: must be at most 64, found 65",
        ),
        (
            // Above the maximum and above the cap: one problem, the maximum.
            json!({"name": "t", "instance_cap": 5, "min_idle": 1001}),
            "templates[t].min_idle: must be at most 1000, found 1001",
        ),
    ] {
        let ps = problems(input.clone());
        assert_eq!(ps, [needle], "{input}");
    }
    let at_max = cfg(json!({
        "name": "t",
        "executors": MAX_EXECUTORS,
        "min_idle": MAX_MIN_IDLE,
        "instance_cap": MAX_INSTANCE_CAP,
        "max_uses": MAX_USES,
        "min_idle_windows": window(u64::from(MAX_MIN_IDLE)),
    }))
    .resolve()
    .unwrap();
    assert_eq!(at_max.retention.min_idle, 1000);
}

#[test]
fn template_durations_have_a_maximum() {
    assert_eq!(MAX_TEMPLATE_DURATION, Duration::from_secs(365 * 86_400));
    for field in [
        "idle_timeout",
        "max_lifetime",
        "launch_timeout",
        "connect_timeout",
    ] {
        let ps = problems(json!({"name": "t", field: "366d"}));
        assert_eq!(ps.len(), 1, "{field}: {ps:?}");
        assert!(
            ps[0].starts_with(&format!("templates[t].{field}: must be at most 365 days")),
            "{ps:?}"
        );
        let huge = problems(json!({"name": "t", field: u64::MAX}));
        assert_eq!(huge.len(), 1, "{field}: {huge:?}");
        assert!(cfg(json!({"name": "t", field: "365d"})).resolve().is_ok());
    }
}

#[test]
fn control_characters_in_names_labels_and_paths_are_refused_and_escaped() {
    for (input, field, shown) in [
        (json!({"name": "a\u{1b}[31m"}), "name", r"a\u{1b}[31m"),
        (json!({"name": "nul\u{0}"}), "name", r"nul\u{0}"),
        (json!({"name": "two\nlines"}), "name", r"two\nlines"),
        (json!({"name": "bidi\u{202e}"}), "name", r"bidi\u{202e}"),
        (
            json!({"name": "t", "labels": "linux\u{1b}[2J docker"}),
            "labels",
            r"linux\u{1b}[2J docker",
        ),
        (
            json!({"name": "t", "labels": "'quoted\nlabel'"}),
            "labels",
            r"'quoted\nlabel'",
        ),
        (
            json!({"name": "t", "remote_fs": "/home/\u{7}x"}),
            "remote_fs",
            r"/home/\u{7}x",
        ),
    ] {
        let e = cfg(input.clone()).resolve().unwrap_err();
        assert_eq!(e.details.len(), 1, "{input}: {e}");
        assert_eq!(e.details[0].field, field, "{input}");
        let text = e.to_string();
        assert!(text.contains(shown), "{input}: {text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character in {text:?}"
        );
        assert_eq!(text.lines().count(), 2, "one line per problem: {text:?}");
    }
    // Spaces, tabs and newlines separate labels.
    let t = cfg(json!({"name": "t", "labels": "linux\tdocker\ngpu"}))
        .resolve()
        .unwrap();
    assert_eq!(t.labels.to_string(), "docker gpu linux");
    assert_eq!(escaped("plain text"), "plain text");
    assert_eq!(escaped("a\u{1b}b\n"), r"a\u{1b}b\n");
}

#[test]
fn problems_are_placed_by_index_whatever_the_name() {
    let configs = vec![
        cfg(json!({"name": "fine"})),
        cfg(json!({"name": "x].executors: oops [y", "executors": 0})),
        cfg(json!({"name": "child", "inherit_from": "x].executors: oops [y"})),
        cfg(json!({"name": "orphan", "inherit_from": "no\u{1b}body"})),
    ];
    let e = resolve_all(&configs).unwrap_err();
    let placed: Vec<(Option<usize>, &str)> = e
        .details
        .iter()
        .map(|p| (p.index, p.field.as_str()))
        .collect();
    assert_eq!(
        placed,
        [
            (Some(1), "name"),
            (Some(1), "executors"),
            (Some(2), "executors"),
            (Some(3), "inherit_from"),
        ]
    );
    assert!(
        e.problems[1]
            .starts_with(r#"templates["x].executors: oops [y"].executors: must be at least 1"#),
        "a name that is not plain is quoted: {:?}",
        e.problems
    );
    assert!(e.problems[3].contains(r"no\u{1b}body"), "{:?}", e.problems);
    assert_eq!(e.problems.len(), e.details.len());
}

#[test]
fn deep_chains_and_many_templates_resolve() {
    // 2000 deep: each level inherits from the one before.
    let mut configs = vec![cfg(
        json!({"name": "t0", "executors": 2, "spec": {"k0": 0}}),
    )];
    for i in 1..2000 {
        configs.push(cfg(json!({
            "name": format!("t{i}"),
            "inherit_from": format!("t{}", i - 1),
            "labels": format!("l{i}"),
        })));
    }
    let out = resolve_all(&configs).unwrap();
    assert_eq!(out.len(), 2000);
    assert_eq!(
        (out[1999].executors, &out[1999].spec),
        (2, &json!({"k0": 0}))
    );
    assert_eq!(out[1999].labels.to_string(), "l1999");

    // Broken at the root: every template of the chain reports it, at its index.
    configs[0] = cfg(json!({"name": "t0", "executors": 0}));
    let e = resolve_all(&configs).unwrap_err();
    assert_eq!(e.details.len(), 2000);
    assert!(e
        .details
        .iter()
        .enumerate()
        .all(|(i, p)| p.index == Some(i)));

    // A cycle at the top of a long chain is reported once.
    configs[0] = cfg(json!({"name": "t0", "inherit_from": "t1999"}));
    let e = resolve_all(&configs).unwrap_err();
    assert_eq!(e.details.len(), 1, "{e}");
    assert!(
        e.problems[0]
            .starts_with("templates[t0].inherit_from: inheritance cycle t0 -> t1999 -> t1998"),
        "{}",
        &e.problems[0][..80]
    );

    // 20000 side by side.
    let flat: Vec<TemplateConfig> = (0..20_000)
        .map(|i| cfg(json!({"name": format!("t{i}"), "labels": format!("l{i}")})))
        .collect();
    assert_eq!(resolve_all(&flat).unwrap().len(), 20_000);
}
