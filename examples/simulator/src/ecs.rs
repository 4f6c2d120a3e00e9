//! The amazon-ecs plugin's provisioning policy, as a baseline.

use std::collections::HashMap;
use std::time::Duration;

use jenkins_cloud_core::strategy::{PoolView, ProvisioningStrategy};
use tokio::time::Instant;

/// How often Jenkins' `NodeProvisioner` asks the cloud to provision (10 s).
pub const ECS_TICK: Duration = Duration::from_secs(10);

/// The amazon-ecs plugin's policy: every [`ECS_TICK`], launch
/// `queued − idle − starting` executors' worth of agents. Tasks still being
/// launched (planned capacity) are *not* subtracted, so a build whose task takes
/// longer than a tick to start gets a second one (the plugin's issue #311). Use
/// it with one-shot templates and a 5-minute idle retention, as the plugin does.
#[derive(Debug, Default)]
pub struct AmazonEcsPlugin {
    next_tick: HashMap<String, Instant>,
}

impl AmazonEcsPlugin {
    /// A policy that has seen no template yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ProvisioningStrategy for AmazonEcsPlugin {
    fn name(&self) -> &str {
        "amazon-ecs"
    }

    fn agents_to_launch(&mut self, template: &str, pool: &PoolView, now: Instant) -> u32 {
        let next = self.next_tick.entry(template.to_owned()).or_insert(now);
        if now < *next {
            return 0;
        }
        while *next <= now {
            *next += ECS_TICK;
        }
        let excess = pool
            .queued
            .saturating_sub(pool.idle_executors + pool.starting_executors);
        excess.div_ceil(pool.executors_per_agent.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_planned_capacity_and_ticks_every_ten_seconds() {
        let t0 = Instant::now();
        let mut s = AmazonEcsPlugin::new();
        let pool = PoolView {
            queued: 2,
            launching_executors: 2,
            executors_per_agent: 1,
            ..PoolView::default()
        };
        assert_eq!(
            s.agents_to_launch("t", &pool, t0),
            2,
            "launching tasks are not subtracted"
        );
        assert_eq!(
            s.agents_to_launch("t", &pool, t0 + Duration::from_secs(5)),
            0,
            "between ticks"
        );
        assert_eq!(
            s.agents_to_launch("t", &pool, t0 + Duration::from_secs(10)),
            2,
            "again at the next tick"
        );
        let started = PoolView {
            queued: 2,
            idle_executors: 1,
            starting_executors: 1,
            executors_per_agent: 1,
            ..pool
        };
        assert_eq!(
            s.agents_to_launch("t", &started, t0 + Duration::from_secs(20)),
            0
        );
    }
}
