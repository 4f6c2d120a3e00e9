//! The warm pool: stopped instances kept per template for reuse, and its bound.
//!
//! A template's pool holds the instances tagged with our owner, the template and
//! `jenkins-cloud:retire=stop` that are `stopped` or `stopping`, minus those a
//! launch of this process has claimed. It is kept at most `warm_pool_max`
//! ([`Ec2Spec::warm_pool_bound`](crate::spec::Ec2Spec::warm_pool_bound)) at two
//! points:
//!
//! * **Retire** ([`Ec2Backend::split_warm`]): warm instances are stopped only
//!   while their template's pool has room, the others are terminated. One
//!   DescribeInstances per retire chunk counts the pools; when it fails,
//!   everything is terminated (the pool never grows blindly). Retires of this
//!   process are serialised from the count to the StopInstances, so two calls
//!   do not both take the last place from one count (the count itself can lag
//!   behind EC2 by an instance or two; the next launch trims the surplus).
//! * **Launch** ([`Ec2Backend::reuse_stopped`]): the DescribeInstances that
//!   looks for a reusable member also finds *stale* members (another launch
//!   fingerprint, or stopped by EC2 rather than by us: never reusable) and
//!   *surplus* members (more than the bound would stay once one is reused, e.g.
//!   after `warm_pool_max` was lowered). Members are ordered by launch time,
//!   then id (EC2 resets the launch time at each start, so the first is the
//!   one started longest ago): the first is reused, the next ones are the surplus.
//!   A member still tagged with its last agent (the tag clearing after its stop
//!   failed) is neither reused nor dropped until a retire clears the tag.
//!   Stale and surplus members are terminated, and
//!   their tagged secret parameters deleted, after the reused instance was
//!   started; a failure there is logged and retried at the next launch.
//! * **Start-up** ([`Ec2Backend::prune_pools`], called by the `jenkins-cloud`
//!   program before its first pass): the pools of templates that keep none —
//!   removed from the configuration, or with `warm_pool` off — are emptied,
//!   and from then on retires of those templates terminate (bound 0).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::PoisonError;

use jenkins_cloud_core::backend::{tags, BackendError, CloudId, CloudState};

use super::{owner_filter, Ec2Backend, MAX_TERMINATE_BATCH};
use crate::api::{Filter, InstanceInfo};
use crate::spec::DEFAULT_WARM_POOL_MAX;
use crate::state::map_state;
use crate::{POOL_MAX_TAG, RETIRE_TAG, SECRET_PARAMETER_TAG, SPEC_TAG};

/// The ids of `members`.
fn ids(members: &[&InstanceInfo]) -> Vec<String> {
    members.iter().map(|i| i.id.clone()).collect()
}

impl Ec2Backend {
    /// Pool members of `templates` in `states`, as DescribeInstances filters.
    fn pool_filters(&self, templates: Vec<String>, states: &[&str]) -> Vec<Filter> {
        vec![
            owner_filter(&self.owner),
            (format!("tag:{}", tags::TEMPLATE), templates),
            (format!("tag:{RETIRE_TAG}"), vec!["stop".to_owned()]),
            (
                "instance-state-name".to_owned(),
                states.iter().map(|s| (*s).to_owned()).collect(),
            ),
        ]
    }

    /// Ours and meant for the pool (the filters are not trusted alone).
    fn is_pool_instance(&self, info: &InstanceInfo) -> bool {
        info.tag(tags::OWNER) == Some(self.owner.as_str()) && info.tag(RETIRE_TAG) == Some("stop")
    }

    /// Records the bound of `template` from its current spec (0 without a pool):
    /// it wins over the bound tagged on instances when they retire.
    pub(super) fn remember_bound(&self, template: &str, bound: usize) {
        self.pool_bounds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(template.to_owned(), bound);
    }

