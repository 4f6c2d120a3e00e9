//! `run`: the daemon (`--once`: a single pass).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use jenkins_cloud_core::backend::CloudId;
use jenkins_cloud_core::reconcile::{ObserveError, PassReport};
use jenkins_cloud_ec2::{Ec2Backend, Ec2Spec};

use super::{CommandError, Setup};
use crate::config::{CloudKind, Config, OnShutdown};
use crate::metrics::Metrics;

/// Before the first pass: empties the EC2 warm pools of templates that keep
/// none (removed from the configuration, or with `warm_pool` off), through
/// each of the loop's EC2 backends (`ec2`, see [`Setup::ec2`]), which from
/// then on terminate retiring agents of those templates instead of stopping
/// them. Returns the instances terminated; a cloud whose pools cannot be read
/// is logged and skipped (the loop runs all the same).
pub async fn prune_pools(config: &Config, ec2: &[Arc<Ec2Backend>]) -> Vec<CloudId> {
    // Template names are unique in a configuration; two EC2 clouds in one
    // region must not empty each other's pools, so every cloud keeps them all.
    let keep: BTreeSet<String> = config
        .templates()
        .filter(|(i, t)| {
            config.clouds[*i].kind == CloudKind::Ec2
                && Ec2Spec::parse(&t.spec).is_ok_and(|s| s.warm_pool)
        })
        .map(|(_, t)| t.name.clone())
        .collect();
    let mut pruned = Vec::new();
    for backend in ec2 {
        match backend.prune_pools(&keep).await {
            Ok(ids) => pruned.extend(ids),
            Err(e) => {
                tracing::warn!(error = %e, "could not look for warm-pool instances of templates without a pool; they stay until the next start");
            }
        }
    }
    pruned
}

/// Logs what a pass did; every launch line names the queue items it serves.
pub fn log_pass(result: &Result<PassReport, ObserveError>) {
    match result {
        Ok(report) => {
            for l in &report.act.launched {
                tracing::info!(agent = %l.agent, template = %l.template, cloud_id = %l.cloud_id, serves = ?l.serves, "launched");
            }
            for a in &report.act.drained {
                tracing::info!(agent = %a, "drained");
            }
            for a in &report.act.terminated {
                tracing::info!(agent = %a, "terminated");
            }
            for e in &report.act.errors {
                tracing::warn!(step = e.step, agent = ?e.agent, template = ?e.template, class = %e.class, error = %e.message, "step failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "pass skipped: nothing changed"),
    }
}

/// One pass: observe, plan, act. Returns the report.
pub async fn once(setup: &mut Setup, metrics: &Metrics) -> Result<PassReport, CommandError> {
    let result = setup.reconciler.run_once().await;
    log_pass(&result);
    let cloud = setup.cloud_metrics();
    metrics.record_pass(result.as_ref().ok(), setup.reconciler.agents(), cloud);
    metrics.record_warm_pool(setup.reconciler.warm_pool());
    let clouds: Vec<(String, bool)> = setup
        .cloud_reads()
        .into_iter()
        .map(|(cloud, error)| (cloud, error.is_none()))
        .collect();
    metrics.record_health(
        &setup.reconciler.health(),
        setup.reconciler.failure_totals(),
        &clouds,
    );
    result.map_err(|e| CommandError(format!("pass failed, nothing changed: {e}")))
}

/// Runs passes every poll interval until `shutdown` completes; the pass in
/// progress finishes first. Then, with [`OnShutdown::Drain`], marks every agent
/// offline (running builds finish; no new ones start).
pub async fn daemon(
    setup: &mut Setup,
    metrics: Arc<Metrics>,
    on_shutdown: OnShutdown,
    jenkins: Arc<dyn jenkins_cloud_core::JenkinsApi>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(setup.reconciler.config().poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let _ = once(setup, &metrics).await;
    }
    if on_shutdown == OnShutdown::Drain {
        for agent in setup.reconciler.agents() {
            if let Err(e) = jenkins
                .drain_node(&agent.name, "jenkins-cloud is shutting down")
                .await
            {
                tracing::warn!(agent = %agent.name, error = %e, "drain on shutdown failed");
            }
        }
    }
    tracing::info!("stopped");
}
