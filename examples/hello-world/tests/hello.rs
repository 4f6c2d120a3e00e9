//! The example's scenario, run as a test against the shared moto server.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_world_runs_on_an_on_demand_fargate_agent() {
    let mut lines = Vec::new();
    let summary = hello_world::run(&mut |l| lines.push(l.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = lines.join("\n");
    assert!(summary.task_arn.contains(":task/hello/"), "{summary:?}");
    assert!(summary.build_finished, "{text}");
    assert!(summary.task_stopped && summary.node_deleted, "{text}");
    for step in [
        "job queued",
        "task started",
        "JENKINS_AGENT_NAME=",
        "agent connected",
        "Hello world",
        "build finished",
        "drained",
        "task stopped",
        "node deleted",
    ] {
        assert!(text.contains(step), "missing step `{step}`:\n{text}");
    }
    assert!(
        !text.contains(&summary.secret_for_check),
        "the agent secret is printed masked"
    );
}
