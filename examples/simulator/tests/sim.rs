//! Whole simulations on small traces: determinism, the oracle as a lower bound,
//! and Jenkins' standard provisioning delays through the real reconcile loop.

use std::time::Duration;

use jenkins_cloud_sim::trace::TraceBuild;
use jenkins_cloud_sim::{run, Model, SimOptions, SimTemplate, StrategyKind, Trace};

/// A model whose latencies are fixed: start 30 s, connect 5 s, stop 10 s; the
/// spot profile never interrupted.
fn fixed_model() -> Model {
    let mut m = Model::builtin();
    for p in m.profiles.values_mut() {
        p.start_latency_s = [30.0, 30.0];
        p.connect_latency_s = 5.0;
        p.stop_latency_s = 10.0;
        p.interruptions_per_hour = 0.0;
    }
    m
}

fn build(at: f64, label: &str, duration: f64) -> TraceBuild {
    TraceBuild {
        submit_s: at,
        label: Some(label.into()),
        duration_s: duration,
        task: String::new(),
    }
}

fn options(builds: Vec<TraceBuild>, model: Model, strategies: &[StrategyKind]) -> SimOptions {
    SimOptions {
        trace: Trace::new(builds).unwrap(),
        model,
        templates: vec![
            SimTemplate::new("small", "linux small", "fargate-small"),
            SimTemplate::new("arm", "linux arm64", "fargate-arm"),
            SimTemplate::new("docker", "linux docker-host", "ec2-m6i-large"),
        ],
        strategies: strategies.to_vec(),
        seed: 7,
        ..SimOptions::default()
    }
}

fn mixed_trace(seed: u64, n: usize) -> Vec<TraceBuild> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let labels = ["linux", "arm64", "docker-host"];
    (0..n)
        .map(|_| {
            build(
                rng.f64() * 1800.0,
                labels[rng.usize(0..3)],
                rng.u64(60..900) as f64,
            )
        })
        .collect()
}

#[test]
fn same_seed_same_report() {
    let o = options(mixed_trace(3, 40), Model::builtin(), &StrategyKind::ALL);
    let a = run(&o).unwrap();
    let b = run(&o).unwrap();
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(a.strategies.len(), 6);
    assert!(
        a.strategies.iter().all(|s| s.unstarted == 0 && s.cut == 0),
        "{}",
        a.table()
    );
    let other = run(&SimOptions { seed: 8, ..o }).unwrap();
    assert_ne!(
        a.to_json(),
        other.to_json(),
        "the seed matters (latency draws)"
    );
}

#[test]
fn oracle_is_a_lower_bound() {
    let burst: Vec<TraceBuild> = (0..12)
        .map(|i| build(0.0, ["linux", "arm64", "docker-host"][i % 3], 600.0))
        .collect();
    let spaced: Vec<TraceBuild> = (0..10)
        .map(|i| build(i as f64 * 1200.0, "linux", 120.0))
        .collect();
    let traces = [
        ("burst", burst),
        ("spaced", spaced),
        ("mixed", mixed_trace(11, 30)),
        ("mixed2", mixed_trace(12, 30)),
    ];
    for (name, trace) in traces {
        let report = run(&options(trace, fixed_model(), &StrategyKind::ALL)).unwrap();
        let oracle = report.strategy("oracle").unwrap().clone();
        assert_eq!(oracle.waits.p50, 35.0, "{name}: start 30 s + connect 5 s");
        for s in report.strategies.iter().filter(|s| s.name != "oracle") {
            assert_eq!(s.unstarted, 0, "{name}/{}", s.name);
            assert!(
                s.cost >= oracle.cost,
                "{name}/{}: cost {} below the oracle's {}",
                s.name,
                s.cost,
                oracle.cost
            );
            assert!(s.agent_hours >= oracle.agent_hours, "{name}/{}", s.name);
            // Where every build needs a fresh agent, none can wait less than one
            // start. Elsewhere reused, warm or spare (amazon-ecs over-launch)
            // agents beat the oracle's wait, which is their point.
            let fresh = s.name == "one-shot" || name == "burst" || name == "spaced";
            if fresh && s.name != "warm-pool" {
                assert!(
                    s.waits.p50 >= oracle.waits.p50,
                    "{name}/{}: p50 {} < {}",
                    s.name,
                    s.waits.p50,
                    oracle.waits.p50
                );
                assert!(s.waits.max >= oracle.waits.max, "{name}/{}", s.name);
            }
        }
    }
}

