//! Benchmarks: the plan step at 10,000 queued items × 5,000 agents × 50
//! templates, label matching, and a simulated day (one strategy).

#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use jenkins_cloud_core::backend::{CloudId, CloudState};
use jenkins_cloud_core::jenkins::{Demand, QueueItem, Requirement};
use jenkins_cloud_core::label::{LabelExpr, LabelSet};
use jenkins_cloud_core::lifecycle::AgentState;
use jenkins_cloud_core::reconcile::plan::{plan, Caps, PlanInput};
use jenkins_cloud_core::reconcile::Agent;
use jenkins_cloud_core::strategy::NoDelay;
use jenkins_cloud_core::template::AgentTemplate;
use jenkins_cloud_sim::{SimOptions, StrategyKind};
use tokio::time::Instant;

fn plan_world() -> (Vec<Arc<AgentTemplate>>, BTreeMap<String, Agent>, Demand) {
    let templates: Vec<Arc<AgentTemplate>> = (0..50)
        .map(|i| {
            Arc::new(AgentTemplate::new(
                format!("t{i}"),
                LabelSet::parse(&format!("linux pool{i} size{}", i % 5)),
            ))
        })
        .collect();
    let now = Instant::now();
    let states = [
        AgentState::Busy,
        AgentState::Idle,
        AgentState::Launching,
        AgentState::Starting,
    ];
    let agents = (0..5000)
        .map(|i| {
            let name = format!("sim-t{}-{i:05}", i % 50);
            let mut a = Agent::requested(name.clone(), format!("t{}", i % 50), 1, now);
            a.state = states[i % 4].clone();
            a.node_exists = true;
            a.cloud_id = Some(CloudId(format!("mem-{i:08}")));
            a.cloud_state = Some(CloudState::Running);
            a.ever_connected = matches!(a.state, AgentState::Busy | AgentState::Idle);
            a.busy_executors = u32::from(a.state == AgentState::Busy);
            a.idle_since = (a.state == AgentState::Idle).then_some(now);
            (name, a)
        })
        .collect();
    let items = (0..10_000u64)
        .map(|id| QueueItem {
            id,
            task: format!("job-{id}"),
            requirement: Requirement::Label(
                format!("linux && pool{} && size{}", id % 50, (id % 50) % 5)
                    .parse()
                    .unwrap(),
            ),
            in_queue_since_ms: 1_000_000 + id,
        })
        .collect();
    (
        templates,
        agents,
        Demand {
            items,
            unattributed: Vec::new(),
        },
    )
}

fn bench_plan(c: &mut Criterion) {
    let (templates, agents, demand) = plan_world();
    let caps = Caps::default();
    let blocked = BTreeMap::new();
    let now = Instant::now();
    c.bench_function("plan 10k queued x 5k agents x 50 templates", |b| {
        b.iter(|| {
            let input = PlanInput {
                templates: &templates,
                agents: &agents,
                demand: &demand,
                caps: &caps,
                blocked_until: &blocked,
                frozen: &Default::default(),
                now: now + Duration::from_secs(30),
                wall_secs: 1_795_996_800,
                terminate_retry: Duration::from_secs(60),
            };
            plan(&input, &mut NoDelay)
        })
    });
}

fn bench_labels(c: &mut Criterion) {
    let expr: LabelExpr = "linux && (docker || podman) && !arm64 && (size3 || size4)"
        .parse()
        .unwrap();
    let set = LabelSet::parse("linux docker x86_64 size4 pool17 sim-t17-00017");
    c.bench_function("label match", |b| {
        b.iter(|| expr.matches(std::hint::black_box(&set)))
    });
    c.bench_function("label parse", |b| {
        b.iter(|| {
            std::hint::black_box("linux && (docker || podman) && !arm64")
                .parse::<LabelExpr>()
                .unwrap()
        })
    });
}

fn bench_day(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulated day");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    let options = SimOptions {
        strategies: vec![StrategyKind::Default],
        threads: 1,
        ..SimOptions::default()
    };
    group.bench_function("built-in day, default strategy", |b| {
        b.iter(|| jenkins_cloud_sim::run(&options).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_plan, bench_labels, bench_day);
criterion_main!(benches);
