//! The behaviours of the conformance suite and their helpers.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Checked, ConformanceFailure, ConformanceHarness, Verdict};
use crate::backend::{
    AgentLaunch, Backend, CloudId, CloudInstance, CloudState, LaunchBatch, LaunchOutcome, OwnerId,
};
use crate::error::ErrorClass;
use crate::secret::Secret;
use crate::template::AgentTemplate;

pub(super) type Step<T> = Result<T, ConformanceFailure>;

pub(super) fn fail<T>(behaviour: &'static str, message: impl Into<String>) -> Step<T> {
    Err(ConformanceFailure {
        behaviour,
        message: message.into(),
    })
}

pub(super) fn ensure(
    behaviour: &'static str,
    cond: bool,
    message: impl FnOnce() -> String,
) -> Step<()> {
    if cond {
        Ok(())
    } else {
        fail(behaviour, message())
    }
}

pub(super) fn owner(behaviour: &'static str, suffix: &str) -> OwnerId {
    let short: String = behaviour.chars().filter(|c| *c != '_').take(20).collect();
    OwnerId::new(format!("conf-{short}-{suffix}")).expect("conformance owner ids are valid")
}

static NONCE: AtomicU64 = AtomicU64::new(1);

/// `n` agents with fresh names, secrets and client tokens.
pub(super) fn agents(n: usize) -> Vec<AgentLaunch> {
    (0..n)
        .map(|_| {
            let k = NONCE.fetch_add(1, Ordering::Relaxed);
            let pid = std::process::id();
            AgentLaunch {
                agent_name: format!("conf-agent-{pid}-{k}"),
                secret: Secret::new(format!("{k:064x}")),
                client_token: format!("conf-{pid}-{k}"),
            }
        })
        .collect()
}

async fn launch(
    h: &dyn ConformanceHarness,
    b: &dyn Backend,
    template: &AgentTemplate,
    agents: &[AgentLaunch],
) -> Vec<LaunchOutcome> {
    let jenkins = h.jenkins();
    b.launch(LaunchBatch {
        template,
        jenkins: &jenkins,
        agents,
    })
    .await
}

/// Launches `agents` and requires one `Ok` outcome per agent, in order.
pub(super) async fn launch_ok(
    beh: &'static str,
    h: &dyn ConformanceHarness,
    b: &dyn Backend,
    agents: &[AgentLaunch],
) -> Step<Vec<CloudId>> {
    let outcomes = launch(h, b, &h.template(), agents).await;
    check_names(beh, agents, &outcomes)?;
    outcomes
        .into_iter()
        .map(|o| match o.result {
            Ok(id) => Ok(id),
            Err(e) => fail(beh, format!("launching `{}` failed: {e}", o.agent_name)),
        })
        .collect()
}

fn check_names(beh: &'static str, agents: &[AgentLaunch], outcomes: &[LaunchOutcome]) -> Step<()> {
    ensure(beh, outcomes.len() == agents.len(), || {
        format!(
            "{} agents launched but {} outcomes returned",
            agents.len(),
            outcomes.len()
        )
    })?;
    for (i, (a, o)) in agents.iter().zip(outcomes).enumerate() {
        ensure(beh, a.agent_name == o.agent_name, || {
            format!(
                "outcome {i} is for `{}`, expected `{}` (order lost)",
                o.agent_name, a.agent_name
            )
        })?;
    }
    Ok(())
}

pub(super) async fn describe_one(
    beh: &'static str,
    b: &dyn Backend,
    id: &CloudId,
) -> Step<Option<CloudInstance>> {
    let found = match b.describe(std::slice::from_ref(id)).await {
        Ok(found) => found,
        Err(e) => return fail(beh, format!("describe failed: {e}")),
    };
    ensure(beh, found.len() <= 1, || {
        format!("describe of one id returned {} instances", found.len())
    })?;
    if let Some(i) = found.first() {
        ensure(beh, &i.id == id, || {
            format!("describe of `{id}` returned `{}`", i.id)
        })?;
    }
    Ok(found.into_iter().next())
}

pub(super) async fn expect_state(
    beh: &'static str,
    b: &dyn Backend,
    id: &CloudId,
    ok: impl Fn(Option<&CloudState>) -> bool,
    what: &str,
) -> Step<()> {
    let state = describe_one(beh, b, id).await?.map(|i| i.state);
    ensure(beh, ok(state.as_ref()), || {
        format!("`{id}` should be {what}, is {state:?}")
    })
}

