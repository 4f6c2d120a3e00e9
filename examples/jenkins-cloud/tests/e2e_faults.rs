//! Faults stay inside their scope, through the real `jenkins-cloud` binary
//! against the fake controller and moto (Fargate):
//!
//! * a template whose tasks are stopped with `CannotPullContainerError` as
//!   soon as they run backs off instead of relaunching every pass, and says
//!   why on its status node in Jenkins;
//! * a second cloud whose endpoint refuses connections does not stop the
//!   healthy Fargate cloud from serving its builds;
//! * two templates on one label, the first capped at 1: the second takes the
//!   build the first cannot.

mod e2e_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e_support::{wait_until, AgentSim, World, WorldSpec};

/// The stop reason ECS gives a task whose image cannot be pulled ("Amazon ECS
/// stopped tasks error messages", CannotPullContainerError).
const PULL_ERROR: &str = "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref docker.io/acme/agent:missing: not found";

fn spec<'a>(tag: &'a str, templates: &'a [(&'a str, &'a str)]) -> WorldSpec<'a> {
    WorldSpec {
        tag,
        templates,
        global_cap: 20,
        build_duration: Duration::from_millis(500),
        template_env: &[],
        template_settings: &[],
        extra_clouds: "",
    }
}

/// Stops every live task of the world's cluster with [`PULL_ERROR`] until `stop` is set.
fn kill_tasks_as_they_run(world: Arc<World>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            for t in world.live_tasks().await {
                let _ = world
                    .ecs
                    .stop_task()
                    .cluster(&world.cluster)
                    .task(&t.arn)
                    .reason(PULL_ERROR)
                    .send()
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_cannot_pull_their_image_back_off_and_jenkins_says_why() {
    let world = Arc::new(World::new(spec("e2e-pullfail", &[("linux", "linux")])).await);
    let stop = Arc::new(AtomicBool::new(false));
    let killer = kill_tasks_as_they_run(Arc::clone(&world), Arc::clone(&stop));
    for k in 0..4 {
        world.fake.queue_freestyle(&format!("app-{k}"), "linux");
    }
    let mut daemon = world.spawn(&["run"], None);
    let status_node = format!("{}-linux-placeholder", world.owner);
    let w = Arc::clone(&world);
    let name = status_node.clone();
    wait_until(
        Duration::from_secs(30),
        "the status node names the cause",
        || {
            let reason = w.fake.node(&name).and_then(|n| n.offline_reason);
            async move { reason.is_some_and(|r| r.contains("CannotPullContainerError")) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.stderr()));
    // Poll is 1 s: before the fix every pass relaunched (44 tasks in 40 s).
    tokio::time::sleep(Duration::from_secs(20)).await;
    let tasks = world.tasks().await;
    println!(
        "tasks started in ~30 s for 4 builds whose image cannot be pulled: {}",
        tasks.len()
    );
    let log = daemon.stderr();
    daemon.sigkill().await;
    stop.store(true, Ordering::SeqCst);
    let _ = killer.await;
    assert!(
        tasks.len() <= 3 * 4,
        "at most 3 launches per queued build in the first minute, got {}:\n{log}",
        tasks.len()
    );
    assert!(
        tasks.len() >= 4,
        "each build got its first try: {}",
        tasks.len()
    );
    let node = world.fake.node(&status_node).expect("status node");
    let reason = node.offline_reason.unwrap_or_default();
    assert!(reason.contains("template `linux`"), "{reason}");
    assert!(node.temporarily_offline);
    assert!(!node.description.is_empty());
    let told = log.matches("template failing").count();
    assert!(
        (1..=3).contains(&told),
        "the log says it once per change, not once per pass ({told} times):\n{log}"
    );
    assert!(log.contains("CannotPullContainerError"), "{log}");
    assert_eq!(
        world.fake.queue_items().len(),
        4,
        "the builds still wait, nothing was lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_that_refuses_connections_does_not_stop_the_others() {
    // A loopback port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ec2 = format!(
        r#"  - name: dark-ec2
    kind: ec2
    region: us-east-1
    endpoint_url: "http://127.0.0.1:{closed}"
    templates:
      - name: vm
        labels: vm
        spec: {{ami: {{id: ami-0123456789abcdef0}}, instance_types: [t3.micro], subnets: [subnet-0123456789abcdef0], security_groups: [sg-0123456789abcdef0]}}
"#
    );
    let world = Arc::new(
        World::new(WorldSpec {
            extra_clouds: &ec2,
            ..spec("e2e-darkcloud", &[("linux", "linux")])
        })
        .await,
    );
    let sim = AgentSim::start(Arc::clone(&world), Duration::from_millis(200));
    for k in 0..4 {
        world.fake.queue_freestyle(&format!("app-{k}"), "linux");
    }
    let vm_item = world.fake.queue_freestyle("needs-a-vm", "vm");
    let mut daemon = world.spawn(&["run"], None);
    let w = Arc::clone(&world);
    let sim_ref = &sim;
    wait_until(Duration::from_secs(60), "the 4 Fargate builds ran", || {
        let finished = sim_ref.stats().finished.len();
        let _ = &w;
        async move { finished >= 4 }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nsim {:?}\n{}", sim.stats(), daemon.stderr()));
    let (ok, stdout, stderr) = world.run(&["plan", "--format", "json"]).await;
    let (check_ok, check_out, check_err) = world.run(&["check", "--format", "json"]).await;
    let log = daemon.stderr();
    daemon.sigkill().await;
    assert!(ok, "{stderr}");
    assert!(
        !check_ok,
        "check fails while a cloud cannot be reached: {check_out}{check_err}"
    );
    let check: serde_json::Value = serde_json::from_str(&check_out).expect("check JSON");
    assert!(
        check["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["level"] == "FAIL"
                && f["subject"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("clouds[1] dark-ec2")),
        "check names the failing cloud: {check}"
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("plan JSON");
    let clouds = plan["clouds"].as_array().expect("clouds");
    let dark = clouds
        .iter()
        .find(|c| c["cloud"] == "dark-ec2")
        .unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(dark["ok"], false, "{plan}");
    assert!(
        clouds
            .iter()
            .any(|c| c["cloud"] == "fargate" && c["ok"] == true),
        "{plan}"
    );
    assert!(
        plan["held_back"]
            .as_array()
            .expect("held_back")
            .iter()
            .any(|h| h[0] == "vm" && h[1].as_str().unwrap_or("").contains("cannot be read")),
        "{plan}"
    );
    assert!(
        world.fake.queue_items().iter().any(|i| i.id == vm_item),
        "the VM build waits for its cloud"
    );
    assert!(
        log.contains("cloud cannot be read"),
        "the log names the frozen cloud:\n{log}"
    );
    assert_eq!(
        log.matches("cloud cannot be read").count(),
        1,
        "told once, not every pass:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_template_spills_its_build_to_the_next_template() {
    let world = Arc::new(
        World::new(WorldSpec {
            template_settings: &[("spot", "instance_cap: 1")],
            ..spec("e2e-spill", &[("spot", "linux"), ("ondemand", "linux")])
        })
        .await,
    );
    let a = world.fake.queue_freestyle("a", "linux");
    let b = world.fake.queue_freestyle("b", "linux");
    let (ok, stdout, stderr) = world.run(&["plan", "--format", "json"]).await;
    assert!(ok, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("plan JSON");
    let spilled = plan["spilled"].as_array().expect("spilled");
    assert_eq!(spilled.len(), 1, "{plan}");
    assert_eq!(spilled[0]["item"], b, "{plan}");
    assert_eq!(spilled[0]["from"], "spot");
    assert_eq!(spilled[0]["to"], "ondemand");
    assert_eq!(spilled[0]["reason"], "instance cap 1 reached");

    let (ok, stdout, stderr) = world.run(&["run", "--once"]).await;
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("report JSON");
    let mut launched: Vec<(String, Vec<u64>)> = report["act"]["launched"]
        .as_array()
        .expect("launched")
        .iter()
        .map(|l| {
            (
                l["template"].as_str().unwrap_or("").to_owned(),
                l["serves"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_u64())
                    .collect(),
            )
        })
        .collect();
    launched.sort();
    assert_eq!(
        launched,
        [
            ("ondemand".to_owned(), vec![b]),
            ("spot".to_owned(), vec![a])
        ],
        "{report}"
    );
    let tasks = world.live_tasks().await;
    assert_eq!(tasks.len(), 2, "both builds get an agent: {tasks:#?}");
}
