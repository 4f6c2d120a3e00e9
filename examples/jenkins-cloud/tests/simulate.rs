//! `simulate`: the simulator behind the program's command line.

use jenkins_cloud_cli::commands::simulate::{options, simulate, SimFormat, SimulateArgs};

fn trace() -> std::path::PathBuf {
    format!(
        "{}/tests/fixtures/sim-trace.csv",
        env!("CARGO_MANIFEST_DIR")
    )
    .into()
}

#[test]
fn a_trace_runs_with_the_chosen_strategies() {
    let args = SimulateArgs {
        trace: Some(trace()),
        strategies: vec!["default".into(), "one-shot".into()],
        format: SimFormat::Json,
        ..SimulateArgs::default()
    };
    let out = simulate(&args).unwrap();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = json.to_string();
    assert!(text.contains("one-shot"), "{text}");
    assert!(text.contains("default"), "{text}");
}

#[test]
fn bad_options_name_the_option() {
    let args = SimulateArgs {
        poll_interval: 0.0,
        ..SimulateArgs::default()
    };
    assert!(options(&args).unwrap_err().0.contains("--poll-interval"));
    let args = SimulateArgs {
        strategies: vec!["fastest".into()],
        ..SimulateArgs::default()
    };
    assert!(options(&args).unwrap_err().0.contains("--strategies"));
    let args = SimulateArgs {
        trace: Some("/nonexistent/trace.csv".into()),
        ..SimulateArgs::default()
    };
    assert!(options(&args)
        .unwrap_err()
        .0
        .contains("/nonexistent/trace.csv"));
}

#[test]
fn the_command_needs_no_configuration_file() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_jenkins-cloud"))
        .args([
            "--config",
            "/nonexistent.yaml",
            "simulate",
            "--quiet",
            "--strategies",
            "default",
        ])
        .arg("--trace")
        .arg(trace())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("default"));
}
