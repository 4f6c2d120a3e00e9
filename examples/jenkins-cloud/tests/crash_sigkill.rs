//! Crash safety of the real program (issue 8): `jenkins-cloud run` is killed
//! with SIGKILL at each step boundary, against moto (Fargate) and the fake
//! controller over HTTP; then restarted until everything is served and retired,
//! then `run --once` must find nothing to do.
//!
//! The boundaries come from the test hook `JENKINS_CLOUD_CRASH_POINT`
//! (`src/crashpoint.rs`): the program prints a marker and hangs there, the
//! harness sends SIGKILL. Per boundary [`RUNS`] runs go in parallel, each in its
//! own cluster with its own owner id and fake controller: 3 builds on `linux`,
//! global cap 2, builds of 300 ms, idle timeout 1 s, orphan grace 2 s.
//!
//! Checked per run: 0 live tasks and 0 nodes of ours at the end (no orphans),
//! never two live tasks for one agent name and no connection refused as
//! "already connected" / "wrong secret" / "unknown node" (no duplicates, no task
//! without node), live tasks ≤ cap at every sample, tasks launched ≤ builds,
//! every queued build ran to completion (none aborted), and the final
//! `run --once` launches, drains and terminates nothing.

mod e2e_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_support::{wait_until, AgentSim, World, WorldSpec};
use jenkins_cloud_cli::crashpoint::CrashPoint;

const RUNS: usize = 5;
const BUILDS: usize = 3;
const CAP: usize = 2;

#[derive(Debug)]
struct Figures {
    tasks: usize,
    max_live: usize,
    connections: usize,
    secs: f64,
}

async fn one_run(point: CrashPoint, index: usize) -> Result<Figures, String> {
    let started = Instant::now();
    let short = match point {
        CrashPoint::AfterNodeBeforeLaunch => "node",
        CrashPoint::AfterLaunchBeforeRecord => "launch",
        CrashPoint::AfterDrainBeforeTerminate => "drain",
        CrashPoint::AfterTerminateBeforeDelete => "stop",
    };
    let tag = format!("crash-{short}-{index}");
    let world = Arc::new(
        World::new(WorldSpec {
            tag: &tag,
            templates: &[("linux", "linux")],
            global_cap: CAP as u32,
            build_duration: Duration::from_millis(300),
            template_env: &[],
            template_settings: &[],
            extra_clouds: "",
        })
        .await,
    );
    let sim = AgentSim::start(Arc::clone(&world), Duration::from_millis(300));
    let ids: Vec<u64> = (0..BUILDS)
        .map(|k| world.fake.queue_freestyle(&format!("job-{k}"), "linux"))
        .collect();

    // 1. Run until the boundary, then SIGKILL.
    let mut first = world.spawn(&["run"], Some(point.name()));
    first
        .wait_marker(Duration::from_secs(40))
        .await
        .map_err(|e| format!("[{tag}] first run: {e}"))?;
    first.sigkill().await;

    // 2. Restart; wait until every build ran and everything is retired.
    let mut second = world.spawn(&["run"], None);
    let w = Arc::clone(&world);
    let quiet = wait_until(Duration::from_secs(45), "quiescence", || {
        let w = Arc::clone(&w);
        let served = sim.stats().finished;
        let all_served = ids.iter().all(|id| served.contains(id));
        async move {
            all_served
                && w.fake.queue_items().is_empty()
                && w.fake.builds().is_empty()
                && w.our_nodes().is_empty()
                && w.live_tasks().await.is_empty()
        }
    })
    .await;
    if let Err(e) = quiet {
        let stats = sim.stats();
        return Err(format!(
            "[{tag}] after restart: {e}\nnodes {:?}\nlive tasks {:?}\nqueue {:?}\nsim {stats:?}\n--- killed run ---\n{}\n--- restarted run ---\n{}",
            world.our_nodes(),
            world.live_tasks().await.iter().map(|t| &t.agent).collect::<Vec<_>>(),
            world.fake.queue_items().iter().map(|i| i.id).collect::<Vec<_>>(),
            first.stderr(),
            second.stderr()
        ));
    }
    second.sigkill().await;

    // 3. One more pass (garbage collection): nothing left to do.
    let (ok, stdout, stderr) = world.run(&["run", "--once"]).await;
    if !ok {
        return Err(format!("[{tag}] run --once failed: {stderr}"));
    }
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|e| format!("[{tag}] run --once printed no JSON report ({e}): {stdout}"))?;
    for key in ["launched", "drained", "terminated", "errors"] {
        let n = report["act"][key].as_array().map_or(usize::MAX, Vec::len);
        if n != 0 {
            return Err(format!(
                "[{tag}] final pass: act.{key} is not empty: {report}"
            ));
        }
    }

    // 4. Invariants.
    let stats = sim.stats();
    let live = world.live_tasks().await;
    let nodes = world.our_nodes();
    let check = |cond: bool, what: String| {
        if cond {
            Ok(())
        } else {
            Err(format!("[{tag}] {what}; sim {stats:?}"))
        }
    };
    check(live.is_empty(), format!("orphaned tasks: {live:?}"))?;
    check(nodes.is_empty(), format!("orphaned nodes: {nodes:?}"))?;
    check(
        stats.duplicate_live == 0,
        "two live tasks for one agent".into(),
    )?;
    check(
        stats.refused.is_empty(),
        format!("connections refused: {:?}", stats.refused),
    )?;
    check(
        stats.max_live <= CAP,
        format!("cap {CAP} exceeded: {} live", stats.max_live),
    )?;
    check(
        stats.tasks_seen.len() <= BUILDS,
        format!(
            "{} tasks launched for {BUILDS} builds",
            stats.tasks_seen.len()
        ),
    )?;
    check(
        stats.tasks_seen.len() == stats.agents_seen.len(),
        "two tasks carry one agent name".into(),
    )?;
    check(
        stats.aborted == 0,
        format!("{} builds aborted", stats.aborted),
    )?;
    check(
        ids.iter().all(|id| stats.finished.contains(id)),
        format!("builds not served: {ids:?} vs {:?}", stats.finished),
    )?;
    Ok(Figures {
        tasks: stats.tasks_seen.len(),
        max_live: stats.max_live,
        connections: stats.connections,
        secs: started.elapsed().as_secs_f64(),
    })
}

