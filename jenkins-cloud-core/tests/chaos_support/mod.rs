//! The chaos run: a seeded world driven through faults, spot interruptions and
//! restarts (some killing a pass midway), then a calm phase, with invariants
//! checked after every pass and at the end.

pub mod pool;
pub mod ticks;
pub mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::AddAssign;
use std::time::Duration;

use jenkins_cloud_core::jenkins::JenkinsApi;
use jenkins_cloud_core::layer::{FaultKind, JenkinsFaultKind};
use jenkins_cloud_core::memory::{BuildOutcome, BuildRecord};
use jenkins_cloud_core::reconcile::{ObserveError, PassReport, Reconciler};
use tokio::time::Instant;

use world::{Interruption, World, FOREIGN_NODE, POLL, STATIC_NODE, WORKLOAD_WINDOW};

/// The calm phase ends when everything is served and retired, or after this long.
const CALM_LIMIT: Duration = Duration::from_secs(4 * 60 * 60);

/// Figures of one run, summed over runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub runs: u64,
    pub passes: u64,
    pub builds: u64,
    pub requeued: u64,
    /// Instances created (warm-pool restarts not included).
    pub launched: u64,
    /// Runs whose backend kept a warm pool.
    pub pool_runs: u64,
    /// Launches served by restarting a stopped pool member (same cloud id,
    /// new agent).
    pub pool_restarts: u64,
    /// Terminations that stopped an instance into the pool.
    pub pool_stops: u64,
    /// Spot interruptions that picked a pool member and were refused.
    pub pool_interrupts_refused: u64,
    pub restarts: u64,
    /// Restarts that cancelled a pass while it was in flight.
    pub killed_mid_pass: u64,
    pub interruptions: u64,
    /// Backend faults that failed a call or an item (slow calls excluded).
    pub backend_faults: u64,
    pub backend_slow: u64,
    /// Jenkins faults that failed a call (slow calls excluded).
    pub jenkins_faults: u64,
    pub jenkins_slow: u64,
    pub jenkins_down: u64,
    pub retries: u64,
    pub passes_skipped: u64,
    /// Passes in which the backend could not be read, its templates frozen.
    pub frozen_passes: u64,
    /// `broken` resources failed before connecting.
    pub broken_failures: u64,
    /// Runs with a `broken` template.
    pub broken_runs: u64,
    /// Clean passes of seeds with `overflow` where spill was checked.
    pub spill_checks: u64,
    /// Runs in which a cap was reached at some pass.
    pub runs_at_cap: u64,
    /// Second builds on one-shot agents the loop could not see or drain in time.
    pub oneshot_reused: u64,
    pub simulated: Duration,
}

impl AddAssign for Figures {
    fn add_assign(&mut self, o: Figures) {
        self.runs += o.runs;
        self.passes += o.passes;
        self.builds += o.builds;
        self.requeued += o.requeued;
        self.launched += o.launched;
        self.pool_runs += o.pool_runs;
        self.pool_restarts += o.pool_restarts;
        self.pool_stops += o.pool_stops;
        self.pool_interrupts_refused += o.pool_interrupts_refused;
        self.restarts += o.restarts;
        self.killed_mid_pass += o.killed_mid_pass;
        self.interruptions += o.interruptions;
        self.backend_faults += o.backend_faults;
        self.backend_slow += o.backend_slow;
        self.jenkins_faults += o.jenkins_faults;
        self.jenkins_slow += o.jenkins_slow;
        self.jenkins_down += o.jenkins_down;
        self.retries += o.retries;
        self.passes_skipped += o.passes_skipped;
        self.frozen_passes += o.frozen_passes;
        self.broken_failures += o.broken_failures;
        self.broken_runs += o.broken_runs;
        self.spill_checks += o.spill_checks;
        self.runs_at_cap += o.runs_at_cap;
        self.oneshot_reused += o.oneshot_reused;
        self.simulated += o.simulated;
    }
}

/// The invariants that must hold at every observed instant.
fn check_instant(w: &World, at_cap: &mut bool) -> Result<(), String> {
    let (by_template, by_agent) = w.live_instances();
    let total: u32 = by_template.values().sum();
    if total > w.global_cap {
        return Err(format!(
            "global cap {} exceeded: {total} live instances {by_template:?}",
            w.global_cap
        ));
    }
    *at_cap |= total == w.global_cap;
    for t in &w.templates {
        let live = by_template.get(&t.name).copied().unwrap_or(0);
        if let Some(cap) = t.instance_cap {
            if live > cap {
                return Err(format!(
                    "instance cap {cap} of `{}` exceeded: {live} live",
                    t.name
                ));
            }
            *at_cap |= live == cap;
        }
    }
    if let Some((agent, n)) = by_agent.iter().find(|(_, n)| **n > 1) {
        return Err(format!("{n} live instances for agent `{agent}`"));
    }
    pool::check_members(w)
}

