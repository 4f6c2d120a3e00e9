//! End to end over HTTP: the real `jenkins-cloud` binary, the fake controller
//! and moto (Fargate). The agents are played by `AgentSim` (secret read from the
//! task's overrides in moto, connection through the fake's hook).

mod e2e_support;

use std::sync::Arc;
use std::time::Duration;

use e2e_support::{wait_until, AgentSim, World, WorldSpec};

/// A burst of queued builds on two labels: the right tasks with the right
/// environment and tags, agents connect, builds finish, idle agents are
/// drained, stopped and their nodes deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_two_labels_is_served_and_retired() {
    let world = Arc::new(
        World::new(WorldSpec {
            tag: "e2e-burst",
            templates: &[("linux", "linux"), ("arm", "arm64 linux-arm")],
            global_cap: 10,
            build_duration: Duration::from_millis(500),
            template_env: &[("MAVEN_OPTS", "-Xmx1g")],
            template_settings: &[],
            extra_clouds: "",
        })
        .await,
    );
    let sim = AgentSim::start(Arc::clone(&world), Duration::from_millis(200));
    let mut ids = Vec::new();
    for k in 0..4 {
        ids.push(world.fake.queue_freestyle(&format!("app-{k}"), "linux"));
    }
    for k in 0..3 {
        ids.push(world.fake.queue_pipeline(&format!("native-{k}"), "arm64"));
    }
    let mut daemon = world.spawn(&["run"], None);

    // The burst: 4 linux tasks and 3 arm tasks, each with its own identity.
    let w = Arc::clone(&world);
    wait_until(Duration::from_secs(20), "7 tasks", || {
        let w = Arc::clone(&w);
        async move { w.tasks().await.len() >= 7 }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.stderr()));
    let tasks = world.tasks().await;
    assert_eq!(tasks.len(), 7, "one task per queued build: {tasks:#?}");
    let count = |template: &str| {
        tasks
            .iter()
            .filter(|t| t.tags.get("jenkins-cloud:template").map(String::as_str) == Some(template))
            .count()
    };
    assert_eq!(count("linux"), 4);
    assert_eq!(count("arm"), 3);
    for t in &tasks {
        assert_eq!(t.started_by, world.owner);
        assert_eq!(t.tags.get("jenkins-cloud:owner"), Some(&world.owner));
        assert_eq!(t.tags.get("jenkins-cloud:agent"), Some(&t.agent));
        assert_eq!(t.tags.get("team").map(String::as_str), Some("e2e"));
        assert_eq!(
            t.env.get("JENKINS_URL").map(String::as_str),
            Some(world.fake.url())
        );
        assert_eq!(
            t.env.get("JENKINS_WEB_SOCKET").map(String::as_str),
            Some("true")
        );
        assert_eq!(t.env.get("MAVEN_OPTS").map(String::as_str), Some("-Xmx1g"));
        assert_eq!(
            t.env.get("JENKINS_SECRET"),
            Some(&world.fake.secret_for(&t.agent)),
            "the task carries its node's secret"
        );
        let node = world.fake.node(&t.agent).expect("a node per task");
        let template = &t.tags["jenkins-cloud:template"];
        let wanted = if template == "arm" { "arm64" } else { "linux" };
        assert!(
            node.labels
                .to_string()
                .split_whitespace()
                .any(|l| l == wanted),
            "node {} has labels {}",
            node.name,
            node.labels
        );
    }

    // Everything is served, then retired.
    let w = Arc::clone(&world);
    let sim_ref = &sim;
    let ids_ref = &ids;
    wait_until(Duration::from_secs(40), "served and retired", || {
        let w = Arc::clone(&w);
        let finished = sim_ref.stats().finished;
        let all = ids_ref.iter().all(|id| finished.contains(id));
        async move {
            all && w.fake.queue_items().is_empty()
                && w.our_nodes().is_empty()
                && w.live_tasks().await.is_empty()
        }
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nnodes {:?}\nsim {:?}\n{}",
            world.our_nodes(),
            sim.stats(),
            daemon.stderr()
        )
    });
    daemon.sigkill().await;
    let stats = sim.stats();
    assert_eq!(stats.tasks_seen.len(), 7, "no task beyond the burst");
    assert_eq!(stats.connections, 7, "every agent connected once");
    assert!(stats.refused.is_empty(), "{:?}", stats.refused);
    assert_eq!(stats.aborted, 0, "no build killed by a retirement");
    assert_eq!(stats.duplicate_live, 0);
    let log = daemon.stderr();
    assert!(
        log.contains("drained"),
        "agents are drained before they stop:\n{log}"
    );
    assert!(log.contains("node deleted"), "{log}");
    assert!(
        !log.contains(e2e_support::TOKEN),
        "the API token is never logged"
    );
    for t in &world.tasks().await {
        assert!(
            !log.contains(&t.env["JENKINS_SECRET"]),
            "agent secret logged"
        );
    }
}

