//! One strategy's world: controller, cloud, one backend per template, the real
//! reconcile loop, and the event loop that feeds submissions and passes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jenkins_cloud_core::backend::{
    AgentTransport, Backend, CloudId, CloudState, JenkinsEndpoint, OwnerId,
};
use jenkins_cloud_core::label::{LabelExpr, LabelSet};
use jenkins_cloud_core::memory::{
    BuildOutcome, Latency, MemoryBackend, MemoryCloud, MemoryJenkins, Submission,
    DEFAULT_EPOCH_SECS,
};
use jenkins_cloud_core::reconcile::{Pool, ReconcileConfig, Reconciler};
use jenkins_cloud_core::strategy::{JenkinsStandard, NoDelay, ProvisioningStrategy};
use jenkins_cloud_core::template::AgentTemplate;
use tokio::time::Instant;

use crate::ecs::AmazonEcsPlugin;
use crate::model::{Kind, Profile};
use crate::report::{waits_by_label, Sample, StrategyReport, WaitStats};
use crate::{SimError, SimOptions, StrategyKind};

struct TemplateWorld<'a> {
    profile: &'a Profile,
    hourly: f64,
    /// Dollars per hour of a stopped (warm-pool) instance.
    stopped_hourly: f64,
    executors: u32,
    backend: MemoryBackend,
}

/// Simulates `kind` on `options`' trace; publishes simulated seconds in `clock`.
pub(crate) fn simulate(
    options: &SimOptions,
    kind: StrategyKind,
    clock: &AtomicU64,
) -> Result<StrategyReport, SimError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError(format!("cannot start a runtime: {e}")))?;
    let started = std::time::Instant::now();
    let mut report = rt.block_on(simulate_async(options, kind, clock))?;
    report.wall = started.elapsed();
    Ok(report)
}

fn strategy(kind: StrategyKind) -> Box<dyn ProvisioningStrategy> {
    match kind {
        StrategyKind::JenkinsStandard => Box::new(JenkinsStandard::new()),
        StrategyKind::AmazonEcs => Box::new(AmazonEcsPlugin::new()),
        _ => Box::new(NoDelay),
    }
}