pub(super) async fn listed(beh: &'static str, b: &dyn Backend) -> Step<Vec<CloudInstance>> {
    b.list_owned()
        .await
        .or_else(|e| fail(beh, format!("list_owned failed: {e}")))
}

async fn listed_ids(beh: &'static str, b: &dyn Backend) -> Step<BTreeSet<CloudId>> {
    Ok(listed(beh, b).await?.into_iter().map(|i| i.id).collect())
}

pub(super) async fn terminate_ok(beh: &'static str, b: &dyn Backend, ids: &[CloudId]) -> Step<()> {
    let outcomes = b.terminate(ids, "conformance test").await;
    ensure(beh, outcomes.len() == ids.len(), || {
        format!(
            "terminate of {} ids returned {} outcomes",
            ids.len(),
            outcomes.len()
        )
    })?;
    for (id, o) in ids.iter().zip(&outcomes) {
        ensure(beh, &o.id == id, || {
            format!("terminate outcome for `{}` where `{id}` was expected", o.id)
        })?;
        if let Err(e) = &o.result {
            return fail(beh, format!("terminate of own `{id}` failed: {e}"));
        }
    }
    Ok(())
}

pub(super) fn is_running(s: Option<&CloudState>) -> bool {
    s == Some(&CloudState::Running)
}

pub(super) fn is_stopping_or_gone(s: Option<&CloudState>) -> bool {
    matches!(
        s,
        None | Some(CloudState::Stopping | CloudState::Terminated)
    )
}

pub(super) fn is_terminated_or_forgotten(s: Option<&CloudState>) -> bool {
    matches!(s, None | Some(CloudState::Terminated))
}

/// Right after a terminate: [`is_stopping_or_gone`], or already `Stopped` in
/// the warm pool of a harness with [`ConformanceHarness::warm_pool`].
fn retiring(h: &dyn ConformanceHarness) -> impl Fn(Option<&CloudState>) -> bool {
    let pool = h.warm_pool();
    move |s| is_stopping_or_gone(s) || (pool && s == Some(&CloudState::Stopped))
}

/// Once settled after a terminate: [`is_terminated_or_forgotten`], or kept
/// `Stopped` in the warm pool of a harness with [`ConformanceHarness::warm_pool`].
fn retired(h: &dyn ConformanceHarness) -> impl Fn(Option<&CloudState>) -> bool {
    let pool = h.warm_pool();
    move |s| is_terminated_or_forgotten(s) || (pool && s == Some(&CloudState::Stopped))
}

// ---- behaviours -------------------------------------------------------------

/// A valid template validates; one agent launches, runs after settling, and
/// terminates: stopping (or gone) at once, terminated (or forgotten) after
/// settling; with a warm-pool harness it may be kept `Stopped` instead.
pub async fn launch_then_terminate(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "launch_then_terminate";
    let b = h.backend(owner(B, "a")).await;
    if let Err(problems) = b.validate_template(&h.template()) {
        return fail(B, format!("the harness template is rejected: {problems:?}"));
    }
    let id = launch_ok(B, h, b.as_ref(), &agents(1)).await?.remove(0);
    h.settle().await;
    expect_state(B, b.as_ref(), &id, is_running, "running after settling").await?;
    terminate_ok(B, b.as_ref(), std::slice::from_ref(&id)).await?;
    expect_state(
        B,
        b.as_ref(),
        &id,
        retiring(h),
        "stopping or gone after terminate",
    )
    .await?;
    h.settle().await;
    expect_state(B, b.as_ref(), &id, retired(h), "terminated after settling").await?;
    Ok(Checked::Passed)
}

/// Terminating twice, in two calls or twice in one batch, is `Ok` every time,
/// one outcome per id in order; so is terminating once it is gone.
pub async fn terminate_is_idempotent(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "terminate_is_idempotent";
    let b = h.backend(owner(B, "a")).await;
    let ids = launch_ok(B, h, b.as_ref(), &agents(2)).await?;
    h.settle().await;
    terminate_ok(B, b.as_ref(), &ids[..1]).await?;
    terminate_ok(B, b.as_ref(), &ids[..1]).await?;
    terminate_ok(
        B,
        b.as_ref(),
        &[ids[1].clone(), ids[0].clone(), ids[1].clone()],
    )
    .await?;
    h.settle().await;
    terminate_ok(B, b.as_ref(), &ids).await?;
    for id in &ids {
        expect_state(B, b.as_ref(), id, retired(h), "terminated").await?;
    }
    Ok(Checked::Passed)
}