/// `plan` reads Jenkins and moto and changes nothing in either (compared
/// before and after); `run --once` then does what the plan said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_changes_nothing_and_run_once_does_what_it_said() {
    let world = World::new(WorldSpec {
        tag: "e2e-plan",
        templates: &[("linux", "linux"), ("arm", "arm64")],
        global_cap: 10,
        build_duration: Duration::from_millis(500),
        template_env: &[],
        template_settings: &[],
        extra_clouds: "",
    })
    .await;
    let a = world.fake.queue_freestyle("a", "linux");
    let b = world.fake.queue_freestyle("b", "linux");
    let c = world.fake.queue_pipeline("c", "arm64");
    let nodes_before = world.fake.nodes();
    let queue_before = world.fake.queue_items();
    let tasks_before = world.tasks().await;
    // Only this world's families: other tests share moto's default account.
    let prefix = format!("jenkins-cloud-{}-", world.owner);
    let families_before = world
        .ecs
        .list_task_definition_families()
        .family_prefix(&prefix)
        .send()
        .await
        .expect("ListTaskDefinitionFamilies")
        .families()
        .to_vec();

    let (ok, stdout, stderr) = world.run(&["plan", "--format", "json"]).await;
    assert!(ok, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("plan JSON");
    let launches: Vec<(String, u64)> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["kind"] == "launch")
        .map(|a| {
            (
                a["template"].as_str().unwrap_or("").to_owned(),
                a["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let mut sorted = launches.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [("arm".to_owned(), 1), ("linux".to_owned(), 2)],
        "{plan}"
    );

    assert_eq!(
        world.fake.nodes(),
        nodes_before,
        "plan touched Jenkins nodes"
    );
    assert_eq!(
        world.fake.queue_items(),
        queue_before,
        "plan touched the queue"
    );
    assert_eq!(
        world.tasks().await,
        tasks_before,
        "plan started or stopped tasks"
    );
    let families_after = world
        .ecs
        .list_task_definition_families()
        .family_prefix(&prefix)
        .send()
        .await
        .expect("ListTaskDefinitionFamilies")
        .families()
        .to_vec();
    assert_eq!(
        families_after, families_before,
        "plan registered a task definition"
    );

    let (ok, stdout, stderr) = world.run(&["run", "--once"]).await;
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("report JSON");
    let launched = report["act"]["launched"].as_array().expect("launched");
    assert_eq!(launched.len(), 3, "{report}");
    let mut served: Vec<u64> = launched
        .iter()
        .flat_map(|l| l["serves"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_u64())
        .collect();
    served.sort();
    assert_eq!(served, [a, b, c]);
    assert_eq!(world.live_tasks().await.len(), 3);
    assert_eq!(world.our_nodes().len(), 3);
    let families = world
        .ecs
        .list_task_definition_families()
        .family_prefix(&prefix)
        .send()
        .await
        .expect("ListTaskDefinitionFamilies");
    assert_eq!(
        families.families().len(),
        2,
        "run registers one family per template (the check on plan above is live): {families:?}"
    );

    // A second plan sees the agents and plans no further launch.
    let (ok, stdout, stderr) = world.run(&["plan", "--format", "json"]).await;
    assert!(ok, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("plan JSON");
    assert!(
        !plan["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .any(|a| a["kind"] == "launch"),
        "agents already launched are counted: {plan}"
    );
}
