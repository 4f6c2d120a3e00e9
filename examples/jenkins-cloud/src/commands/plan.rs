//! `plan`: observe Jenkins and the clouds, decide, and show it; change nothing.

use std::collections::BTreeMap;

use jenkins_cloud_core::jenkins::{Demand, Requirement};
use jenkins_cloud_core::reconcile::{Action, Plan, Reconciler};
use serde::Serialize;

use super::CommandError;

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
}

/// Observes and plans without acting.
pub async fn plan(reconciler: &mut Reconciler) -> Result<PlanOutput, CommandError> {
    let demand = reconciler
        .observe()
        .await
        .map_err(|e| CommandError(format!("could not observe: {e}")))?;
    let plan = reconciler.plan(&demand);
    Ok(output(&demand, &plan, reconciler))
}

fn output(demand: &Demand, plan: &Plan, reconciler: &Reconciler) -> PlanOutput {
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
