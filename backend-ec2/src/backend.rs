//! [`Ec2Backend`]: the [`Backend`] trait on EC2 instances.

mod warm_pool;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use jenkins_cloud_core::backend::{
    tags, AgentLaunch, Backend, BackendError, Capabilities, CloudId, CloudInstance, LaunchBatch,
    LaunchOutcome, OwnerId, TerminateOutcome,
};
use jenkins_cloud_core::AgentTemplate;
use sha2::{Digest, Sha256};

use crate::api::{Ec2Api, Filter, InstanceInfo, RootVolume, RunRequest};
use crate::error::Ec2Error;
use crate::groups::{resolve_security_groups, GroupCache};
use crate::launch::{plan, resolve_image, run_with_fallback, ImageCache};
use crate::pacing::TokenBucket;
use crate::spec::{Ec2Spec, Platform, SecretDelivery};
use crate::state::map_state;
use crate::userdata::{render, UserDataValues};
use crate::{POOL_MAX_TAG, RETIRE_TAG, SECRET_PARAMETER_TAG, SPEC_TAG};

/// Most agents per [`Backend::launch`] call (one RunInstances each, paced 2/s).
pub const MAX_LAUNCH_BATCH: usize = 10;
/// Most ids per DescribeInstances filter.
pub const MAX_DESCRIBE_BATCH: usize = 200;
/// Most ids per TerminateInstances / StopInstances call.
pub const MAX_TERMINATE_BATCH: usize = 100;

/// The EC2 backend. See the [crate docs](crate).
pub struct Ec2Backend {
    owner: OwnerId,
    api: Arc<dyn Ec2Api>,
    bucket: TokenBucket,
    /// Stopped instances taken from the warm pool and not yet stopped again.
    claimed: Mutex<HashSet<String>>,
    /// Warm-pool bound per template, from its latest launch (0: no pool).
    pool_bounds: Mutex<HashMap<String, usize>>,
    /// Held by a retire from counting the warm pools to its StopInstances.
    pool_lock: tokio::sync::Mutex<()>,
    /// The templates that keep a pool, once [`Ec2Backend::prune_pools`] was
    /// told them: retires of any other template terminate.
    pool_templates: Mutex<Option<BTreeSet<String>>>,
    /// Root device and platform by image id.
    images: ImageCache,
    /// Security group names resolved to ids.
    groups: GroupCache,
}

impl fmt::Debug for Ec2Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ec2Backend")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// The SSM parameter holding an agent's secret: `/jenkins-cloud/<owner>/<agent>`.
pub fn secret_parameter_name(owner: &OwnerId, agent: &str) -> String {
    format!("/jenkins-cloud/{owner}/{agent}")
}

/// What every agent of one launch batch shares, resolved once.
struct LaunchSetup<'a> {
    image_id: &'a str,
    root_device: Option<&'a str>,
    platform: Platform,
    security_groups: &'a [String],
}

fn owner_filter(owner: &OwnerId) -> Filter {
    (format!("tag:{}", tags::OWNER), vec![owner.to_string()])
}

fn to_instance(info: &InstanceInfo) -> CloudInstance {
    CloudInstance {
        id: CloudId(info.id.clone()),
        agent_name: info.tag(tags::AGENT).unwrap_or_default().to_owned(),
        template: info.tag(tags::TEMPLATE).unwrap_or_default().to_owned(),
        state: map_state(info),
        launched_at: info.launch_time,
    }
}

impl Ec2Backend {
    /// A backend on any [`Ec2Api`] (the SDK clients, or a mock in tests).
    pub fn with_api(owner: OwnerId, api: Arc<dyn Ec2Api>) -> Self {
        Self {
            owner,
            api,
            bucket: TokenBucket::run_instances(),
            claimed: Mutex::new(HashSet::new()),
            pool_bounds: Mutex::new(HashMap::new()),
            pool_lock: tokio::sync::Mutex::new(()),
            pool_templates: Mutex::new(None),
            images: ImageCache::default(),
            groups: GroupCache::default(),
        }
    }

