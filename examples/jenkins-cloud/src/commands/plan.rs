//! `plan`: observe Jenkins and the clouds, decide, and show it; change nothing.

use std::collections::BTreeMap;

use jenkins_cloud_core::jenkins::{Demand, Requirement};
use jenkins_cloud_core::reconcile::{Action, Plan, Spilled, TemplateHealth};
use serde::Serialize;

use super::{CommandError, Setup};

/// Demand for one label (or for any node: `label` is `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelDemand {
    /// The label expression; `null` for items without a label.
    pub label: Option<String>,
    /// Number of queued items.
    pub count: usize,
    /// Their queue ids.
    pub items: Vec<u64>,
}

/// A queue item no label could be attributed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unattributed {
    /// Queue id.
    pub id: u64,
    /// Task name.
    pub task: String,
    /// Jenkins' reason.
    pub why: String,
}

/// One tracked agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRow {
    /// Agent (node) name.
    pub name: String,
    /// Template.
    pub template: String,
    /// Lifecycle state.
    pub state: String,
    /// Busy executors of all executors.
    pub busy_executors: u32,
    /// All executors.
    pub executors: u32,
    /// Cloud id, when launched.
    pub cloud_id: Option<String>,
}

/// The stable machine-readable form of a plan (`--format json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanOutput {
    /// Demand per label.
    pub demand: Vec<LabelDemand>,
    /// Queue items that could not be attributed.
    pub unattributed: Vec<Unattributed>,
    /// Queue items no template can take.
    pub unmatched: Vec<u64>,
    /// Agents per template and state.
    pub agents: Vec<AgentRow>,
    /// Every action the loop would take.
    pub actions: Vec<Action>,
    /// Templates that wanted agents but are held back: (template, why).
    pub held_back: Vec<(String, String)>,
    /// Queue items handed to a later template, and why.
    pub spilled: Vec<Spilled>,
    /// Each template's health: failures, backoff, last reason.
    pub health: Vec<TemplateHealth>,
    /// Per cloud, whether its resources could be read.
    pub clouds: Vec<CloudRow>,
}

/// Whether one cloud could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudRow {
    /// Cloud name.
    pub cloud: String,
    /// Whether its resources were listed.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// Observes and plans without acting.
pub async fn plan(setup: &mut Setup) -> Result<PlanOutput, CommandError> {
    let demand = setup
        .reconciler
        .observe()
        .await
        .map_err(|e| CommandError(format!("could not observe: {e}")))?;
    let plan = setup.reconciler.plan(&demand);
    Ok(output(&demand, &plan, setup))
}

fn output(demand: &Demand, plan: &Plan, setup: &Setup) -> PlanOutput {
    let reconciler = &setup.reconciler;
    let mut by_label: BTreeMap<Option<String>, Vec<u64>> = BTreeMap::new();
    for item in &demand.items {
        let label = match &item.requirement {
            Requirement::AnyNode => None,
            Requirement::Label(l) => Some(l.to_string()),
            Requirement::Template(t) => Some(format!("template:{t}")),
        };
        by_label.entry(label).or_default().push(item.id);
    }
    PlanOutput {
        demand: by_label
            .into_iter()
            .map(|(label, items)| LabelDemand {
                label,
                count: items.len(),
                items,
            })
            .collect(),
        unattributed: demand
            .unattributed
            .iter()
            .map(|u| Unattributed {
                id: u.id,
                task: u.task.clone(),
                why: u.why.clone(),
            })
            .collect(),
        unmatched: plan.unmatched.clone(),
        agents: reconciler
            .agents()
            .map(|a| AgentRow {
                name: a.name.clone(),
                template: a.template.clone(),
                state: format!("{:?}", a.state).to_lowercase(),
                busy_executors: a.busy_executors,
                executors: a.executors,
                cloud_id: a.cloud_id.as_ref().map(|c| c.0.clone()),
            })
            .collect(),
        actions: plan.actions.clone(),
        held_back: plan.held_back.clone(),
        spilled: plan.spilled.clone(),
        health: reconciler.health(),
        clouds: setup
            .cloud_reads()
            .into_iter()
            .map(|(cloud, error)| CloudRow {
                cloud,
                ok: error.is_none(),
                error,
            })
            .collect(),
    }
}

/// The human-readable form.
pub fn render_text(p: &PlanOutput) -> String {
    let mut out = String::from("Demand:\n");
    if p.demand.is_empty() {
        out.push_str("  (queue empty)\n");
    }
    for d in &p.demand {
        let label = d.label.as_deref().unwrap_or("(any node)");
        out.push_str(&format!("  {label}: {} item(s) {:?}\n", d.count, d.items));
    }
    for u in &p.unattributed {
        out.push_str(&format!(
            "  not attributed: #{} {} ({})\n",
            u.id, u.task, u.why
        ));
    }
    if !p.unmatched.is_empty() {
        out.push_str(&format!("  no template can take: {:?}\n", p.unmatched));
    }
    out.push_str("Agents:\n");
    if p.agents.is_empty() {
        out.push_str("  (none)\n");
    }
    for a in &p.agents {
        out.push_str(&format!(
            "  {} [{}] {} {}/{} busy\n",
            a.name, a.template, a.state, a.busy_executors, a.executors
        ));
    }
    for c in p.clouds.iter().filter(|c| !c.ok) {
        out.push_str(&format!(
            "Cloud `{}` cannot be read (its templates are frozen): {}\n",
            c.cloud,
            c.error.as_deref().unwrap_or("")
        ));
    }
    let failing: Vec<&TemplateHealth> = p.health.iter().filter(|h| !h.healthy).collect();
    if !failing.is_empty() {
        out.push_str("Failing templates:\n");
    }
    for h in failing {
        if let Some(why) = &h.cloud_unreadable {
            out.push_str(&format!("  {}: cloud cannot be read: {why}\n", h.template));
            continue;
        }
        let wait = match h.backoff_remaining_s {
            Some(0) | None => "probing with one agent".to_owned(),
            Some(s) => format!("backing off {s}s more"),
        };
        out.push_str(&format!(
            "  {}: {} failed launch(es), {}; {wait}; last: {}\n",
            h.template,
            h.failures,
            h.class.map_or("unknown".into(), |c| c.to_string()),
            h.reason.as_deref().unwrap_or("")
        ));
    }
    if !p.held_back.is_empty() {
        out.push_str("Held back:\n");
    }
    for (t, why) in &p.held_back {
        out.push_str(&format!("  {t}: {why}\n"));
    }
    for s in &p.spilled {
        out.push_str(&format!(
            "  queue item {} spilled from {} to {}: {}\n",
            s.item, s.from, s.to, s.reason
        ));
    }
    out.push_str("Actions:\n");
    if p.actions.is_empty() {
        out.push_str("  (nothing to do)\n");
    }
    for a in &p.actions {
        let line = match a {
            Action::Launch {
                template,
                count,
                serves,
            } => {
                format!("launch {count} x {template} for queue items {serves:?}")
            }
            Action::Drain { agent, reason } => format!("drain {agent}: {reason}"),
            Action::Terminate { agent, reason, .. } => format!("terminate {agent}: {reason}"),
            Action::DeleteNode { agent, reason } => format!("delete node {agent}: {reason}"),
        };
        out.push_str(&format!("  {line}\n"));
    }
    out
}