#[test]
fn one_shot_launches_once_per_build_and_ecs_over_launches() {
    let report = run(&options(
        mixed_trace(5, 30),
        fixed_model(),
        &[StrategyKind::OneShot, StrategyKind::AmazonEcs],
    ))
    .unwrap();
    let one_shot = report.strategy("one-shot").unwrap();
    assert_eq!(one_shot.launches, 30);
    assert_eq!(one_shot.launches_per_build, 1.0);
    assert_eq!(one_shot.launches_never_used, 0);
    let ecs = report.strategy("amazon-ecs").unwrap();
    assert!(
        ecs.launches > 30,
        "planned capacity not subtracted: {} launches",
        ecs.launches
    );
    assert!(ecs.launches_never_used > 0);
}

/// Jenkins' NodeProvisioner through the real loop: ≤ 10 s (plus the start) from
/// zero executors; minutes once busy executors exist. Our default: one poll.
#[test]
fn jenkins_standard_delays_from_core_constants() {
    let trace = vec![build(0.0, "linux", 3600.0), build(300.0, "linux", 60.0)];
    let report = run(&options(
        trace,
        fixed_model(),
        &[StrategyKind::JenkinsStandard, StrategyKind::Default],
    ))
    .unwrap();
    let history_waits = |name: &str| {
        let s = report.strategy(name).unwrap();
        (s.waits.p50, s.waits.max)
    };
    let start = 35.0;
    let (first, second) = history_waits("jenkins-standard");
    assert!(
        first >= start && first <= start + 10.0,
        "from zero executors: {first} s"
    );
    assert!(
        second >= start + 100.0 && second <= start + 230.0,
        "with a busy executor: {second} s"
    );
    let (a, b) = history_waits("default");
    assert!(a >= start && b <= start + 2.0, "no-delay: {a} / {b} s");
}

#[test]
fn bad_options_are_named() {
    let mut o = options(
        mixed_trace(1, 3),
        Model::builtin(),
        &[StrategyKind::Default],
    );
    o.templates[1].profile = "fargate-huge".into();
    let e = run(&o).unwrap_err();
    assert!(
        e.0.starts_with("templates[1].profile: no profile `fargate-huge`"),
        "{e}"
    );
    o.templates[1].profile = "fargate-arm".into();
    o.templates[2].name = "Docker".into();
    assert!(run(&o).unwrap_err().0.starts_with("templates[2].name"));
    o.templates[2].name = "docker".into();
    o.poll_interval = Duration::ZERO;
    assert!(run(&o).unwrap_err().0.contains("poll_interval"));
    assert!(StrategyKind::from_name("fastest")
        .unwrap_err()
        .0
        .contains("known: default, one-shot"));
}

#[test]
fn derived_templates_cover_an_imported_trace() {
    let trace = Trace::new(vec![
        TraceBuild {
            submit_s: 0.0,
            label: None,
            duration_s: 60.0,
            task: String::new(),
        },
        build(10.0, "linux && docker", 60.0),
        build(20.0, "linux&&docker", 60.0),
    ])
    .unwrap();
    let templates = SimTemplate::derive(&trace, "fargate-small").unwrap();
    assert_eq!(templates.len(), 2, "{templates:?}");
    assert_eq!(templates[1].labels, "linux docker");
    let report = run(&SimOptions {
        trace,
        templates,
        strategies: vec![StrategyKind::Default],
        ..SimOptions::default()
    })
    .unwrap();
    assert_eq!(report.strategies[0].builds_started, 3);
    let neg = Trace::new(vec![build(0.0, "!windows", 1.0)]).unwrap();
    assert!(SimTemplate::derive(&neg, "fargate-small")
        .unwrap_err()
        .0
        .contains("`!windows`"));
}

