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
    /// Most agents launched in one pass, across templates; the rest wait for
    /// the next pass (a runaway job or a Jenkins bug cannot spend money all at
    /// once). `None`: no bound.
    pub launches_per_pass: Option<u32>,
}

/// Most queue items one pass considers (the oldest first); the rest wait for
/// a later pass. Bounds the work of a pass whatever Jenkins sends.
pub const MAX_QUEUE_ITEMS_PER_PASS: usize = 10_000;

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
    /// Queue items handed on to a later template because their first choice
    /// could not take them now.
    pub spilled: Vec<Spilled>,
    /// Queue items beyond [`MAX_QUEUE_ITEMS_PER_PASS`] left for a later pass.
    pub deferred_items: usize,
    /// What to do, in order.
    pub actions: Vec<Action>,
}

/// A queue item that went to the next template able to take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spilled {
    /// Queue item id.
    pub item: u64,
    /// The template that could not take it now.
    pub from: String,
    /// The template it went to.
    pub to: String,
    /// Why `from` could not take it (cap, backoff, unreadable cloud).
    pub reason: String,
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
    /// Templates in a launch-failure episode: not allowed to launch until the
    /// given time, then one probe agent at a time until an agent connects.
    pub blocked_until: &'a BTreeMap<String, Instant>,
    /// Templates whose backend could not be read this pass, with why: no
    /// launch, and their agents are left exactly as they are.
    pub frozen: &'a BTreeMap<String, String>,
    /// Time of the pass.
    pub now: Instant,
    /// Wall-clock time of the pass, seconds since the Unix epoch (for warm windows).
    pub wall_secs: u64,
    /// How long to wait before re-sending a termination that has not taken effect.
    pub terminate_retry: Duration,
}