    /// A backend on SDK clients built from `conf`.
    pub fn new(owner: OwnerId, conf: &aws_config::SdkConfig) -> Self {
        Self::with_api(owner, Arc::new(crate::sdk::SdkApi::from_conf(conf)))
    }

    /// A backend configured from aws-config's default chain (environment,
    /// profile, instance role…), optionally talking to `endpoint` instead of AWS.
    pub async fn from_env(owner: OwnerId, endpoint: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self::new(owner, &loader.load().await)
    }

    /// A hash of everything baked into an instance at launch, so the warm pool
    /// only reuses instances launched the same way: the spec, the AMI it
    /// resolved to (a name filter or SSM parameter may point at a newer image),
    /// the controller and the agent settings. `warm_pool_max` is left out: it
    /// is not baked in, and changing it must not make the pool stale.
    pub(crate) fn launch_fingerprint(
        template: &AgentTemplate,
        batch: &LaunchBatch<'_>,
        image_id: &str,
    ) -> String {
        let mut spec = template.spec.clone();
        if let Some(obj) = spec.as_object_mut() {
            obj.remove("warm_pool_max");
        }
        let mut h = Sha256::new();
        h.update(serde_json::to_string(&spec).unwrap_or_default());
        h.update(image_id.as_bytes());
        h.update(batch.jenkins.url.as_bytes());
        h.update(format!("{:?}", batch.jenkins.transport));
        h.update(template.remote_fs.as_bytes());
        h.update(serde_json::to_string(&template.environment).unwrap_or_default());
        hex::encode(&h.finalize()[..8])
    }

    async fn launch_all(&self, batch: LaunchBatch<'_>) -> Result<Vec<LaunchOutcome>, Ec2Error> {
        let spec = Ec2Spec::parse(&batch.template.spec).map_err(Ec2Error::InvalidSpec)?;
        self.remember_bound(&batch.template.name, spec.warm_pool_bound());
        let need_root_device = spec
            .root_volume
            .as_ref()
            .is_some_and(|r| r.device_name.is_none());
        let ami = resolve_image(
            self.api.as_ref(),
            &spec.ami,
            need_root_device || spec.platform.is_none(),
            &self.images,
        )
        .await?;
        let image_id = ami.id;
        let platform = spec
            .platform
            .or(ami.details.as_ref().map(|d| d.platform))
            .unwrap_or_default();
        let root_device = ami.details.and_then(|d| d.root_device_name);
        // Names resolved once for the batch: an unknown one fails every agent.
        let security_groups =
            resolve_security_groups(self.api.as_ref(), &spec, &self.groups).await?;
        let setup = LaunchSetup {
            image_id: &image_id,
            root_device: root_device.as_deref(),
            platform,
            security_groups: &security_groups,
        };
        let fingerprint = Self::launch_fingerprint(batch.template, &batch, &image_id);
        let mut outcomes = Vec::with_capacity(batch.agents.len());
        for agent in batch.agents {
            let result = self
                .launch_one(&spec, &batch, &setup, &fingerprint, agent)
                .await
                .map(CloudId)
                .map_err(BackendError::from);
            if let Err(e) = &result {
                tracing::warn!(agent = %agent.agent_name, error = %e, "EC2 launch failed");
            }
            outcomes.push(LaunchOutcome {
                agent_name: agent.agent_name.clone(),
                result,
            });
        }
        Ok(outcomes)
    }

