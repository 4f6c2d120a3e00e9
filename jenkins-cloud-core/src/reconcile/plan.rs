//! The plan step: a pure function from what we know to what to do.
//!
//! [`plan`] reads the agent records, the demand, the templates and the caps and
//! returns [`Action`]s; it performs no I/O and reads no clock (the time is an
//! input), so it is tested on its own. The only state it touches is the
//! strategy's (for example Jenkins' smoothed averages).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::state::Agent;
use crate::backend::CloudId;
use crate::jenkins::{Demand, Requirement};
use crate::label::LabelExpr;
use crate::lifecycle::AgentState;
use crate::retention::{AgentUsage, RetireReason};
use crate::strategy::{PoolView, ProvisioningStrategy};
use crate::template::AgentTemplate;

/// Limits on how many agents may be alive at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    /// Across all templates.
    pub global: Option<u32>,
    /// For agents whose labels match an expression (e.g. at most 20 `gpu` agents).
    pub per_label: Vec<(LabelExpr, u32)>,
}

/// Something the act step must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Launch `count` agents of `template` for the queue items in `serves`.
    Launch {
        /// Template name.
        template: String,
        /// Number of agents.
        count: u32,
        /// Queue item ids the new agents are for (may be empty for warm agents).
        serves: Vec<u64>,
    },
    /// Mark the node temporarily offline so it takes no new builds.
    Drain {
        /// Agent name.
        agent: String,
        /// Why (shown in Jenkins).
        reason: String,
    },
    /// Stop the cloud resource and delete the node.
    Terminate {
        /// Agent name.
        agent: String,
        /// The cloud resource, if there is one to stop.
        cloud_id: Option<CloudId>,
        /// Why.
        reason: String,
    },
    /// Delete a node whose cloud resource is already gone.
    DeleteNode {
        /// Agent name.
        agent: String,
        /// Why.
        reason: String,
    },
}

/// Demand attributed to one template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateDemand {
    /// Template name.
    pub template: String,
    /// Queue item ids attributed to it, oldest first.
    pub items: Vec<u64>,
}

/// What the plan step decided, with the demand it saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Demand per template.
    pub demand: Vec<TemplateDemand>,
    /// Queue items no template can take (left to other nodes).
    pub unmatched: Vec<u64>,
    /// Templates that wanted agents but are held back, with the reason.
    pub held_back: Vec<(String, String)>,
    /// What to do, in order.
    pub actions: Vec<Action>,
}

/// Everything the plan step reads.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// Templates in configuration order (earlier ones win ties).
    pub templates: &'a [Arc<AgentTemplate>],
    /// Agent records after the observation was absorbed.
    pub agents: &'a BTreeMap<String, Agent>,
    /// Queue demand.
    pub demand: &'a Demand,
    /// Caps.
    pub caps: &'a Caps,
    /// Templates not allowed to launch until the given time (error backoff).
    pub blocked_until: &'a BTreeMap<String, Instant>,
    /// Time of the pass.
    pub now: Instant,
    /// Wall-clock time of the pass, seconds since the Unix epoch (for warm windows).
    pub wall_secs: u64,
    /// How long to wait before re-sending a termination that has not taken effect.
    pub terminate_retry: Duration,
}

