//! The oracle: a computed lower bound, not a simulation.
//!
//! Every build gets a fresh agent of the first template that can take it the
//! instant it is submitted, and waits exactly one start latency (drawn from the
//! template's profile with the simulation seed) plus the connect latency. Its
//! cost is the build time only, at the agent's price divided by its executors:
//! no pending time, no idle time, no minimum. With fixed latencies it is a
//! lower bound on the waits of any strategy that starts a fresh agent per build;
//! strategies that reuse or keep warm agents can wait less (that is their point),
//! never cost less.

use jenkins_cloud_core::label::{LabelExpr, LabelSet};

use crate::report::{waits_by_label, StrategyReport, WaitStats};
use crate::{SimError, SimOptions};

pub(crate) fn oracle(options: &SimOptions) -> Result<StrategyReport, SimError> {
    let mut rng = fastrand::Rng::with_seed(options.seed ^ 0x0004_AC1E);
    let mut templates = Vec::new();
    for t in &options.templates {
        let profile = options
            .model
            .profile(&t.profile)
            .map_err(|e| SimError(e.0))?;
        let hourly = options
            .model
            .hourly_price(profile)
            .map_err(|e| SimError(format!("profiles.{}.{e}", t.profile)))?;
        templates.push((
            LabelSet::parse(&t.labels),
            profile,
            hourly / t.executors.max(1) as f64,
        ));
    }
    let mut waits = Vec::new();
    let mut labelled = Vec::new();
    let mut cost = 0.0;
    let mut unstarted = 0;
    let mut launches = 0;
    let mut end = 0.0f64;
    for b in &options.trace.builds {
        let expr = b
            .label
            .as_deref()
            .and_then(|l| LabelExpr::parse_optional(l).ok().flatten());
        let Some((_, profile, hourly)) = templates.iter().find(|(labels, _, _)| match &expr {
            None => true,
            Some(e) => e.matches(labels),
        }) else {
            unstarted += 1;
            continue;
        };
        let (min, max) = profile.start_range();
        let span = (max - min).as_millis() as u64;
        let start = min.as_secs_f64() + rng.u64(0..=span) as f64 / 1000.0;
        let wait = start + profile.connect().as_secs_f64();
        waits.push(wait);
        labelled.push((expr.as_ref().map(ToString::to_string), wait));
        cost += b.duration_s * hourly / 3600.0;
        launches += 1;
        end = end.max(b.submit_s + wait + b.duration_s);
    }
    let n = options.trace.builds.len() as f64;
    let build_hours: f64 = options.trace.build_seconds() / 3600.0;
    Ok(StrategyReport {
        name: "oracle".into(),
        waits: WaitStats::of(&mut waits),
        waits_by_label: waits_by_label(labelled),
        agent_hours: build_hours,
        idle_agent_hours: 0.0,
        cost,
        launches,
        restarts: 0,
        launches_per_build: if n > 0.0 { launches as f64 / n } else { 0.0 },
        launches_never_used: 0,
        builds_started: launches,
        builds_aborted: 0,
        unstarted,
        cut: 0,
        failed_passes: 0,
        simulated_s: end.ceil() as u64,
        samples: Vec::new(),
        wall: std::time::Duration::ZERO,
    })
}