#[test]
fn waits_per_label_partition_the_waits() {
    let mut trace = mixed_trace(5, 30);
    trace.push(TraceBuild {
        label: None,
        ..build(60.0, "", 120.0)
    });
    let report = run(&options(
        trace.clone(),
        fixed_model(),
        &[StrategyKind::Default, StrategyKind::Oracle],
    ))
    .unwrap();
    let mut want: Vec<String> = trace
        .iter()
        .map(|b| b.label.clone().unwrap_or_else(|| "(any)".into()))
        .collect();
    want.sort();
    want.dedup();
    for s in &report.strategies {
        let labels: Vec<&str> = s.waits_by_label.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, want, "{}", s.name);
        let count: usize = s.waits_by_label.iter().map(|l| l.waits.count).sum();
        assert_eq!(count, s.waits.count, "{}", s.name);
        let max = s
            .waits_by_label
            .iter()
            .map(|l| l.waits.max)
            .fold(0.0, f64::max);
        assert_eq!(max, s.waits.max, "{}", s.name);
    }
    // Fixed latencies: the oracle waits 30 s + 5 s on every label.
    let oracle = report.strategy("oracle").unwrap();
    assert!(oracle
        .waits_by_label
        .iter()
        .all(|l| l.waits.p50 == 35.0 && l.waits.max == 35.0));
    let table = report.table();
    for label in &want {
        assert!(
            table.lines().any(|l| l.starts_with(label.as_str())),
            "{label} missing from\n{table}"
        );
    }
}

/// Three bursts of 8 EC2 builds, 30 minutes apart, on the EC2 profile alone
/// with a fresh start of 60 s (restart 19–23 s, connect 10 s).
fn ec2_bursts(model: Model, strategies: &[StrategyKind]) -> SimOptions {
    let builds = (0..3)
        .flat_map(|burst| (0..8).map(move |_| build(burst as f64 * 1800.0, "docker-host", 120.0)))
        .collect();
    SimOptions {
        templates: vec![SimTemplate::new(
            "docker",
            "linux docker-host",
            "ec2-m6i-large",
        )],
        ..options(builds, model, strategies)
    }
}

fn slow_fresh_ec2() -> Model {
    let mut m = Model::builtin();
    let ec2 = m.profiles.get_mut("ec2-m6i-large").unwrap();
    ec2.start_latency_s = [60.0, 60.0];
    assert_eq!(ec2.restart_latency_s, Some([19.0, 23.0]));
    m
}

#[test]
fn the_ec2_warm_pool_restarts_stopped_instances() {
    let o = ec2_bursts(
        slow_fresh_ec2(),
        &[StrategyKind::Default, StrategyKind::WarmPool],
    );
    let report = run(&o).unwrap();
    let (default, warm) = (&report.strategies[0], &report.strategies[1]);
    assert!(
        default.unstarted == 0 && warm.unstarted == 0,
        "{}",
        report.table()
    );
    assert_eq!(default.launches, 24, "{}", report.table());
    // The warm pool creates the first burst's instances only (8, plus 1 kept
    // idle by min_idle): later bursts get the idle agent and restarts.
    assert_eq!(warm.launches, 9, "{}", report.table());
    assert_eq!(default.restarts, 0);
    assert!(
        warm.restarts >= 8,
        "later bursts restart pooled instances: {}",
        warm.restarts
    );
    // Fresh: 60 s + 10 s connect (+ up to a 1 s poll); restarted: 19–23 s +
    // 10 s (+ a poll). Two thirds of the builds are served by restarts or the
    // idle agent, so the median is a restart's wait.
    assert!(
        default.waits.p50 >= 70.0 && default.waits.p50 <= 71.0,
        "{}",
        report.table()
    );
    assert!(
        warm.waits.p50 >= 29.0 && warm.waits.p50 <= 34.0,
        "{}",
        report.table()
    );
    assert!(warm.waits.max >= 70.0, "the first burst starts fresh");

    // Stopped time is priced as storage: the same run with free storage costs
    // less, by at most 7 volumes stopped the whole run.
    let mut free = slow_fresh_ec2();
    free.ec2.ebs_gb_month = Some(0.0);
    let free_run = run(&ec2_bursts(free, &[StrategyKind::WarmPool])).unwrap();
    let free_warm = &free_run.strategies[0];
    assert_eq!(
        free_warm.launches, warm.launches,
        "pricing changes no dynamics"
    );
    let stopped_cost = warm.cost - free_warm.cost;
    let per_volume_hour = 30.0 * 0.08 / 730.0;
    let most = 7.0 * per_volume_hour * warm.simulated_s as f64 / 3600.0;
    assert!(
        stopped_cost > 0.0 && stopped_cost <= most,
        "stopped cost {stopped_cost}, at most {most}"
    );
    assert_eq!(
        warm.agent_hours, free_warm.agent_hours,
        "agent-hours leave stopped time out"
    );
}