/// Decides the actions of one pass. Pure but for the strategy's own state.
pub fn plan(input: &PlanInput<'_>, strategy: &mut dyn ProvisioningStrategy) -> Plan {
    let mut out = Plan::default();
    let templates: BTreeMap<&str, &AgentTemplate> = input
        .templates
        .iter()
        .map(|t| (t.name.as_str(), t.as_ref()))
        .collect();
    let (by_template, unmatched) = attribute_demand(input.templates, input.demand);
    out.unmatched = unmatched;

    let retiring = plan_retirement(input, &templates, &by_template, &mut out.actions);

    // Agents grouped by template once: every per-template step reads its group.
    let mut by_agent_template: HashMap<&str, Vec<&Agent>> = HashMap::new();
    for agent in input.agents.values() {
        by_agent_template
            .entry(agent.template.as_str())
            .or_default()
            .push(agent);
    }
    let alive = |group: &[&Agent]| {
        group
            .iter()
            .filter(|a| a.state.counts_against_cap())
            .count() as u32
    };
    let mut alive_total = by_agent_template.values().map(|g| alive(g)).sum::<u32>();
    let mut alive_per_label: Vec<u32> = input
        .caps
        .per_label
        .iter()
        .map(|(expr, _)| {
            by_agent_template
                .iter()
                .filter(|(name, _)| {
                    templates
                        .get(*name)
                        .is_some_and(|t| expr.matches(&t.labels))
                })
                .map(|(_, group)| alive(group))
                .sum()
        })
        .collect();
    let no_agents = Vec::new();

    for template in input.templates {
        let items: &[u64] = by_template
            .get(template.name.as_str())
            .map_or(&[], Vec::as_slice);
        let group = by_agent_template
            .get(template.name.as_str())
            .unwrap_or(&no_agents);
        let view = pool_view(template, group, &retiring, items.len() as u32);
        let per = view.executors_per_agent;
        let mut wanted = strategy.agents_to_launch(&template.name, &view, input.now);
        let warm = template.retention.min_idle_at(input.wall_secs);
        // Warm agents come on top of the demand; without any, the strategy alone decides.
        if warm > 0 {
            let warm_need = (view.queued + warm * per).saturating_sub(view.prospective_executors());
            wanted = wanted.max(warm_need.div_ceil(per));
        }
        if !items.is_empty() {
            out.demand.push(TemplateDemand {
                template: template.name.clone(),
                items: items.to_vec(),
            });
        }
        if wanted == 0 {
            continue;
        }
        if let Some(until) = input.blocked_until.get(&template.name) {
            if *until > input.now {
                out.held_back.push((
                    template.name.clone(),
                    "backing off after launch errors".into(),
                ));
                continue;
            }
        }
        let alive_here = alive(group);
        let mut allowed = wanted;
        let mut limit = |cap: u32, alive: u32, what: String, out: &mut Plan| {
            let room = cap.saturating_sub(alive);
            if room < allowed {
                allowed = room;
                out.held_back.push((template.name.clone(), what));
            }
        };
        if let Some(cap) = template.instance_cap {
            limit(
                cap,
                alive_here,
                format!("instance cap {cap} reached"),
                &mut out,
            );
        }
        if let Some(cap) = input.caps.global {
            limit(
                cap,
                alive_total,
                format!("global cap {cap} reached"),
                &mut out,
            );
        }
        let matching_caps: Vec<usize> = input
            .caps
            .per_label
            .iter()
            .enumerate()
            .filter(|(_, (expr, _))| expr.matches(&template.labels))
            .map(|(i, _)| i)
            .collect();
        for &i in &matching_caps {
            let (expr, cap) = &input.caps.per_label[i];
            limit(
                *cap,
                alive_per_label[i],
                format!("cap {cap} for `{expr}` reached"),
                &mut out,
            );
        }
        if allowed == 0 {
            continue;
        }
        alive_total += allowed;
        for &i in &matching_caps {
            alive_per_label[i] += allowed;
        }
        let covered = (view.prospective_executors() as usize).min(items.len());
        let serves: Vec<u64> = items[covered..]
            .iter()
            .take((allowed * per) as usize)
            .copied()
            .collect();
        out.actions.push(Action::Launch {
            template: template.name.clone(),
            count: allowed,
            serves,
        });
    }
    out
}

/// Attributes queue items to the first template (in order) that can take them.
/// Label matching runs once per distinct requirement, not once per item.
fn attribute_demand<'a>(
    templates: &'a [Arc<AgentTemplate>],
    demand: &Demand,
) -> (BTreeMap<&'a str, Vec<u64>>, Vec<u64>) {
    let mut items: Vec<_> = demand.items.iter().collect();
    items.sort_by_key(|i| (i.in_queue_since_ms, i.id));
    let mut by_template: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut unmatched = Vec::new();
    let mut target_of: HashMap<&Requirement, Option<&'a str>> = HashMap::new();
    for item in items {
        let target = *target_of.entry(&item.requirement).or_insert_with(|| {
            templates
                .iter()
                .find(|t| match &item.requirement {
                    Requirement::AnyNode => t.can_take(None),
                    Requirement::Label(expr) => t.can_take(Some(expr)),
                    Requirement::Template(name) => &t.name == name,
                })
                .map(|t| t.name.as_str())
        });
        match target {
            Some(name) => by_template.entry(name).or_default().push(item.id),
            None => unmatched.push(item.id),
        }
    }
    (by_template, unmatched)
}

fn pool_view(
    template: &AgentTemplate,
    group: &[&Agent],
    retiring: &HashSet<String>,
    queued: u32,
) -> PoolView {
    let mut view = PoolView {
        queued,
        executors_per_agent: template.executors.max(1),
        ..PoolView::default()
    };
    for agent in group {
        if retiring.contains(&agent.name) {
            continue;
        }
        let executors = agent.executors.max(1);
        match agent.state {
            AgentState::Requested | AgentState::Launching => view.launching_executors += executors,
            AgentState::Starting => view.starting_executors += executors,
            AgentState::Idle | AgentState::Busy => {
                let busy = agent.busy_executors.min(executors);
                view.busy_executors += busy;
                view.idle_executors += executors - busy;
            }
            _ => {}
        }
    }
    view
}