async fn boundary(point: CrashPoint) {
    let started = Instant::now();
    let runs = (0..RUNS).map(|i| tokio::spawn(one_run(point, i)));
    let mut figures = Vec::new();
    let mut failures = Vec::new();
    for r in runs {
        match r.await.expect("run task panicked") {
            Ok(f) => figures.push(f),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let tasks: usize = figures.iter().map(|f| f.tasks).sum();
    let conns: usize = figures.iter().map(|f| f.connections).sum();
    let max_live = figures.iter().map(|f| f.max_live).max().unwrap_or(0);
    let slowest = figures.iter().map(|f| f.secs).fold(0.0, f64::max);
    eprintln!(
        "crash figures: point={point} runs={} builds={} tasks={tasks} connections={conns} max_live={max_live} \
         orphans=0 duplicates=0 slowest_run={slowest:.1}s wall={:.1}s",
        figures.len(),
        figures.len() * BUILDS,
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_node_before_launch() {
    boundary(CrashPoint::AfterNodeBeforeLaunch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_launch_before_record() {
    boundary(CrashPoint::AfterLaunchBeforeRecord).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_drain_before_terminate() {
    boundary(CrashPoint::AfterDrainBeforeTerminate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_terminate_before_delete() {
    boundary(CrashPoint::AfterTerminateBeforeDelete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_crash_point_is_refused_at_start() {
    let world = World::new(WorldSpec {
        tag: "crash-bad-name",
        templates: &[("linux", "linux")],
        global_cap: 1,
        build_duration: Duration::from_millis(300),
        template_env: &[],
        template_settings: &[],
        extra_clouds: "",
    })
    .await;
    world.fake.queue_freestyle("job", "linux");
    let (ok, _, stderr) = world
        .run_with(&["run", "--once"], Some("after-lunch"))
        .await;
    assert!(!ok, "an unknown crash point must stop the program");
    assert!(
        stderr.contains("JENKINS_CLOUD_CRASH_POINT") && stderr.contains("after-lunch"),
        "{stderr}"
    );
    assert!(world.our_nodes().is_empty(), "nothing may have been done");
    assert!(
        world.tasks().await.is_empty(),
        "nothing may have been launched"
    );
}