/// Runs `seed`; `Err` names the first invariant that broke.
pub async fn run(seed: u64) -> Result<Figures, String> {
    let mut w = World::new(seed).await;
    let start = Instant::now();
    let mut fig = Figures {
        runs: 1,
        ..Figures::default()
    };
    let mut at_cap = false;
    let mut next_build = 0;
    let mut r = w.faulty_reconciler();
    let mut life_broken = 0;
    // Passes that could not see or act fully (skipped, killed, restarted, or a
    // step failed), as (start, end).
    let mut troubled: Vec<(Instant, Instant)> = Vec::new();

    // Faulty phase: the workload arrives while faults, interruptions and
    // restarts happen.
    while start.elapsed() < WORKLOAD_WINDOW || next_build < w.workload.len() {
        while next_build < w.workload.len() && w.workload[next_build].at <= start.elapsed() {
            w.jenkins
                .submit_with(w.workload[next_build].submission.clone());
            next_build += 1;
        }
        if w.rng.f64() < w.interrupt_rate {
            match w.interrupt_one()? {
                Interruption::Hit => fig.interruptions += 1,
                Interruption::RefusedPoolMember => fig.pool_interrupts_refused += 1,
                Interruption::NoTarget => {}
            }
        }
        let restart = w.rng.f64() < w.restart_rate;
        let kill = restart && w.rng.f64() < 0.75;
        fig.passes += 1;
        let pass_start = Instant::now();
        let mut troubled_pass = restart;
        // Whether the pass ran to its end (observe included).
        let mut completed = false;
        if kill {
            // Between two calls (1 ms ticks), or during a fault's or retry's delay.
            let deadline = if w.rng.bool() {
                Duration::from_micros(w.rng.u64(0..10_000))
            } else {
                Duration::from_millis(w.rng.u64(0..15_000))
            };
            match tokio::time::timeout(deadline, r.run_once()).await {
                Err(_) => fig.killed_mid_pass += 1,
                Ok(Ok(report)) => {
                    completed = true;
                    troubled_pass |= !report.act.errors.is_empty();
                }
                Ok(Err(_)) => troubled_pass = true,
            }
        } else {
            let before: BTreeMap<String, String> = r
                .agents()
                .map(|a| (a.name.clone(), a.template.clone()))
                .collect();
            let result = r.run_once().await;
            if verbose() {
                eprintln!(
                    "[{:>6.0}s] {}",
                    start.elapsed().as_secs_f64(),
                    summary(&result)
                );
            }
            match result {
                Err(_) => {
                    fig.passes_skipped += 1;
                    troubled_pass = true;
                }
                Ok(report) => {
                    completed = true;
                    troubled_pass |= !report.act.errors.is_empty();
                    fig.frozen_passes += check_frozen_untouched(&r, &report, &before)
                        .map_err(|e| format!("faulty phase: {e}"))?;
                    if report.act.errors.is_empty() {
                        fig.spill_checks += check_spill(&w, &r, &report)
                            .await
                            .map_err(|e| format!("faulty phase: {e}"))?;
                    }
                }
            }
        }
        if troubled_pass {
            troubled.push((pass_start, Instant::now()));
        }
        let failed = w.fail_broken();
        fig.broken_failures += failed;
        life_broken += failed;
        // One life of the program: its first try for each build, then one
        // probe per backoff period (5 s doubling to 5 min over ≤ 40 min: at
        // most 9 + 8), plus launches in flight when it started.
        if life_broken > 2 * w.broken_items + 20 {
            return Err(format!(
                "faulty phase: {life_broken} launches of a template whose every resource dies before connecting, in one life of the program, for {} builds",
                w.broken_items
            ));
        }
        check_instant(&w, &mut at_cap).map_err(|e| format!("faulty phase: {e}"))?;
        if completed {
            pool::check_records(&w, &r).map_err(|e| format!("faulty phase: {e}"))?;
        }
        if restart {
            fig.restarts += 1;
            drop(r);
            r = w.faulty_reconciler();
            life_broken = 0;
        }
        tokio::time::sleep(POLL).await;
    }
    drop(r);

    // Calm phase: faults stop; a restarted program must clean up and serve all.
    troubled.push((Instant::now(), Instant::now()));
    let mut r = w.calm_reconciler();
    let calm_start = Instant::now();
    loop {
        fig.passes += 1;
        let report = r
            .run_once()
            .await
            .map_err(|e| format!("calm phase: a pass failed without faults: {e}"))?;
        if verbose() {
            eprintln!(
                "[{:>6.0}s] calm: {} plan {:?}",
                start.elapsed().as_secs_f64(),
                summary(&Ok(report.clone())),
                report.plan.held_back
            );
        }
        check_instant(&w, &mut at_cap).map_err(|e| format!("calm phase: {e}"))?;
        pool::check_records(&w, &r).map_err(|e| format!("calm phase: {e}"))?;
        if quiet(&w, &r).await {
            break;
        }
        if calm_start.elapsed() >= CALM_LIMIT {
            return Err(format!(
                "not quiet {} min after the faults stopped: {}",
                CALM_LIMIT.as_secs() / 60,
                describe(&w, &r).await
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    fig.oneshot_reused = check_end(&w, &troubled).await?;

    let history = w.jenkins.history();
    fig.builds = w.workload.len() as u64;
    fig.requeued = history.iter().filter(|b| b.retry_of.is_some()).count() as u64;
    let stats = w.memory.stats();
    fig.launched = stats.launched;
    fig.pool_runs = u64::from(w.warm_pool.is_some());
    fig.broken_runs = u64::from(w.broken_items > 0);
    fig.pool_restarts = stats.restarted;
    fig.pool_stops = stats.pooled;
    if w.warm_pool.is_none() && (stats.restarted, stats.pooled) != (0, 0) {
        return Err(format!("no warm pool, yet {stats:?}"));
    }
    let bc = w.faults.counts();
    fig.backend_slow = bc.total(FaultKind::Slow);
    fig.backend_faults = [
        FaultKind::Throttled,
        FaultKind::Transient,
        FaultKind::Capacity,
        FaultKind::Permanent,
        FaultKind::Timeout,
        FaultKind::PartialItem,
    ]
    .iter()
    .map(|k| bc.total(*k))
    .sum();
    let jc = w.faulty_jenkins.counts();
    fig.jenkins_faults = jc.failures();
    fig.jenkins_slow = jc.total(JenkinsFaultKind::Slow);
    fig.jenkins_down = jc.total(JenkinsFaultKind::Down);
    fig.retries = w.retry.retries();
    fig.runs_at_cap = u64::from(at_cap);
    fig.simulated = start.elapsed();
    check_launch_bound(&w, &fig)?;
    Ok(fig)
}

/// No `linux` build the pass saw is left waiting without an agent coming
/// while `overflow` (same labels, later in the configuration) has room: the
/// demand spilled. Checked after clean passes (no failed step, every cloud
/// read, `overflow` healthy); returns 1 when it was checked.
async fn check_spill(w: &World, r: &Reconciler, report: &PassReport) -> Result<u64, String> {
    use jenkins_cloud_core::jenkins::Requirement;
    use jenkins_cloud_core::lifecycle::AgentState;
    let Some(cap) = w.overflow_cap else {
        return Ok(0);
    };
    if r.cloud_reads().iter().any(|c| !c.ok())
        || r.health()
            .iter()
            .any(|h| h.template == "overflow" && !h.healthy)
    {
        return Ok(0);
    }
    let pair = |t: &str| t == "linux" || t == "overflow";
    let alive = |t: Option<&str>| {
        r.agents()
            .filter(|a| t.is_none_or(|t| a.template == t) && a.state.counts_against_cap())
            .count() as u32
    };
    if alive(Some("overflow")) >= cap || alive(None) >= w.global_cap {
        return Ok(0);
    }
    let seen: BTreeSet<u64> = report
        .plan
        .demand
        .iter()
        .filter(|d| pair(&d.template))
        .flat_map(|d| d.items.iter().copied())
        .collect();
    let queue = w
        .jenkins
        .demand()
        .await
        .map_err(|e| format!("reading the queue: {e}"))?;
    let waiting = queue
        .items
        .iter()
        .filter(|i| seen.contains(&i.id) && matches!(i.requirement, Requirement::Label(_)))
        .count();
    let coming = r
        .agents()
        .filter(|a| {
            pair(&a.template)
                && matches!(
                    a.state,
                    AgentState::Requested
                        | AgentState::Launching
                        | AgentState::Starting
                        | AgentState::Idle
                )
        })
        .count();
    if waiting > coming {
        return Err(format!(
            "{waiting} linux builds wait with {coming} agents coming while `overflow` has room ({}/{cap})",
            alive(Some("overflow"))
        ));
    }
    Ok(1)
}

/// A pass that could not read the backend froze its templates: it launched,
/// drained and terminated nothing of theirs. `before` maps the agents known
/// before the pass to their templates. Returns 1 when the pass froze any.
fn check_frozen_untouched(
    r: &Reconciler,
    report: &PassReport,
    before: &BTreeMap<String, String>,
) -> Result<u64, String> {
    let frozen: BTreeSet<String> = r
        .health()
        .into_iter()
        .filter(|h| h.cloud_unreadable.is_some())
        .map(|h| h.template)
        .collect();
    if frozen.is_empty() {
        return Ok(0);
    }
    let template_of = |agent: &String| {
        before
            .get(agent)
            .cloned()
            .or_else(|| {
                r.agents()
                    .find(|a| &a.name == agent)
                    .map(|a| a.template.clone())
            })
            .unwrap_or_default()
    };
    for l in &report.act.launched {
        if frozen.contains(&l.template) {
            return Err(format!(
                "launched {} of frozen template {}",
                l.agent, l.template
            ));
        }
    }
    for agent in report.act.drained.iter().chain(&report.act.terminated) {
        let template = template_of(agent);
        if frozen.contains(&template) {
            return Err(format!("acted on {agent} of frozen template {template}"));
        }
    }
    Ok(1)
}

/// `CHAOS_VERBOSE=1` prints every pass of the faulty phase (for replays).
fn verbose() -> bool {
    std::env::var_os("CHAOS_VERBOSE").is_some()
}

fn summary(result: &Result<PassReport, ObserveError>) -> String {
    match result {
        Err(e) => format!("skipped: {e}"),
        Ok(p) => format!(
            "launched {:?} drained {:?} terminated {:?} errors {:?}",
            p.act
                .launched
                .iter()
                .map(|l| (&l.agent, &l.serves))
                .collect::<Vec<_>>(),
            p.act.drained,
            p.act.terminated,
            p.act
                .errors
                .iter()
                .map(|e| (e.step, &e.agent, &e.message))
                .collect::<Vec<_>>()
        ),
    }
}

async fn quiet(w: &World, _r: &Reconciler) -> bool {
    let all_done = w.jenkins.history().iter().all(|b| {
        matches!(
            b.outcome,
            BuildOutcome::Succeeded | BuildOutcome::Aborted(_)
        )
    });
    let (live, _) = w.live_instances();
    all_done
        && w.jenkins.queue_len() == 0
        && live.is_empty()
        && w.jenkins.nodes().await.is_ok_and(|n| n.is_empty())
}

async fn describe(w: &World, r: &Reconciler) -> String {
    let mut s = String::new();
    let queued: Vec<_> = w
        .jenkins
        .history()
        .into_iter()
        .filter(|b| matches!(b.outcome, BuildOutcome::Queued | BuildOutcome::Running))
        .map(|b| {
            (
                b.id,
                b.task,
                b.label.map(|l| l.to_string()),
                b.outcome,
                b.started_at.map(|t| t - w.t0),
                b.node,
            )
        })
        .collect();
    let _ = write!(s, "unfinished builds {queued:?}; ");
    let nodes: Vec<_> = w
        .jenkins
        .nodes()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.name)
        .collect();
    let _ = write!(s, "our nodes {nodes:?}; ");
    let live: Vec<_> = w
        .cloud
        .instances()
        .into_iter()
        .filter(|i| i.owner == w.owner && !i.instance.state.is_gone())
        .map(|i| (i.instance.agent_name, i.instance.state))
        .collect();
    let _ = write!(s, "live instances {live:?}; ");
    let agents: Vec<_> = r.agents().map(|a| (&a.name, &a.state)).collect();
    let _ = write!(s, "agents {agents:?}");
    s
}

/// The invariants of the end state.
async fn check_end(w: &World, troubled: &[(Instant, Instant)]) -> Result<u64, String> {
    let history = w.jenkins.history();
    // Every build submitted was served exactly once (retries after agent loss
    // are new items of the same task).
    let mut succeeded: BTreeMap<&str, u32> = BTreeMap::new();
    for b in &history {
        if b.outcome == BuildOutcome::Succeeded {
            *succeeded.entry(b.task.as_str()).or_default() += 1;
        }
    }
    for p in &w.workload {
        let task = p.submission.task.as_str();
        match succeeded.get(task).copied().unwrap_or(0) {
            1 => {}
            n => return Err(format!("`{task}` succeeded {n} times, expected once")),
        }
    }
    // No build was aborted but by a spot interruption: we never stopped or
    // deleted a busy agent, nor (warm pool) stopped through a stale record an
    // instance restarted under the same cloud id for another agent. Injected
    // faults never abort a build: only an instance stopping or failing does.
    if let Some(b) = history.iter().find(|b| {
        matches!(b.outcome, BuildOutcome::Aborted(_))
            && !b.node.as_ref().is_some_and(|n| w.interrupted.contains(n))
    }) {
        return Err(format!(
            "`{}` (item {}) was aborted on `{:?}`, which was not interrupted: {:?}",
            b.task, b.id, b.node, b.outcome
        ));
    }
    // One-shot agents run one build. From outside the controller a one-shot
    // agent is drained once a pass sees its build; a build that starts and ends
    // while the loop cannot see or drain (Jenkins down, a failed drain, a
    // restart) leaves the agent idle and it may take a second build. That is
    // tolerated only when such trouble fell between the first build's start
    // (one poll before, as the pass may have read just before it) and the
    // second build's start; it is counted.
    let mut reused = 0;
    let mut on_node: BTreeMap<&str, Vec<&BuildRecord>> = BTreeMap::new();
    for b in &history {
        if let Some(node) = b.node.as_deref().filter(|n| n.starts_with("ci-oneshot-")) {
            on_node.entry(node).or_default().push(b);
        }
    }
    for (node, builds) in &on_node {
        let mut starts: Vec<Instant> = builds.iter().filter_map(|b| b.started_at).collect();
        starts.sort();
        for pair in starts.windows(2) {
            let (from, to) = (pair[0] - POLL, pair[1]);
            if !troubled.iter().any(|&(s, e)| e >= from && s <= to) {
                return Err(format!(
                    "one-shot agent `{node}` ran {} builds (starts at {:?}) although every pass in between saw and acted without trouble",
                    builds.len(),
                    starts.iter().map(|t| *t - w.t0).collect::<Vec<_>>()
                ));
            }
            reused += 1;
        }
    }
    // No duplicate agents: no agent was ever refused as already connected, and
    // none connected with a wrong secret.
    if let Some(r) = w
        .jenkins
        .refused_connections()
        .iter()
        .find(|r| r.reason != "no such node")
    {
        return Err(format!(
            "agent connection for `{}` refused: {}",
            r.node, r.reason
        ));
    }
    // Foreign resources survive.
    let names: BTreeSet<String> = w.jenkins.node_names().into_iter().collect();
    for foreign in [STATIC_NODE, FOREIGN_NODE] {
        if !names.contains(foreign) {
            return Err(format!("foreign node `{foreign}` was deleted"));
        }
    }
    let foreign = w
        .cloud
        .instances()
        .into_iter()
        .find(|i| i.instance.id == w.foreign_instance);
    match foreign {
        Some(i) if !i.instance.state.is_gone() && i.stop_reason.is_none() => {}
        other => return Err(format!("the other owner's instance was touched: {other:?}")),
    }
    Ok(reused)
}

/// No launches beyond what the demand justifies: each instance created or
/// restarted from the warm pool (a launch, from the loop's side) is for a
/// queued item (retries included), or replaces one lost to an interruption or
/// to a launch whose answer was lost.
fn check_launch_bound(w: &World, fig: &Figures) -> Result<(), String> {
    let items = w.jenkins.history().len() as u64;
    let lost_answers = w
        .faults
        .counts()
        .get(jenkins_cloud_core::layer::Op::Launch, FaultKind::Timeout);
    let bound = items + fig.interruptions + fig.broken_failures + lost_answers;
    let launches = fig.launched + fig.pool_restarts;
    if launches > bound {
        return Err(format!(
            "{} instances launched ({} of them restarted from the warm pool) for {items} queue items, \
             {} interruptions and {lost_answers} lost launch answers",
            launches, fig.pool_restarts, fig.interruptions
        ));
    }
    Ok(())
}