fn usage(agent: &Agent, now: Instant) -> AgentUsage {
    AgentUsage {
        age: now.duration_since(agent.launched_at),
        idle_for: agent
            .idle_since
            .map(|t| now.duration_since(t))
            .unwrap_or_default(),
        builds_started: agent.builds_started(),
        busy: agent.busy_executors > 0,
    }
}

/// Pushes drain / terminate / delete actions; returns the agents being retired
/// (they no longer count as capacity).
fn plan_retirement(
    input: &PlanInput<'_>,
    templates: &BTreeMap<&str, &AgentTemplate>,
    demand: &BTreeMap<&str, Vec<u64>>,
    actions: &mut Vec<Action>,
) -> HashSet<String> {
    let now = input.now;
    let mut retiring = HashSet::new();
    let mut warm_left: BTreeMap<&str, u32> = templates
        .iter()
        .map(|(name, t)| (*name, t.retention.min_idle_at(input.wall_secs)))
        .collect();
    // The most recently idle agents stay warm.
    let mut idle: Vec<&Agent> = input
        .agents
        .values()
        .filter(|a| a.state == AgentState::Idle)
        .collect();
    idle.sort_by_key(|a| std::cmp::Reverse(a.idle_since));
    let mut keep_warm = HashSet::new();
    for a in idle {
        if let Some(left) = warm_left.get_mut(a.template.as_str()) {
            if *left > 0 {
                *left -= 1;
                keep_warm.insert(a.name.as_str());
            }
        }
    }

    for agent in input.agents.values() {
        let Some(template) = templates.get(agent.template.as_str()) else {
            // Its template was removed from the configuration: drain, then retire.
            let reason = "template no longer configured";
            let action = match agent.state {
                AgentState::Idle | AgentState::Busy => Some(Action::Drain {
                    agent: agent.name.clone(),
                    reason: format!("jenkins-cloud: {reason}"),
                }),
                AgentState::Draining if agent.busy_executors > 0 => None,
                AgentState::Requested | AgentState::Terminating | AgentState::Terminated => None,
                _ => Some(terminate(agent, reason.into())),
            };
            retiring.insert(agent.name.clone());
            actions.extend(action);
            continue;
        };
        let terminate_now = |reason: String| Some(terminate(agent, reason));
        let action = match &agent.state {
            AgentState::Requested | AgentState::Terminated => None,
            AgentState::Launching
                if now.duration_since(agent.launched_at) >= template.launch_timeout =>
            {
                terminate_now(format!(
                    "launch timed out after {}s",
                    template.launch_timeout.as_secs()
                ))
            }
            AgentState::Launching => None,
            AgentState::Starting
                if now.duration_since(agent.state_since) >= template.connect_timeout =>
            {
                terminate_now(format!(
                    "agent did not connect within {}s of starting",
                    template.connect_timeout.as_secs()
                ))
            }
            AgentState::Starting => None,
            AgentState::Idle | AgentState::Busy => {
                let u = usage(agent, now);
                let has_demand = demand
                    .get(agent.template.as_str())
                    .is_some_and(|d| !d.is_empty());
                let reason = template.retention.stop_accepting(&u).or_else(|| {
                    if has_demand {
                        None
                    } else {
                        template
                            .retention
                            .retire_idle(&u, keep_warm.contains(agent.name.as_str()))
                    }
                });
                reason.map(|r: RetireReason| Action::Drain {
                    agent: agent.name.clone(),
                    reason: r.describe().to_owned(),
                })
            }
            AgentState::Draining if agent.busy_executors == 0 => {
                terminate_now("drained and idle".into())
            }
            AgentState::Draining => None,
            // A launch reported as failed (its answer lost, then retries
            // refused) whose resource runs anyway and already took a build: let
            // the build finish, take no new one, then terminate.
            AgentState::Failed(_) if agent.busy_executors > 0 && !agent.cloud_gone() => {
                (!agent.draining).then(|| Action::Drain {
                    agent: agent.name.clone(),
                    reason: "jenkins-cloud: agent failed; finishing its build".into(),
                })
            }
            AgentState::Failed(reason) => terminate_now(format!("failed: {reason}")),
            AgentState::Terminating => {
                let stuck = now.duration_since(agent.state_since) >= input.terminate_retry;
                let remains = !agent.cloud_gone() || agent.node_exists;
                (stuck && remains).then(|| terminate(agent, "retrying termination".into()))
            }
        };
        if let Some(action) = action {
            retiring.insert(agent.name.clone());
            actions.push(action);
        }
    }
    retiring
}

fn terminate(agent: &Agent, reason: String) -> Action {
    if agent.cloud_gone() {
        Action::DeleteNode {
            agent: agent.name.clone(),
            reason,
        }
    } else {
        Action::Terminate {
            agent: agent.name.clone(),
            cloud_id: agent.cloud_id.clone(),
            reason,
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