/// Terminating a well-formed id that names nothing returns one outcome for it:
/// `Ok` (already gone) or `Permanent`, never a retryable error.
pub async fn terminate_unknown_id(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "terminate_unknown_id";
    let b = h.backend(owner(B, "a")).await;
    let unknown = h.unknown_id();
    let outcomes = b
        .terminate(std::slice::from_ref(&unknown), "conformance test")
        .await;
    ensure(B, outcomes.len() == 1, || {
        format!("{} outcomes for one id", outcomes.len())
    })?;
    ensure(B, outcomes[0].id == unknown, || {
        format!("outcome for `{}`", outcomes[0].id)
    })?;
    if let Err(e) = &outcomes[0].result {
        ensure(B, e.class() == ErrorClass::Permanent, || {
            format!("unknown id gave a retryable error: {e}")
        })?;
    }
    let described = b.describe(std::slice::from_ref(&unknown)).await;
    ensure(B, matches!(&described, Ok(v) if v.is_empty()), || {
        format!("describe of an unknown id should return nothing, got {described:?}")
    })?;
    Ok(Checked::Passed)
}

/// Describe follows the life of a resource: pending or running right after
/// launch, running after settling, stopping or terminated after terminate,
/// terminated (or forgotten, or `Stopped` in a warm pool) after settling;
/// unknown ids are left out.
pub async fn describe_reports_transitions(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "describe_reports_transitions";
    let b = h.backend(owner(B, "a")).await;
    let id = launch_ok(B, h, b.as_ref(), &agents(1)).await?.remove(0);
    let early =
        |s: Option<&CloudState>| matches!(s, Some(CloudState::Pending | CloudState::Running));
    expect_state(
        B,
        b.as_ref(),
        &id,
        early,
        "pending or running right after launch",
    )
    .await?;
    h.settle().await;
    expect_state(B, b.as_ref(), &id, is_running, "running after settling").await?;
    let both = b.describe(&[h.unknown_id(), id.clone()]).await;
    ensure(
        B,
        matches!(&both, Ok(v) if v.len() == 1 && v[0].id == id),
        || format!("describe of [unknown, own] should return only the own one, got {both:?}"),
    )?;
    terminate_ok(B, b.as_ref(), std::slice::from_ref(&id)).await?;
    expect_state(B, b.as_ref(), &id, retiring(h), "stopping after terminate").await?;
    h.settle().await;
    expect_state(B, b.as_ref(), &id, retired(h), "terminated after settling").await?;
    Ok(Checked::Passed)
}

/// Two owners in one cloud: each lists and describes only its own resources.
pub async fn list_owned_sees_only_its_own(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "list_owned_sees_only_its_own";
    let a = h.backend(owner(B, "a")).await;
    let b = h.backend(owner(B, "b")).await;
    let id_a = launch_ok(B, h, a.as_ref(), &agents(1)).await?.remove(0);
    let id_b = launch_ok(B, h, b.as_ref(), &agents(1)).await?.remove(0);
    h.settle().await;
    let (seen_a, seen_b) = (
        listed_ids(B, a.as_ref()).await?,
        listed_ids(B, b.as_ref()).await?,
    );
    ensure(B, seen_a.contains(&id_a), || {
        format!("owner a does not list its own `{id_a}`")
    })?;
    ensure(B, !seen_a.contains(&id_b), || {
        format!("owner a lists owner b's `{id_b}`")
    })?;
    ensure(B, seen_b.contains(&id_b), || {
        format!("owner b does not list its own `{id_b}`")
    })?;
    ensure(B, !seen_b.contains(&id_a), || {
        format!("owner b lists owner a's `{id_a}`")
    })?;
    ensure(
        B,
        describe_one(B, a.as_ref(), &id_b).await?.is_none(),
        || format!("owner a can describe owner b's `{id_b}`"),
    )?;
    terminate_ok(B, a.as_ref(), &[id_a]).await?;
    terminate_ok(B, b.as_ref(), &[id_b]).await?;
    Ok(Checked::Passed)
}

