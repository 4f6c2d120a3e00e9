//! The memory backend's warm pool of stopped instances, mirroring EC2's: see
//! [`WarmPool`].

use std::time::Duration;

use tokio::time::Instant;

use super::backend::Latency;
use super::cloud::CloudInner;
use crate::backend::{CloudId, CloudState, OwnerId};
use crate::secret::Secret;

/// A warm pool of stopped instances for a
/// [`MemoryBackend`](super::MemoryBackend)
/// ([`with_warm_pool`](super::MemoryBackend::with_warm_pool)), as the EC2
/// backend keeps one for templates with `warm_pool`.
///
/// * **Terminate** of a pending or running instance *stops* it instead, while
///   its owner and template have fewer than `max_stopped` pool members
///   (stopping or stopped); beyond that it terminates as usual. A pooled
///   instance is `Stopping` for the stop latency, then `Stopped`; its agent
///   name is cleared at once (EC2 clears the agent tag) and its agent session
///   ends. It is listed with an empty agent name, never forgotten, holds no
///   capacity, cannot be interrupted, and terminating it again is a no-op.
/// * **Launch** restarts the lowest-id `Stopped` instance of the same owner
///   and template, if any (not one still stopping): same [`CloudId`], the new
///   agent name, secret and client token; `Pending` for `restart_latency`
///   (drawn from the backend's seeded generator; a spec `start_latency_ms` does
///   not apply), then `Running`, and its agent connects a connect latency
///   later with the new secret, like a fresh one. Otherwise a new instance is
///   launched. Token replays, injected failures and the capacity limit apply
///   to restarts as to fresh launches.
/// * **Billing**: each life (launch or restart → stopped) counts pending,
///   running and stopping as without a pool; time spent stopped is counted
///   apart, in [`StateSeconds::stopped`](super::StateSeconds::stopped), and
///   summed over every life of the instance.
/// * **Counters**: [`BackendStats::launched`](super::BackendStats::launched)
///   counts instances created, [`restarted`](super::BackendStats::restarted)
///   launches served from the pool, [`pooled`](super::BackendStats::pooled)
///   terminations that stopped into the pool.
/// * **Unlike EC2**: any stopped member of the template is reused (EC2 also
///   requires the same launch fingerprint and terminates members launched with
///   other settings); a restart refused for capacity fails the launch (EC2
///   falls back to a fresh instance). Both bound the pool per template
///   (`max_stopped` here, `warm_pool_max` on EC2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmPool {
    /// Most pool members (stopping or stopped) per owner and template.
    pub max_stopped: usize,
    /// Restart of a stopped instance → running (EC2: about 21 s).
    pub restart_latency: Latency,
}

/// The new life a restart gives a stopped instance.
pub(super) struct Restart<'a> {
    pub(super) agent_name: &'a str,
    pub(super) secret: &'a Secret,
    pub(super) client_token: &'a str,
    pub(super) running_at: Instant,
    pub(super) connect_at: Instant,
    pub(super) stop_latency: Duration,
}

impl CloudInner {
    /// Pool members (stopping or stopped) of `owner`'s `template`.
    pub(super) fn pool_members(&self, owner: &OwnerId, template: &str) -> usize {
        self.instances
            .values()
            .filter(|i| &i.owner == owner && i.template == template)
            .filter(|i| i.pooled && i.failed.is_none() && i.stop_requested.is_some())
            .count()
    }

    /// The lowest-id stopped (not stopping) pool member of `owner`'s `template`.
    pub(super) fn stopped_member(
        &self,
        owner: &OwnerId,
        template: &str,
        now: Instant,
    ) -> Option<CloudId> {
        self.instances
            .iter()
            .find(|(_, i)| {
                &i.owner == owner && i.template == template && i.state(now) == CloudState::Stopped
            })
            .map(|(id, _)| id.clone())
    }

    /// Starts the stopped instance `id` for a new agent: closes its current
    /// life (stopped time included) into its earlier lives, starts a new one now,
    /// records the new token and starts the agent session if linked to a
    /// controller.
    pub(super) fn restart(&mut self, id: &CloudId, new: Restart<'_>, now: Instant) {
        let session = self
            .jenkins
            .as_ref()
            .map(|j| j.start_agent_session(new.agent_name, new.secret, new.connect_at));
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.earlier = inst.seconds(now);
        inst.agent_name = new.agent_name.to_owned();
        inst.client_token = new.client_token.to_owned();
        inst.secret = new.secret.clone();
        inst.launched_at = now;
        inst.running_at = new.running_at;
        inst.stop_latency = new.stop_latency;
        inst.stop_requested = None;
        inst.stop_reason = None;
        inst.pooled = false;
        inst.session = session;
        let key = (inst.owner.clone(), new.client_token.to_owned());
        // Tokens of the instance's earlier lives must not replay to its new agent.
        self.tokens.retain(|_, (token_id, _)| token_id != id);
        self.tokens
            .insert(key, (id.clone(), new.agent_name.to_owned()));
    }
}