/// Decides the actions of one pass. Pure but for the strategy's own state.
///
/// Each queue item goes to the first template (in configuration order) that can
/// take it. When that template cannot take it now (its cap, a label cap, the
/// global cap, launch backoff, or a backend that could not be read), the item
/// spills to the next template that can take it, unless the template keeps its
/// builds for itself ([`AgentTemplate::spill`] is false).
pub fn plan(input: &PlanInput<'_>, strategy: &mut dyn ProvisioningStrategy) -> Plan {
    let mut out = Plan::default();
    let templates: BTreeMap<&str, &AgentTemplate> = input
        .templates
        .iter()
        .map(|t| (t.name.as_str(), t.as_ref()))
        .collect();
    let mut routing = attribute_demand(input.templates, input.demand);
    out.unmatched = std::mem::take(&mut routing.unmatched);
    out.deferred_items = routing.deferred;
    let mut launched_this_pass: u32 = 0;

    let retiring = plan_retirement(input, &templates, &routing.takers, &mut out.actions);

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

    for (index, template) in input.templates.iter().enumerate() {
        let mut queued = std::mem::take(&mut routing.by_template[index]);
        queued.sort_unstable();
        let items: Vec<u64> = queued.iter().map(|&k| routing.items[k].0).collect();
        let group = by_agent_template
            .get(template.name.as_str())
            .unwrap_or(&no_agents);
        let view = pool_view(template, group, &retiring, items.len() as u32);
        let per = view.executors_per_agent;
        let covered = (view.prospective_executors() as usize).min(items.len());
        let mut wanted = strategy.agents_to_launch(&template.name, &view, input.now);
        let warm = template.retention.min_idle_at(input.wall_secs);
        // Warm agents come on top of the demand; without any, the strategy alone decides.
        if warm > 0 {
            let warm_need = view
                .queued
                .saturating_add(warm.saturating_mul(per))
                .saturating_sub(view.prospective_executors());
            wanted = wanted.max(warm_need.div_ceil(per));
        }
        let (mut allowed, held) = if wanted == 0 {
            (0, None)
        } else {
            let limits = Limits {
                template,
                group,
                alive_total,
                alive_per_label: &alive_per_label,
            };
            limits.allowed(input, wanted, &view, &mut out.held_back)
        };
        // The per-pass bound defers launches; spilling would not help.
        if let Some(bound) = input.caps.launches_per_pass {
            let room = bound.saturating_sub(launched_this_pass);
            if room < allowed {
                allowed = room;
                out.held_back.push((
                    template.name.clone(),
                    format!("at most {bound} launches per pass; the rest at the next pass"),
                ));
            }
        }
        launched_this_pass = launched_this_pass.saturating_add(allowed);
        if allowed > 0 {
            alive_total = alive_total.saturating_add(allowed);
            for (i, (expr, _)) in input.caps.per_label.iter().enumerate() {
                if expr.matches(&template.labels) {
                    alive_per_label[i] = alive_per_label[i].saturating_add(allowed);
                }
            }
        }
        let served = covered.saturating_add((allowed as usize).saturating_mul(per as usize));
        let mut kept = items.len();
        if let (Some(reason), true) = (&held, template.spill) {
            kept = served.min(items.len());
            for &k in &queued[kept..] {
                let next = routing.next_taker(k, index);
                match next {
                    Some(to) => {
                        out.spilled.push(Spilled {
                            item: routing.items[k].0,
                            from: template.name.clone(),
                            to: input.templates[to].name.clone(),
                            reason: reason.clone(),
                        });
                        routing.by_template[to].push(k);
                    }
                    // No later template can take it: it stays here.
                    None => routing.stay.push(k),
                }
            }
        }
        let mut stays: Vec<usize> = queued[..kept].to_vec();
        stays.append(&mut routing.stay);
        stays.sort_unstable();
        if !stays.is_empty() {
            out.demand.push(TemplateDemand {
                template: template.name.clone(),
                items: stays.iter().map(|&k| routing.items[k].0).collect(),
            });
        }
        if allowed == 0 {
            continue;
        }
        let serves: Vec<u64> = items[covered..]
            .iter()
            .take((allowed as usize).saturating_mul(per as usize))
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

/// What limits one template's launches in this pass.
struct Limits<'a, 'b> {
    template: &'a AgentTemplate,
    group: &'b [&'a Agent],
    alive_total: u32,
    alive_per_label: &'b [u32],
}

impl Limits<'_, '_> {
    /// How many of `wanted` agents may launch, and why fewer (the first limit
    /// that applied), pushing every limit that applied to `held_back`.
    fn allowed(
        &self,
        input: &PlanInput<'_>,
        wanted: u32,
        view: &PoolView,
        held_back: &mut Vec<(String, String)>,
    ) -> (u32, Option<String>) {
        let name = &self.template.name;
        if let Some(why) = input.frozen.get(name) {
            let reason = format!("its cloud cannot be read: {why}");
            held_back.push((name.clone(), reason.clone()));
            return (0, Some(reason));
        }
        let mut allowed = wanted;
        let mut held = None;
        let mut limit = |cap: u32, alive: u32, what: String| {
            let room = cap.saturating_sub(alive);
            if room < allowed {
                allowed = room;
                held_back.push((name.clone(), what.clone()));
                held.get_or_insert(what);
            }
        };
        if let Some(until) = input.blocked_until.get(name) {
            if *until > input.now {
                limit(0, 0, "backing off after launch failures".into());
            } else {
                // The backoff ran out but no agent has connected since the
                // failures: one probe agent at a time.
                let per = view.executors_per_agent.max(1);
                let in_flight = (view.launching_executors + view.starting_executors).div_ceil(per);
                limit(
                    1,
                    in_flight,
                    "one probe agent at a time after launch failures".into(),
                );
            }
        }
        let alive_here = self
            .group
            .iter()
            .filter(|a| a.state.counts_against_cap())
            .count() as u32;
        if let Some(cap) = self.template.instance_cap {
            limit(cap, alive_here, format!("instance cap {cap} reached"));
        }
        if let Some(cap) = input.caps.global {
            limit(cap, self.alive_total, format!("global cap {cap} reached"));
        }
        for (i, (expr, cap)) in input.caps.per_label.iter().enumerate() {
            if expr.matches(&self.template.labels) {
                limit(
                    *cap,
                    self.alive_per_label[i],
                    format!("cap {cap} for `{expr}` reached"),
                );
            }
        }
        (allowed, held)
    }
}

/// Queue items and where they may go.
struct Routing {
    /// Every item (id, and the templates that can take it, in order), oldest first.
    items: Vec<(u64, Vec<usize>)>,
    /// Per template (by index), the items attributed to it (indexes into `items`).
    by_template: Vec<Vec<usize>>,
    /// Scratch: spilled items no later template can take.
    stay: Vec<usize>,
    /// Per template name, whether any queued item could run on its agents.
    takers: HashSet<String>,
    /// Items no template can take.
    unmatched: Vec<u64>,
    /// Items beyond [`MAX_QUEUE_ITEMS_PER_PASS`].
    deferred: usize,
}

impl Routing {
    /// The next template after `from` that can take item `k`.
    fn next_taker(&self, k: usize, from: usize) -> Option<usize> {
        self.items[k].1.iter().copied().find(|&t| t > from)
    }
}

/// Attributes queue items to the first template (in order) that can take
/// them, and notes every other template that could. Duplicate queue ids count
/// once. Label matching runs once per distinct requirement, not once per item.
fn attribute_demand(templates: &[Arc<AgentTemplate>], demand: &Demand) -> Routing {
    let mut queue: Vec<_> = demand.items.iter().collect();
    queue.sort_by_key(|i| (i.in_queue_since_ms, i.id));
    let mut seen = HashSet::new();
    queue.retain(|i| seen.insert(i.id));
    let deferred = queue.len().saturating_sub(MAX_QUEUE_ITEMS_PER_PASS);
    queue.truncate(MAX_QUEUE_ITEMS_PER_PASS);
    let mut routing = Routing {
        items: Vec::with_capacity(queue.len()),
        by_template: vec![Vec::new(); templates.len()],
        stay: Vec::new(),
        takers: HashSet::new(),
        unmatched: Vec::new(),
        deferred,
    };
    let mut takers_of: HashMap<&Requirement, Vec<usize>> = HashMap::new();
    for item in queue {
        let takers = takers_of
            .entry(&item.requirement)
            .or_insert_with(|| {
                templates
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| match &item.requirement {
                        Requirement::AnyNode => t.can_take(None),
                        Requirement::Label(expr) => t.can_take(Some(expr)),
                        Requirement::Template(name) => &t.name == name,
                    })
                    .map(|(i, _)| i)
                    .collect()
            })
            .clone();
        match takers.first() {
            Some(&first) => {
                for &t in &takers {
                    routing.takers.insert(templates[t].name.clone());
                }
                routing.by_template[first].push(routing.items.len());
                routing.items.push((item.id, takers));
            }
            None => routing.unmatched.push(item.id),
        }
    }
    routing
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
            AgentState::Requested | AgentState::Launching => {
                view.launching_executors = view.launching_executors.saturating_add(executors)
            }
            AgentState::Starting => {
                view.starting_executors = view.starting_executors.saturating_add(executors)
            }
            AgentState::Idle | AgentState::Busy => {
                let busy = agent.busy_executors.min(executors);
                view.busy_executors = view.busy_executors.saturating_add(busy);
                view.idle_executors = view.idle_executors.saturating_add(executors - busy);
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
    takers: &HashSet<String>,
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
        if input.frozen.contains_key(&agent.template) {
            // Its backend could not be read: never act on a partial view.
            continue;
        }
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
                // Jenkins gives a queued build to any idle agent that matches.
                let has_demand = takers.contains(&agent.template);
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
            // Its resource runs and its node exists (a launch reported as
            // failed whose resource came up anyway, an agent that timed out):
            // its agent may connect and be handed a build at any moment, so
            // take the node out of service before stopping the resource.
            AgentState::Failed(_)
                if !agent.draining && !agent.cloud_gone() && agent.node_exists =>
            {
                Some(Action::Drain {
                    agent: agent.name.clone(),
                    reason: "jenkins-cloud: agent failed; taking no new builds".into(),
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
