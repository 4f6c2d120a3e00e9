//! Invariants of the warm pool: stopped members are assigned to no agent and
//! stay within the pool's bound, and — since a restart reuses the same cloud
//! id for a new agent — no agent record of the loop ever points at an
//! instance that now serves another agent (it could stop it, killing that
//! agent's build).

use std::collections::BTreeMap;

use jenkins_cloud_core::backend::{CloudId, CloudState};
use jenkins_cloud_core::reconcile::Reconciler;

use super::world::World;

/// At every observed instant: every member (empty agent name) is stopping or
/// stopped, none exists without a pool, and each template has at most
/// `max_stopped` of them.
pub fn check_members(w: &World) -> Result<(), String> {
    let max = w.warm_pool.map_or(0, |p| p.max_stopped);
    let mut per_template: BTreeMap<String, usize> = BTreeMap::new();
    for m in w.pool_members() {
        if !matches!(m.instance.state, CloudState::Stopping | CloudState::Stopped) {
            return Err(format!(
                "instance {} has no agent name but is {:?}",
                m.instance.id, m.instance.state
            ));
        }
        *per_template.entry(m.instance.template).or_default() += 1;
    }
    if let Some((template, n)) = per_template.iter().find(|(_, n)| **n > max) {
        return Err(format!(
            "{n} warm-pool members of `{template}`, at most {max} allowed ({:?})",
            w.warm_pool
        ));
    }
    Ok(())
}

/// After every pass that ran to its end, against that program's records:
///
/// * no record whose resource it believes alive holds a cloud id now serving
///   another agent (a reused id: terminating it would stop the other agent);
///   an empty name is fine (the pass just stopped it into the pool);
/// * every pending or running instance with an agent name is known to the
///   loop (the pass observed and adopted it, or launched it).
pub fn check_records(w: &World, r: &Reconciler) -> Result<(), String> {
    let instances = w.cloud.instances();
    let serving: BTreeMap<&CloudId, &str> = instances
        .iter()
        .filter(|i| i.owner == w.owner)
        .map(|i| (&i.instance.id, i.instance.agent_name.as_str()))
        .collect();
    for a in r.agents() {
        let Some(id) = a.cloud_id.as_ref().filter(|_| !a.cloud_gone()) else {
            continue;
        };
        if let Some(other) = serving
            .get(id)
            .filter(|name| !name.is_empty() && **name != a.name)
        {
            return Err(format!(
                "agent `{}` ({:?}, cloud {:?}) holds {id}, which now serves `{other}`",
                a.name, a.state, a.cloud_state
            ));
        }
    }
    for i in &instances {
        let live = matches!(i.instance.state, CloudState::Pending | CloudState::Running);
        let name = &i.instance.agent_name;
        if i.owner == w.owner && live && !r.agents().any(|a| &a.name == name) {
            return Err(format!(
                "instance {} ({:?}) runs for `{name}`, unknown to the loop after a full pass",
                i.instance.id, i.instance.state
            ));
        }
    }
    Ok(())
}