/// Terminating another owner's resource is refused with `Permanent`, and the
/// resource keeps running.
pub async fn foreign_terminate_is_refused(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "foreign_terminate_is_refused";
    let a = h.backend(owner(B, "a")).await;
    let b = h.backend(owner(B, "b")).await;
    let id = launch_ok(B, h, a.as_ref(), &agents(1)).await?.remove(0);
    h.settle().await;
    let outcomes = b
        .terminate(std::slice::from_ref(&id), "conformance test")
        .await;
    ensure(B, outcomes.len() == 1 && outcomes[0].id == id, || {
        format!("expected one outcome for `{id}`, got {outcomes:?}")
    })?;
    match &outcomes[0].result {
        Err(e) if e.class() == ErrorClass::Permanent => {}
        other => {
            return fail(
                B,
                format!("terminating a foreign id should be Permanent, was {other:?}"),
            )
        }
    }
    h.settle().await;
    expect_state(
        B,
        a.as_ref(),
        &id,
        is_running,
        "still running after a foreign terminate",
    )
    .await?;
    terminate_ok(B, a.as_ref(), &[id]).await?;
    Ok(Checked::Passed)
}

/// A batch of `max_launch_batch + 3` agents gets one `Ok` outcome per agent, in
/// order, with distinct ids, all listed; terminating them all is one outcome each.
pub async fn large_batch_gets_one_outcome_each(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "large_batch_gets_one_outcome_each";
    let b = h.backend(owner(B, "a")).await;
    let n = b.capabilities().max_launch_batch + 3;
    let ids = launch_ok(B, h, b.as_ref(), &agents(n)).await?;
    let distinct: BTreeSet<_> = ids.iter().collect();
    ensure(B, distinct.len() == n, || {
        format!("{n} agents got only {} distinct ids", distinct.len())
    })?;
    let seen = listed_ids(B, b.as_ref()).await?;
    let missing: Vec<_> = ids.iter().filter(|id| !seen.contains(id)).collect();
    ensure(B, missing.is_empty(), || {
        format!("launched but not listed: {missing:?}")
    })?;
    terminate_ok(B, b.as_ref(), &ids).await?;
    Ok(Checked::Passed)
}

/// Each outcome's id describes the agent of that outcome (no mix-up of ids
/// between the agents of a batch).
pub async fn outcomes_match_agents(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "outcomes_match_agents";
    let b = h.backend(owner(B, "a")).await;
    let batch = agents(3);
    let ids = launch_ok(B, h, b.as_ref(), &batch).await?;
    for (agent, id) in batch.iter().zip(&ids) {
        let Some(inst) = describe_one(B, b.as_ref(), id).await? else {
            return fail(B, format!("`{id}` is not described right after launch"));
        };
        ensure(B, inst.agent_name == agent.agent_name, || {
            format!(
                "`{id}` was returned for `{}` but runs `{}`",
                agent.agent_name, inst.agent_name
            )
        })?;
    }
    terminate_ok(B, b.as_ref(), &ids).await?;
    Ok(Checked::Passed)
}

/// With one injected launch failure in a batch of three, the failure is
/// reported for its agent and the two others are launched and kept.
pub async fn partial_failure_keeps_successes(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "partial_failure_keeps_successes";
    let o = owner(B, "a");
    let b = h.backend(o.clone()).await;
    if !h.inject_launch_failures(&o, 1).await {
        return Ok(Checked::NotSupported("inject_launch_failures"));
    }
    let before = listed_ids(B, b.as_ref()).await?;
    let batch = agents(3);
    let outcomes = launch(h, b.as_ref(), &h.template(), &batch).await;
    check_names(B, &batch, &outcomes)?;
    let ok: Vec<CloudId> = outcomes
        .iter()
        .filter_map(|o| o.result.clone().ok())
        .collect();
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.agent_name.as_str())
        .collect();
    ensure(B, ok.len() == 2 && failed.len() == 1, || {
        format!("expected 2 successes and 1 failure, got {outcomes:?}")
    })?;
    let now = listed(B, b.as_ref()).await?;
    let new: Vec<&CloudInstance> = now.iter().filter(|i| !before.contains(&i.id)).collect();
    ensure(
        B,
        new.len() == 2 && ok.iter().all(|id| new.iter().any(|i| &i.id == id)),
        || format!("the 2 successes {ok:?} should be listed, new resources are {new:?}"),
    )?;
    ensure(B, new.iter().all(|i| i.agent_name != failed[0]), || {
        format!("the failed agent `{}` has a resource", failed[0])
    })?;
    terminate_ok(B, b.as_ref(), &ok).await?;
    Ok(Checked::Passed)
}

