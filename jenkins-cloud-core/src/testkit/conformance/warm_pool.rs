//! The behaviour of backends that keep retired resources in a warm pool
//! (`Capabilities::stop_resume`).

use super::behaviours::{
    agents, describe_one, ensure, expect_state, fail, is_running, launch_ok, listed, owner,
    terminate_ok,
};
use super::{Checked, ConformanceHarness, Verdict};
use crate::backend::CloudState;

/// A warm-pool harness ([`ConformanceHarness::warm_pool`]; the backend reports
/// `stop_resume`): a retired resource settles `Stopped` with an empty agent
/// name (listed, but no agent's) or goes away; the next launch gets a running
/// resource that carries the new agent's name, whether it is a pool member
/// restarted (same id) or a fresh one. Other harnesses: not supported.
pub async fn warm_pool_members_are_no_agents(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "warm_pool_members_are_no_agents";
    if !h.warm_pool() {
        return Ok(Checked::NotSupported("a warm-pool harness"));
    }
    let b = h.backend(owner(B, "a")).await;
    ensure(B, b.capabilities().stop_resume, || {
        "the harness keeps a warm pool but the backend does not report stop_resume".into()
    })?;
    let first = launch_ok(B, h, b.as_ref(), &agents(1)).await?.remove(0);
    h.settle().await;
    terminate_ok(B, b.as_ref(), std::slice::from_ref(&first)).await?;
    h.settle().await;
    if let Some(pooled) = describe_one(B, b.as_ref(), &first).await? {
        match pooled.state {
            CloudState::Stopped => {
                ensure(B, pooled.agent_name.is_empty(), || {
                    format!(
                        "`{first}` is stopped in the pool but still carries agent `{}`",
                        pooled.agent_name
                    )
                })?;
                let listed = listed(B, b.as_ref()).await?;
                ensure(
                    B,
                    listed
                        .iter()
                        .any(|i| i.id == first && i.agent_name.is_empty()),
                    || format!("pool member `{first}` is not listed (with no agent): {listed:?}"),
                )?;
            }
            CloudState::Terminated => {}
            other => return fail(B, format!("`{first}` settled {other:?} after terminate")),
        }
    }
    let next = agents(1);
    let id = launch_ok(B, h, b.as_ref(), &next).await?.remove(0);
    h.settle().await;
    expect_state(B, b.as_ref(), &id, is_running, "running after settling").await?;
    let described = describe_one(B, b.as_ref(), &id).await?;
    ensure(
        B,
        described
            .as_ref()
            .is_some_and(|i| i.agent_name == next[0].agent_name),
        || {
            format!(
                "`{id}` should carry agent `{}`, is {described:?}",
                next[0].agent_name
            )
        },
    )?;
    terminate_ok(B, b.as_ref(), std::slice::from_ref(&id)).await?;
    Ok(Checked::Passed)
}