    /// The bound of `template`'s pool for retiring `info`: the one remembered
    /// from the last launch of the template, else 0 if [`Self::prune_pools`]
    /// was told the template keeps no pool, else the one tagged on the
    /// instance, else the default.
    fn pool_bound(&self, template: &str, info: &InstanceInfo) -> usize {
        if let Some(bound) = self
            .pool_bounds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(template)
        {
            return *bound;
        }
        if self
            .pool_templates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|keep| !keep.contains(template))
        {
            return 0;
        }
        info.tag(POOL_MAX_TAG)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|b| *b >= 1)
            .unwrap_or(DEFAULT_WARM_POOL_MAX as usize)
    }

    /// Splits running warm instances being retired into those to stop (their
    /// pool has room, counting the ones stopped by this call) and those to
    /// terminate. The caller holds `pool_lock` until its StopInstances is done.
    pub(super) async fn split_warm(&self, warm: &[&InstanceInfo]) -> (Vec<String>, Vec<String>) {
        if warm.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let mut templates: Vec<String> = warm
            .iter()
            .filter_map(|i| i.tag(tags::TEMPLATE))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        templates.sort();
        templates.dedup();
        let members = if templates.is_empty() {
            Ok(Vec::new())
        } else {
            self.api
                .describe_instances(self.pool_filters(templates, &["stopped", "stopping"]))
                .await
        };
        let members = match members {
            Ok(members) => members,
            Err(e) => {
                let all = ids(warm);
                tracing::warn!(error = %e, instances = ?all,
                    "could not count the warm pool; terminating instead of stopping");
                return (Vec::new(), all);
            }
        };
        let mut size: HashMap<&str, usize> = HashMap::new();
        {
            let claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
            for m in &members {
                if self.is_pool_instance(m)
                    && matches!(m.state.as_str(), "stopped" | "stopping")
                    && !claimed.contains(&m.id)
                    && !warm.iter().any(|w| w.id == m.id)
                {
                    if let Some(t) = m.tag(tags::TEMPLATE) {
                        *size.entry(t).or_default() += 1;
                    }
                }
            }
        }
        let (mut stop, mut full) = (Vec::new(), Vec::new());
        for info in warm {
            if stop.contains(&info.id) || full.contains(&info.id) {
                continue; // the same id twice in one call
            }
            let template = info.tag(tags::TEMPLATE).unwrap_or_default();
            let bound = self.pool_bound(template, info);
            let count = size.entry(template).or_default();
            if !template.is_empty() && *count < bound {
                *count += 1;
                stop.push(info.id.clone());
            } else {
                full.push(info.id.clone());
            }
        }
        if !full.is_empty() {
            tracing::info!(instances = ?full, "warm pool full (warm_pool_max): terminating instead of stopping");
        }
        (stop, full)
    }

    /// Starts a stopped member of this owner's `template` pool with launch
    /// `fingerprint` for `agent`, after re-tagging it (the agent reads its name
    /// and parameter from the tags at boot). `None` when there is none or
    /// starting failed. Stale and surplus members seen on the way are terminated
    /// (see the [module docs](self)).
    pub(super) async fn reuse_stopped(
        &self,
        template: &str,
        bound: usize,
        fingerprint: &str,
        agent: &str,
        parameter: Option<&str>,
    ) -> Option<String> {
        if let Some(id) = self.started_for(template, agent).await {
            return Some(id);
        }
        let found = match self
            .api
            .describe_instances(self.pool_filters(vec![template.to_owned()], &["stopped"]))
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for stopped instances; launching a new one");
                return None;
            }
        };
        let (pick, stale, surplus) = {
            let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
            let (mut fresh, mut stale) = (Vec::new(), Vec::new());
            for info in found.iter().filter(|i| {
                self.is_pool_instance(i)
                    && i.state == "stopped"
                    && i.tag(tags::TEMPLATE) == Some(template)
                    && !claimed.contains(&i.id)
            }) {
                if info.tag(SPEC_TAG) != Some(fingerprint) || map_state(info) != CloudState::Stopped
                {
                    stale.push(info);
                } else if info.tag(tags::AGENT).is_none_or(str::is_empty) {
                    fresh.push(info);
                }
                // Else it still carries its last agent's tag (clearing it after the
                // stop failed, or is not visible yet): the reconcile loop may still
                // retire it under that agent, and a restart now would let that
                // retire stop the new agent. A retire clears the tag; reused after.
            }
            // Oldest first: the member started longest ago is reused, then the
            // next oldest ones go while more than `bound` would stay.
            fresh.sort_by(|a, b| (a.launch_time, &a.id).cmp(&(b.launch_time, &b.id)));
            let pick = (!fresh.is_empty()).then(|| fresh.remove(0).id.clone());
            let over = fresh.len().saturating_sub(bound);
            let surplus: Vec<&InstanceInfo> = fresh.drain(..over).collect();
            for id in stale.iter().chain(&surplus).map(|i| &i.id).chain(&pick) {
                claimed.insert(id.clone());
            }
            (pick, stale, surplus)
        };
        let started = match pick {
            Some(id) => self.start_member(id, bound, agent, parameter).await,
            None => None,
        };
        if !stale.is_empty() {
            tracing::info!(template, instances = ?ids(&stale),
                "terminating stale warm-pool instances (launched with other settings, or stopped by EC2)");
        }
        if !surplus.is_empty() {
            tracing::info!(template, instances = ?ids(&surplus),
                "terminating warm-pool instances over warm_pool_max");
        }
        let doomed: Vec<&InstanceInfo> = stale.into_iter().chain(surplus).collect();
        self.drop_members(template, &doomed).await;
        started
    }

    /// An instance of ours already pending or running for `agent`: a launch
    /// retried after its answer was lost (a warm start has no client token to
    /// make EC2 replay it). `None` when there is none or the lookup failed.
    async fn started_for(&self, template: &str, agent: &str) -> Option<String> {
        let filters = vec![
            owner_filter(&self.owner),
            (format!("tag:{}", tags::TEMPLATE), vec![template.to_owned()]),
            (format!("tag:{}", tags::AGENT), vec![agent.to_owned()]),
            (
                "instance-state-name".to_owned(),
                vec!["pending".to_owned(), "running".to_owned()],
            ),
        ];
        let found = match self.api.describe_instances(filters).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(agent, error = %e, "could not look for an instance already started for this agent");
                return None;
            }
        };
        let id = found
            .into_iter()
            .find(|i| {
                i.tag(tags::OWNER) == Some(self.owner.as_str())
                    && i.tag(tags::AGENT) == Some(agent)
                    && matches!(i.state.as_str(), "pending" | "running")
            })?
            .id;
        tracing::info!(agent, instance = %id, "an instance already runs for this agent (launch retried)");
        Some(id)
    }

    async fn start_member(
        &self,
        id: String,
        bound: usize,
        agent: &str,
        parameter: Option<&str>,
    ) -> Option<String> {
        let mut new_tags = vec![
            (tags::AGENT.to_owned(), agent.to_owned()),
            ("Name".to_owned(), agent.to_owned()),
            (POOL_MAX_TAG.to_owned(), bound.to_string()),
        ];
        if let Some(parameter) = parameter {
            new_tags.push((SECRET_PARAMETER_TAG.to_owned(), parameter.to_owned()));
        }
        let started = async {
            self.api.create_tags(vec![id.clone()], new_tags).await?;
            self.api.start_instances(vec![id.clone()]).await
        }
        .await;
        match started {
            Ok(()) => {
                tracing::info!(agent, instance = %id, "warm-pool instance started");
                Some(id)
            }
            Err(e) => {
                tracing::warn!(agent, instance = %id, error = %e, "could not start a warm-pool instance; launching a new one");
                // The fresh instance launched instead carries this agent: the
                // stopped one must not (two instances for one agent), nor point
                // at its secret parameter (a stale sweep would delete it).
                let cleared = vec![
                    (tags::AGENT.to_owned(), String::new()),
                    ("Name".to_owned(), String::new()),
                    (SECRET_PARAMETER_TAG.to_owned(), String::new()),
                ];
                if let Err(e) = self.api.create_tags(vec![id.clone()], cleared).await {
                    tracing::warn!(agent, instance = %id, error = %e,
                        "could not clear the tags of a warm-pool instance that did not start; it is not reused until a retire clears them");
                }
                self.claimed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                None
            }
        }
    }

    /// Terminates the stopped (or stopping) warm-pool members of this owner
    /// whose template is not in `pool_templates` — removed from the
    /// configuration, or configured without `warm_pool` — and deletes their
    /// secret parameters. Meant for start-up, with the names of every template
    /// that keeps a pool: it empties the pools of all others, in the region
    /// and account of this backend. Members still tagged with an agent, or
    /// claimed by a launch of this process, are left alone.
    ///
    /// From then on, this backend terminates instead of stopping when agents
    /// of templates not in `pool_templates` retire (until a launch of such a
    /// template says otherwise), so no new member appears behind the sweep.
    ///
    /// Returns the ids terminated. A failed lookup is an error; a failed
    /// TerminateInstances is logged and leaves those members for the next call.
    pub async fn prune_pools(
        &self,
        pool_templates: &BTreeSet<String>,
    ) -> Result<Vec<CloudId>, BackendError> {
        *self
            .pool_templates
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(pool_templates.clone());
        let filters = vec![
            owner_filter(&self.owner),
            (format!("tag:{RETIRE_TAG}"), vec!["stop".to_owned()]),
            (
                "instance-state-name".to_owned(),
                vec!["stopped".to_owned(), "stopping".to_owned()],
            ),
        ];
        let found = self.api.describe_instances(filters).await?;
        let by_template: BTreeMap<&str, Vec<&InstanceInfo>> = {
            let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
            let mut by_template: BTreeMap<&str, Vec<&InstanceInfo>> = BTreeMap::new();
            for info in &found {
                let template = info.tag(tags::TEMPLATE).unwrap_or_default();
                if self.is_pool_instance(info)
                    && matches!(info.state.as_str(), "stopped" | "stopping")
                    && !pool_templates.contains(template)
                    && info.tag(tags::AGENT).is_none_or(str::is_empty)
                    && claimed.insert(info.id.clone())
                {
                    by_template.entry(template).or_default().push(info);
                }
            }
            by_template
        };
        let mut terminated = Vec::new();
        for (template, members) in by_template {
            tracing::info!(template, instances = ?ids(&members),
                "terminating warm-pool instances of a template that keeps no pool (removed, or warm_pool off)");
            terminated.extend(
                self.drop_members(template, &members)
                    .await
                    .into_iter()
                    .map(CloudId),
            );
        }
        Ok(terminated)
    }

    /// Terminates members claimed by the caller and deletes their tagged
    /// secret parameters; returns the ids terminated. Failures are logged,
    /// never returned: the next launch (or prune) finds the members again.
    async fn drop_members(&self, template: &str, doomed: &[&InstanceInfo]) -> Vec<String> {
        let mut terminated = Vec::new();
        for chunk in doomed.chunks(MAX_TERMINATE_BATCH) {
            match self.api.terminate_instances(ids(chunk)).await {
                Ok(()) => {
                    terminated.extend(ids(chunk));
                    for parameter in chunk
                        .iter()
                        .filter_map(|i| i.tag(SECRET_PARAMETER_TAG))
                        .filter(|p| !p.is_empty())
                    {
                        if let Err(e) = self.api.delete_parameter(parameter.to_owned()).await {
                            tracing::warn!(parameter, error = %e, "could not delete the secret parameter of a warm-pool instance");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(template, instances = ?ids(chunk), error = %e,
                        "could not terminate warm-pool instances; trying again at the next launch");
                }
            }
        }
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        for info in doomed {
            claimed.remove(&info.id);
        }
        terminated
    }
}