/// An invalid spec is rejected by `validate_template` (naming `spec…` fields)
/// and yields `Permanent` for every agent of a launch, creating nothing.
pub async fn invalid_template_is_permanent(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "invalid_template_is_permanent";
    let b = h.backend(owner(B, "a")).await;
    let bad = h.invalid_template();
    match b.validate_template(&bad) {
        Ok(()) => return fail(B, "validate_template accepted the invalid template"),
        Err(problems) => ensure(
            B,
            !problems.is_empty() && problems.iter().all(|p| p.contains("spec")),
            || format!("problems should each name a spec field: {problems:?}"),
        )?,
    }
    let before = listed_ids(B, b.as_ref()).await?;
    let batch = agents(3);
    let outcomes = launch(h, b.as_ref(), &bad, &batch).await;
    check_names(B, &batch, &outcomes)?;
    for o in &outcomes {
        match &o.result {
            Err(e) if e.class() == ErrorClass::Permanent => {}
            other => {
                return fail(
                    B,
                    format!("`{}` should fail Permanent, got {other:?}", o.agent_name),
                )
            }
        }
    }
    let after = listed_ids(B, b.as_ref()).await?;
    ensure(B, after == before, || {
        format!(
            "an invalid launch created resources: {:?}",
            after.difference(&before)
        )
    })?;
    Ok(Checked::Passed)
}

/// Launching the same agent with the same client token twice yields the same
/// id and a single resource.
pub async fn client_token_is_idempotent(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "client_token_is_idempotent";
    if !h.idempotent_client_tokens() {
        return Ok(Checked::NotSupported("idempotent_client_tokens"));
    }
    let b = h.backend(owner(B, "a")).await;
    let before = listed_ids(B, b.as_ref()).await?;
    let agent = agents(1);
    let first = launch_ok(B, h, b.as_ref(), &agent).await?.remove(0);
    let second = launch_ok(B, h, b.as_ref(), &agent).await?.remove(0);
    ensure(B, first == second, || {
        format!("same client token gave `{first}` then `{second}`")
    })?;
    let after = listed_ids(B, b.as_ref()).await?;
    let new: Vec<_> = after.difference(&before).collect();
    ensure(B, new == [&first], || {
        format!("expected one new resource `{first}`, got {new:?}")
    })?;
    terminate_ok(B, b.as_ref(), &[first]).await?;
    Ok(Checked::Passed)
}

/// Listed resources carry the agent name and the template name they were
/// launched with.
pub async fn instances_carry_tags(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "instances_carry_tags";
    let b = h.backend(owner(B, "a")).await;
    let batch = agents(2);
    let ids = launch_ok(B, h, b.as_ref(), &batch).await?;
    h.settle().await;
    let all = listed(B, b.as_ref()).await?;
    let template = h.template().name;
    for (agent, id) in batch.iter().zip(&ids) {
        let Some(inst) = all.iter().find(|i| &i.id == id) else {
            return fail(B, format!("`{id}` is not listed"));
        };
        ensure(
            B,
            inst.agent_name == agent.agent_name && inst.template == template,
            || {
                format!(
                    "`{id}` carries agent `{}` template `{}`, expected `{}` / `{template}`",
                    inst.agent_name, inst.template, agent.agent_name
                )
            },
        )?;
    }
    terminate_ok(B, b.as_ref(), &ids).await?;
    Ok(Checked::Passed)
}

/// A second backend for the same owner (a restarted program) lists and can
/// terminate what the first one launched.
pub async fn new_backend_sees_existing(h: &dyn ConformanceHarness) -> Verdict {
    const B: &str = "new_backend_sees_existing";
    let o = owner(B, "a");
    let first = h.backend(o.clone()).await;
    let id = launch_ok(B, h, first.as_ref(), &agents(1)).await?.remove(0);
    h.settle().await;
    let second = h.backend(o).await;
    ensure(
        B,
        listed_ids(B, second.as_ref()).await?.contains(&id),
        || format!("a new backend for the same owner does not list `{id}`"),
    )?;
    terminate_ok(B, second.as_ref(), std::slice::from_ref(&id)).await?;
    expect_state(
        B,
        first.as_ref(),
        &id,
        retiring(h),
        "stopping after the new backend terminated it",
    )
    .await?;
    Ok(Checked::Passed)
}