    async fn launch_one(
        &self,
        spec: &Ec2Spec,
        batch: &LaunchBatch<'_>,
        setup: &LaunchSetup<'_>,
        fingerprint: &str,
        agent: &AgentLaunch,
    ) -> Result<String, Ec2Error> {
        let name = &agent.agent_name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Ec2Error::BadAgentName(name.clone()));
        }
        let template = batch.template;
        let parameter = (spec.secret_delivery == SecretDelivery::Ssm)
            .then(|| secret_parameter_name(&self.owner, name));
        let user_data = render(
            spec.user_data_template.as_deref(),
            &UserDataValues {
                jenkins_url: &batch.jenkins.url,
                agent_name: name,
                work_dir: &template.remote_fs,
                transport: &batch.jenkins.transport,
                secret_parameter: parameter.as_deref(),
                inline_secret: (spec.secret_delivery == SecretDelivery::UserData)
                    .then_some(&agent.secret),
                region: &self.api.region(),
                environment: &template.environment,
                platform: setup.platform,
            },
        )?;
        if let Some(parameter) = &parameter {
            self.api
                .put_secure_parameter(parameter.clone(), agent.secret.clone())
                .await?;
        }
        if spec.warm_pool {
            if let Some(id) = self
                .reuse_stopped(
                    &template.name,
                    spec.warm_pool_bound(),
                    fingerprint,
                    name,
                    parameter.as_deref(),
                )
                .await
            {
                return Ok(id);
            }
        }
        let base = self.run_request(
            spec,
            template,
            setup,
            fingerprint,
            agent,
            parameter.as_deref(),
            user_data,
        )?;
        let result = run_with_fallback(
            self.api.as_ref(),
            &self.bucket,
            &base,
            &plan(spec, &agent.client_token),
        )
        .await;
        match result {
            Ok((id, attempt)) => {
                tracing::info!(agent = %name, instance = %id, instance_type = %attempt.instance_type,
                    subnet = ?attempt.subnet, spot = attempt.spot.is_some(), "EC2 instance launched");
                Ok(id)
            }
            Err(err) => {
                if let Some(parameter) = parameter {
                    if let Err(e) = self.api.delete_parameter(parameter).await {
                        tracing::warn!(agent = %name, error = %e, "could not delete the secret parameter of a failed launch");
                    }
                }
                Err(err)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_request(
        &self,
        spec: &Ec2Spec,
        template: &AgentTemplate,
        setup: &LaunchSetup<'_>,
        fingerprint: &str,
        agent: &AgentLaunch,
        parameter: Option<&str>,
        user_data: String,
    ) -> Result<RunRequest, Ec2Error> {
        let (image_id, root_device) = (setup.image_id, setup.root_device);
        let mut resource_tags: Vec<(String, String)> = spec
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        resource_tags.push((tags::OWNER.into(), self.owner.to_string()));
        resource_tags.push((tags::TEMPLATE.into(), template.name.clone()));
        resource_tags.push((tags::AGENT.into(), agent.agent_name.clone()));
        let mut instance_tags = resource_tags.clone();
        if !spec.tags.contains_key("Name") {
            instance_tags.push(("Name".into(), agent.agent_name.clone()));
        }
        instance_tags.push((
            RETIRE_TAG.into(),
            if spec.warm_pool { "stop" } else { "terminate" }.into(),
        ));
        instance_tags.push((SPEC_TAG.into(), fingerprint.into()));
        if spec.warm_pool {
            instance_tags.push((POOL_MAX_TAG.into(), spec.warm_pool_bound().to_string()));
        }
        if let Some(parameter) = parameter {
            instance_tags.push((SECRET_PARAMETER_TAG.into(), parameter.into()));
        }
        let root_volume = match &spec.root_volume {
            None => None,
            Some(root) => Some(RootVolume {
                device_name: root
                    .device_name
                    .clone()
                    .or_else(|| root_device.map(str::to_owned))
                    .ok_or_else(|| {
                        Ec2Error::InvalidSpec(vec![format!(
                            "spec.root_volume.device_name: AMI {image_id} names no root device; set it"
                        )])
                    })?,
                size_gib: root.size_gib,
                volume_type: root.volume_type.clone(),
                iops: root.iops,
                throughput: root.throughput,
                encrypted: root.encrypted,
                kms_key_id: root.kms_key_id.clone(),
            }),
        };
        Ok(RunRequest {
            image_id: image_id.to_owned(),
            instance_type: String::new(),
            subnet_id: None,
            security_group_ids: setup.security_groups.to_vec(),
            instance_profile: spec.instance_profile.clone(),
            key_name: spec.key_name.clone(),
            require_imds_tokens: spec.metadata.require_tokens,
            hop_limit: spec.metadata.hop_limit,
            metadata_tags: spec.secret_delivery == SecretDelivery::Ssm,
            root_volume,
            instance_tags,
            resource_tags,
            spot: None,
            user_data,
            client_token: agent.client_token.clone(),
        })
    }

    /// Terminates (or, for warm-pool instances, stops) `ids`; `force` terminates
    /// warm-pool instances too, stopped ones included.
    async fn retire(&self, ids: &[CloudId], force: bool) -> Vec<TerminateOutcome> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_TERMINATE_BATCH) {
            outcomes.extend(self.retire_chunk(chunk, force).await);
        }
        outcomes
    }

    async fn retire_chunk(&self, ids: &[CloudId], force: bool) -> Vec<TerminateOutcome> {
        let wanted: Vec<String> = ids.iter().map(|i| i.0.clone()).collect();
        // Filter by id only, then check ownership ourselves: foreign ids are refused,
        // unknown ones are already gone.
        let known = match self
            .api
            .describe_instances(vec![("instance-id".to_owned(), wanted)])
            .await
        {
            Ok(known) => known,
            Err(e) => {
                let e = BackendError::from(e);
                return ids
                    .iter()
                    .map(|id| TerminateOutcome {
                        id: id.clone(),
                        result: Err(e.clone()),
                    })
                    .collect();
            }
        };
        let mut results: Vec<Option<Result<(), BackendError>>> = vec![None; ids.len()];
        let (mut to_terminate, mut warm, mut parameters) = (Vec::new(), Vec::new(), Vec::new());
        let mut still_tagged = Vec::new();
        for (slot, id) in results.iter_mut().zip(ids) {
            let Some(info) = known.iter().find(|i| i.id == id.0) else {
                *slot = Some(Ok(()));
                continue;
            };
            if info.tag(tags::OWNER) != Some(self.owner.as_str()) {
                let err = Ec2Error::NotOwned {
                    id: id.0.clone(),
                    owner: self.owner.to_string(),
                };
                *slot = Some(Err(err.into()));
                continue;
            }
            if let Some(p) = info.tag(SECRET_PARAMETER_TAG).filter(|p| !p.is_empty()) {
                parameters.push(p.to_owned());
            }
            // A spot instance cannot be stopped (one-time requests): never pooled.
            let pooled = !force
                && info.tag(RETIRE_TAG) == Some("stop")
                && info.lifecycle.as_deref() != Some("spot");
            match (info.state.as_str(), pooled) {
                ("terminated" | "shutting-down", _) => *slot = Some(Ok(())),
                ("stopped" | "stopping", true) => {
                    if info.tag(tags::AGENT).is_some_and(|a| !a.is_empty()) {
                        still_tagged.push(id.0.clone());
                    }
                    *slot = Some(Ok(()));
                }
                (_, true) => warm.push(info),
                (_, false) => to_terminate.push(id.0.clone()),
            }
        }
        // Serialise warm retires of this process from the count to the stop.
        let pool_guard = if warm.is_empty() {
            None
        } else {
            Some(self.pool_lock.lock().await)
        };
        let (to_stop, full) = self.split_warm(&warm).await;
        to_terminate.extend(full);
        let terminated = if to_terminate.is_empty() {
            Ok(())
        } else {
            self.api
                .terminate_instances(to_terminate.clone())
                .await
                .map_err(BackendError::from)
        };
        let stopped = if to_stop.is_empty() {
            Ok(())
        } else {
            let r = self
                .api
                .stop_instances(to_stop.clone())
                .await
                .map_err(BackendError::from);
            if r.is_ok() {
                still_tagged.extend(to_stop.iter().cloned());
            }
            r
        };
        if !still_tagged.is_empty() {
            // A pooled instance is no agent any more; until this succeeds it is
            // not reused (see `reuse_stopped`), and the next retire tries again.
            let cleared = vec![
                (tags::AGENT.to_owned(), String::new()),
                (SECRET_PARAMETER_TAG.to_owned(), String::new()),
            ];
            if let Err(e) = self.api.create_tags(still_tagged, cleared).await {
                tracing::warn!(error = %e, "could not clear the agent tags of stopped instances");
            }
        }
        drop(pool_guard);
        {
            // Every id of this call is settled (stopping, terminating, already
            // stopped or gone): none stays claimed by an earlier warm start, or a
            // member stopped again by EC2 would never be reused nor swept.
            let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
            for id in ids {
                claimed.remove(&id.0);
            }
        }
        for (slot, id) in results.iter_mut().zip(ids) {
            if slot.is_none() {
                *slot = Some(if to_stop.contains(&id.0) {
                    stopped.clone()
                } else {
                    terminated.clone()
                });
            }
        }
        for parameter in parameters {
            if let Err(e) = self.api.delete_parameter(parameter.clone()).await {
                tracing::warn!(parameter, error = %e, "could not delete an agent's secret parameter");
            }
        }
        ids.iter()
            .zip(results)
            .map(|(id, r)| TerminateOutcome {
                id: id.clone(),
                result: r.unwrap_or(Ok(())),
            })
            .collect()
    }

    /// Terminates instances for good, warm-pool ones included (stopped or not),
    /// e.g. to empty a pool by hand. Same ownership rules as [`Backend::terminate`].
    /// (Launches and retires keep each pool within `warm_pool_max` on their own.)
    pub async fn terminate_for_good(&self, ids: &[CloudId]) -> Vec<TerminateOutcome> {
        self.retire(ids, true).await
    }
}

