//! Provisioning strategies: how many agents to start for the demand seen.
//!
//! The planner groups queued items by template and asks the strategy, per
//! template, how many agents to launch. Caps are applied by the planner
//! afterwards, so strategies only express their policy.

use std::fmt;

use tokio::time::Instant;

/// Supply and demand of one template at one reconcile pass, in executors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolView {
    /// Queued items attributed to this template.
    pub queued: u32,
    /// Executors on connected agents with no build.
    pub idle_executors: u32,
    /// Executors running builds.
    pub busy_executors: u32,
    /// Executors of agents whose cloud resource runs but which have not connected.
    pub starting_executors: u32,
    /// Executors of agents requested or launching (cloud resource not running yet).
    pub launching_executors: u32,
    /// Executors each new agent brings (≥ 1).
    pub executors_per_agent: u32,
}

impl PoolView {
    /// Executors online now (idle + busy).
    pub fn online_executors(&self) -> u32 {
        self.idle_executors.saturating_add(self.busy_executors)
    }

    /// Executors that will be able to take a queued item without a new launch.
    pub fn prospective_executors(&self) -> u32 {
        self.idle_executors
            .saturating_add(self.starting_executors)
            .saturating_add(self.launching_executors)
    }
}

/// Decides how many agents to launch for one template.
///
/// Called once per template per reconcile pass with the time of the pass; may
/// keep state between calls (per template name).
pub trait ProvisioningStrategy: Send + Sync + fmt::Debug {
    /// Short name for reports (`no-delay`, `jenkins-standard`…).
    fn name(&self) -> &str;

    /// Agents to launch now for `template`, before caps.
    fn agents_to_launch(&mut self, template: &str, pool: &PoolView, now: Instant) -> u32;
}

/// Launch at once for every queued item not covered by idle, starting or
/// launching capacity: `ceil((queued − prospective) / executors_per_agent)`.
///
/// Every agent counts exactly once, in exactly one of the pool's buckets, so a
/// build never gets two agents (the amazon-ecs plugin's #311).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelay;

impl ProvisioningStrategy for NoDelay {
    fn name(&self) -> &str {
        "no-delay"
    }

    fn agents_to_launch(&mut self, _template: &str, pool: &PoolView, _now: Instant) -> u32 {
        let excess = pool.queued.saturating_sub(pool.prospective_executors());
        excess.div_ceil(pool.executors_per_agent.max(1))
    }
}

pub use crate::jenkins_standard::JenkinsStandard;

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(queued: u32, idle: u32, starting: u32, launching: u32, per: u32) -> PoolView {
        PoolView {
            queued,
            idle_executors: idle,
            busy_executors: 0,
            starting_executors: starting,
            launching_executors: launching,
            executors_per_agent: per,
        }
    }

    #[test]
    fn no_delay_counts_every_kind_of_capacity_once() {
        let now = Instant::now();
        let mut s = NoDelay;
        assert_eq!(s.agents_to_launch("t", &pool(50, 0, 0, 0, 1), now), 50);
        assert_eq!(s.agents_to_launch("t", &pool(50, 10, 5, 5, 1), now), 30);
        assert_eq!(s.agents_to_launch("t", &pool(5, 10, 0, 0, 1), now), 0);
        assert_eq!(s.agents_to_launch("t", &pool(7, 0, 0, 0, 2), now), 4);
        assert_eq!(
            s.agents_to_launch("t", &pool(1, 0, 0, 0, 0), now),
            1,
            "0 executors treated as 1"
        );
    }
}
