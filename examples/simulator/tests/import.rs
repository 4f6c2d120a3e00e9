//! The importer on a real-shaped `api/json?tree=jobs[…]` answer with nested folders.

use jenkins_cloud_sim::import::{import_jenkins, ImportOptions};

const FIXTURE: &str = include_str!("fixtures/jenkins-history.json");

#[test]
fn reads_nested_folders_and_maps_nodes_to_labels() {
    let options = ImportOptions {
        node_labels: [
            ("linux-".to_owned(), "linux".to_owned()),
            ("linux-big-".to_owned(), "linux&&large".to_owned()),
            ("graviton-2".to_owned(), "arm64".to_owned()),
        ]
        .into_iter()
        .collect(),
        default_label: Some("linux".to_owned()),
    };
    let imported = import_jenkins(FIXTURE, &options).unwrap();
    assert_eq!(
        imported.jobs, 4,
        "build-linux, pipeline, arm-job, never-built"
    );
    assert_eq!(imported.skipped, 1, "the build still running (duration 0)");
    let got: Vec<(f64, Option<&str>, f64, &str)> = imported
        .trace
        .builds
        .iter()
        .map(|b| {
            (
                b.submit_s,
                b.label.as_deref(),
                b.duration_s,
                b.task.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0.0, Some("linux"), 90.0, "team-a/pipeline"),
            (1000.0, Some("linux"), 600.0, "build-linux"),
            (2000.0, Some("arm64"), 300.0, "team-a/nested/arm-job"),
            (3000.0, Some("linux"), 45.0, "team-a/nested/arm-job"),
            (4600.0, Some("linux&&large"), 1200.0, "build-linux"),
        ]
    );
}

#[test]
fn unmapped_nodes_run_anywhere_without_a_default() {
    let imported = import_jenkins(FIXTURE, &ImportOptions::default()).unwrap();
    assert_eq!(imported.trace.builds.len(), 5);
    assert!(imported.trace.builds.iter().all(|b| b.label.is_none()));
}

#[test]
fn bad_input_names_the_place() {
    let e = import_jenkins(r#"{"builds": []}"#, &ImportOptions::default()).unwrap_err();
    assert!(e.0.contains("no `jobs` array"), "{e}");
    let e = import_jenkins(r#"{"jobs": [{"name": "f", "jobs": [{"name": "x", "builds": [{"timestamp": "yesterday", "duration": 5}]}]}]}"#, &ImportOptions::default()).unwrap_err();
    assert!(e.0.contains("jobs[0].jobs[0].builds[0].timestamp"), "{e}");
    let e = import_jenkins(r#"{"jobs": [{"builds": []}]}"#, &ImportOptions::default()).unwrap_err();
    assert!(e.0.contains("jobs[0].name"), "{e}");
    let e = import_jenkins("{", &ImportOptions::default()).unwrap_err();
    assert!(e.0.contains("line 1"), "{e}");
}