#[async_trait]
impl Backend for Ec2Backend {
    fn kind(&self) -> &str {
        "ec2"
    }

    fn owner(&self) -> &OwnerId {
        &self.owner
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(MAX_LAUNCH_BATCH, MAX_DESCRIBE_BATCH, MAX_TERMINATE_BATCH)
            .with_spot(true)
            .with_stop_resume(true)
    }

    fn validate_template(&self, template: &AgentTemplate) -> Result<(), Vec<String>> {
        Ec2Spec::parse(&template.spec).map(|_| ())
    }

    fn classify_failure(&self, reason: &str) -> jenkins_cloud_core::ErrorClass {
        crate::state::classify_state_reason(reason)
    }

    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        match self.launch_all(batch).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let e = BackendError::from(e);
                batch
                    .agents
                    .iter()
                    .map(|a| LaunchOutcome {
                        agent_name: a.agent_name.clone(),
                        result: Err(e.clone()),
                    })
                    .collect()
            }
        }
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_DESCRIBE_BATCH) {
            let filters = vec![
                owner_filter(&self.owner),
                (
                    "instance-id".to_owned(),
                    chunk.iter().map(|i| i.0.clone()).collect(),
                ),
            ];
            let found = self.api.describe_instances(filters).await?;
            out.extend(
                found
                    .iter()
                    .filter(|i| i.tag(tags::OWNER) == Some(self.owner.as_str()))
                    .map(to_instance),
            );
        }
        Ok(out)
    }

    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        tracing::debug!(count = ids.len(), reason, "terminating EC2 instances");
        self.retire(ids, false).await
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        let found = self
            .api
            .describe_instances(vec![owner_filter(&self.owner)])
            .await?;
        Ok(found
            .iter()
            .filter(|i| i.tag(tags::OWNER) == Some(self.owner.as_str()))
            .map(to_instance)
            .collect())
    }
}