async fn simulate_async(
    options: &SimOptions,
    kind: StrategyKind,
    clock: &AtomicU64,
) -> Result<StrategyReport, SimError> {
    let owner = OwnerId::new("sim").expect("valid owner");
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(DEFAULT_EPOCH_SECS);
    let jenkins = MemoryJenkins::with_epoch(owner.clone(), epoch);
    let cloud = MemoryCloud::with_epoch(epoch);
    cloud.connect_agents_to(&jenkins);
    // Gone instances stay listed briefly (ECS keeps them an hour): listing them
    // every pass is most of the simulator's cost, and the loop needs only a few
    // passes to see them go.
    cloud.set_retention(Duration::from_secs(120));
    let mut worlds = Vec::new();
    let mut pools = Vec::new();
    for (i, t) in options.templates.iter().enumerate() {
        let profile = options
            .model
            .profile(&t.profile)
            .map_err(|e| SimError(e.0))?;
        let hourly = options
            .model
            .hourly_price(profile)
            .map_err(|e| SimError(format!("profiles.{}.{e}", t.profile)))?;
        let (min, max) = profile.start_range();
        let backend_owner = OwnerId::new(format!("sim-t{i}")).expect("valid owner");
        let mut backend = MemoryBackend::on_cloud(cloud.clone(), backend_owner)
            .with_seed(options.seed.wrapping_mul(1_000_003).wrapping_add(i as u64))
            .with_start_latency(Latency::Uniform { min, max })
            .with_connect_latency(profile.connect())
            .with_stop_latency(profile.stop());
        if let Some(pool) = kind.stopped_pool(profile) {
            backend = backend.with_warm_pool(pool);
        }
        let mut template = AgentTemplate::new(t.name.clone(), LabelSet::parse(&t.labels));
        template.executors = t.executors;
        template.retention = kind.retention(i);
        let backend_dyn: Arc<dyn Backend> = Arc::new(backend.clone());
        backend_dyn
            .validate_template(&template)
            .map_err(|p| SimError(format!("templates[{i}]: {}", p.join("; "))))?;
        pools.push(Pool {
            template: Arc::new(template),
            backend: backend_dyn,
        });
        worlds.push(TemplateWorld {
            profile,
            hourly,
            stopped_hourly: options.model.stopped_hourly_price(profile),
            executors: t.executors,
            backend,
        });
    }
    let endpoint = JenkinsEndpoint {
        url: "http://jenkins.sim/".into(),
        transport: AgentTransport::WebSocket,
    };
    let mut config = ReconcileConfig::new(owner, endpoint);
    config.poll_interval = options.poll_interval;
    config.seed = Some(options.seed);
    let mut reconciler = Reconciler::with_epoch(
        config,
        Arc::new(jenkins.clone()),
        pools,
        strategy(kind),
        DEFAULT_EPOCH_SECS * 1000,
    );

    let labels: Vec<Option<LabelExpr>> = options
        .trace
        .builds
        .iter()
        .map(|b| {
            b.label
                .as_deref()
                .and_then(|l| LabelExpr::parse_optional(l).ok().flatten())
        })
        .collect();
    let builds = &options.trace.builds;
    let start = Instant::now();
    let at = |s: f64| start + Duration::from_secs_f64(s);
    let last_submit = builds.last().map_or(0.0, |b| b.submit_s);
    let give_up = at(last_submit) + options.max_tail;
    let spot: Vec<usize> = (0..worlds.len())
        .filter(|&i| worlds[i].profile.interruptions_per_hour > 0.0)
        .collect();
    let mut rng = fastrand::Rng::with_seed(options.seed ^ 0x5107_1A7E);

    let mut next_build = 0;
    let mut next_pass = start;
    let mut next_sample = start;
    let mut samples = Vec::new();
    // Agent → (launch pass, template, restarted a stopped instance).
    let mut launched: BTreeMap<String, (Instant, usize, bool)> = BTreeMap::new();
    let mut cloud_ids: BTreeSet<CloudId> = BTreeSet::new();
    let mut alive: BTreeSet<String> = BTreeSet::new();
    let mut ever_launched: BTreeSet<String> = BTreeSet::new();
    let mut top_up_cost = 0.0;
    let template_index: BTreeMap<&str, usize> = options
        .templates
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut pass_errors = 0u64;

    loop {
        let now = Instant::now();
        while next_build < builds.len() && at(builds[next_build].submit_s) <= now {
            let b = &builds[next_build];
            jenkins.submit_with(
                Submission::new(
                    b.task.clone(),
                    labels[next_build].clone(),
                    Duration::from_secs_f64(b.duration_s),
                )
                .retry_on_agent_loss(),
            );
            next_build += 1;
        }
        if now >= next_pass {
            match reconciler.run_once().await {
                Ok(pass) => {
                    for l in pass.act.launched {
                        let index = template_index
                            .get(l.template.as_str())
                            .copied()
                            .unwrap_or(0);
                        ever_launched.insert(l.agent.clone());
                        alive.insert(l.agent.clone());
                        let restarted = !cloud_ids.insert(l.cloud_id);
                        launched.insert(l.agent, (now, index, restarted));
                    }
                }
                Err(_) => pass_errors += 1,
            }
            // Agents whose record is gone (or whose resource is) stop being billed.
            let live: BTreeSet<&str> = reconciler
                .agents()
                .filter(|a| !a.cloud_state.as_ref().is_some_and(CloudState::is_gone))
                .map(|a| a.name.as_str())
                .collect();
            let gone: Vec<String> = alive
                .iter()
                .filter(|n| !live.contains(n.as_str()))
                .cloned()
                .collect();
            for name in gone {
                alive.remove(&name);
                if let Some((t0, i, restarted)) = launched.remove(&name) {
                    // Per life: an EC2 restart starts a billing period (and minimum) of its own.
                    let w = &worlds[i];
                    let lifetime = now.duration_since(t0).as_secs_f64();
                    let start = match w.profile.restart_range() {
                        Some((min, _)) if restarted => min,
                        _ => w.profile.start_range().0,
                    };
                    let billed = match w.profile.kind {
                        Kind::Fargate => lifetime,
                        Kind::Ec2 => (lifetime - start.as_secs_f64()).max(0.0),
                    };
                    top_up_cost += options.model.minimum_top_up(billed) * w.hourly / 3600.0;
                }
            }
            for &i in &spot {
                let p = worlds[i].profile.interruptions_per_hour
                    * options.poll_interval.as_secs_f64()
                    / 3600.0;
                let running = worlds[i].backend.list_owned().await.unwrap_or_default();
                for inst in running.iter().filter(|x| x.state == CloudState::Running) {
                    if rng.f64() < p {
                        worlds[i]
                            .backend
                            .interrupt(&inst.id, "spot interruption (simulated)");
                    }
                }
            }
            next_pass += options.poll_interval;
        }
        let stats = jenkins.stats();
        let running = stats.builds_started - stats.builds_succeeded - stats.builds_aborted;
        let queued = jenkins.queue_len() as u64;
        if now >= next_sample {
            samples.push(Sample {
                t_s: now.duration_since(start).as_secs(),
                queued,
                running,
                agents: cloud.active_count() as u64,
            });
            next_sample += options.sample_interval;
        }
        clock.store(now.duration_since(start).as_secs(), Ordering::Relaxed);
        let work_left = next_build < builds.len() || queued > 0 || running > 0;
        let active = cloud.active_count();
        if !work_left && (active == 0 || now >= at(last_submit) + Duration::from_secs(1800)) {
            break;
        }
        if now >= give_up && next_build == builds.len() {
            break;
        }
        let mut wake = next_pass.min(next_sample);
        if next_build < builds.len() {
            let submit = at(builds[next_build].submit_s);
            wake = wake.min(submit);
            // Nothing queued, running or alive: passes would do nothing until the next submission.
            if queued == 0 && running == 0 && active == 0 && alive.is_empty() && submit > next_pass
            {
                let skipped = (submit - next_pass).as_nanos() / options.poll_interval.as_nanos();
                next_pass += options.poll_interval * skipped as u32;
                wake = next_pass.min(submit);
            }
        }
        tokio::time::sleep_until(wake).await;
    }

    let end = Instant::now();
    let history = jenkins.history();
    let mut waits = Vec::new();
    let mut labelled = Vec::new();
    let mut build_seconds = 0.0;
    let mut unstarted = 0;
    let mut used_nodes = BTreeSet::new();
    for r in &history {
        let wait = r
            .started_at
            .unwrap_or(end)
            .duration_since(r.submitted_at)
            .as_secs_f64();
        waits.push(wait);
        labelled.push((r.label.as_ref().map(ToString::to_string), wait));
        match r.started_at {
            Some(s) => {
                build_seconds += r.finished_at.unwrap_or(end).duration_since(s).as_secs_f64();
                used_nodes.extend(r.node.clone());
            }
            None => {
                unstarted += 1;
            }
        }
    }
    let mut agent_s = 0.0;
    let mut executor_running_s = 0.0;
    let mut cost = top_up_cost;
    let mut launches = 0;
    let mut restarts = 0;
    for w in &worlds {
        let s = w.backend.instance_seconds();
        let (p, r, st) = (
            s.pending.as_secs_f64(),
            s.running.as_secs_f64(),
            s.stopping.as_secs_f64(),
        );
        agent_s += p + r + st;
        executor_running_s += r * w.executors as f64;
        cost += options.model.billable_seconds(w.profile.kind, p, r, st) * w.hourly / 3600.0;
        cost += s.stopped.as_secs_f64() * w.stopped_hourly / 3600.0;
        launches += w.backend.stats().launched;
        restarts += w.backend.stats().restarted;
    }
    let stats = jenkins.stats();
    let trace_builds = builds.len() as f64;
    Ok(StrategyReport {
        name: kind.name().to_owned(),
        waits: WaitStats::of(&mut waits),
        waits_by_label: waits_by_label(labelled),
        agent_hours: agent_s / 3600.0,
        idle_agent_hours: ((executor_running_s - build_seconds) / 3600.0).max(0.0),
        cost,
        launches,
        restarts,
        launches_per_build: if trace_builds > 0.0 {
            launches as f64 / trace_builds
        } else {
            0.0
        },
        launches_never_used: ever_launched
            .iter()
            .filter(|n| !used_nodes.contains(*n))
            .count() as u64,
        builds_started: stats.builds_started,
        builds_aborted: stats.builds_aborted,
        unstarted,
        cut: history
            .iter()
            .filter(|r| r.outcome == BuildOutcome::Running)
            .count() as u64,
        failed_passes: pass_errors,
        simulated_s: end.duration_since(start).as_secs(),
        samples,
        wall: Duration::ZERO,
    })
}
