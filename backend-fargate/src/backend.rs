//! [`FargateBackend`]: the core [`Backend`] trait on ECS Fargate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ecs::operation::describe_tasks::builders::DescribeTasksInputBuilder;
use aws_sdk_ecs::operation::list_tasks::builders::ListTasksInputBuilder;
use aws_sdk_ecs::operation::stop_task::builders::StopTaskInputBuilder;
use aws_sdk_ecs::operation::tag_resource::builders::TagResourceInputBuilder;
use aws_sdk_ecs::types::{DesiredStatus, Tag, Task, TaskField};
use jenkins_cloud_core::backend::{
    tags, Capabilities, CloudId, CloudInstance, JenkinsEndpoint, LaunchBatch, LaunchOutcome,
    OwnerId, TerminateOutcome,
};
use jenkins_cloud_core::{AgentTemplate, Backend, BackendError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{ApiError, EcsApi};
use crate::config::{sdk_config, FargateConfig};
use crate::error::Error;
use crate::launch::{
    batch_answer, batch_input, chunk_token, fallback_token, outcome_of, run_input,
    should_fall_back, Placement, RUN_TASK_MAX_COUNT,
};
use crate::rate::{paced, RateLimiter};
use crate::spec::FargateSpec;
use crate::state::{cluster_of, instance_of, is_owned, STOP_REASON_PREFIX};
use crate::taskdef::TaskDefinitions;

/// Most tasks per DescribeTasks call (an ECS limit).
pub const DESCRIBE_BATCH: usize = 100;

/// Runs each Jenkins agent as an ECS Fargate task. See the crate docs.
#[derive(Debug, Clone)]
pub struct FargateBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: FargateConfig,
    api: Arc<dyn EcsApi>,
    task_definitions: TaskDefinitions,
    run_limiter: Arc<RateLimiter>,
    describe_limiter: RateLimiter,
    tag_limiter: Arc<RateLimiter>,
}

impl FargateBackend {
    /// A backend on an ECS client from the default AWS chain (environment,
    /// profile, ECS task role, instance metadata), with
    /// [`FargateConfig::endpoint_url`] applied.
    pub async fn from_env(config: FargateConfig) -> Result<Self, Error> {
        let sdk = sdk_config(&config).await;
        let mut ecs = aws_sdk_ecs::config::Builder::from(&sdk);
        if let Some(url) = &config.endpoint_url {
            ecs = ecs.endpoint_url(url);
        }
        Self::with_client(config, aws_sdk_ecs::Client::from_conf(ecs.build()))
    }

    /// A backend on a ready ECS client (tests, custom interceptors).
    pub fn with_client(config: FargateConfig, client: aws_sdk_ecs::Client) -> Result<Self, Error> {
        Self::with_api(config, Arc::new(client))
    }

    /// A backend on any [`EcsApi`] implementation.
    pub fn with_api(config: FargateConfig, api: Arc<dyn EcsApi>) -> Result<Self, Error> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(Error::Config(problems.join("; ")));
        }
        let inner = Inner {
            run_limiter: Arc::new(RateLimiter::new(config.run_rate_per_sec, config.run_burst)),
            describe_limiter: RateLimiter::new(config.describe_rate_per_sec, config.describe_burst),
            tag_limiter: Arc::new(RateLimiter::new(config.tag_rate_per_sec, config.tag_burst)),
            task_definitions: TaskDefinitions::default(),
            api,
            config,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FargateConfig {
        &self.inner.config
    }

    /// Parses and checks a template's spec, including the cluster.
    pub fn spec_of(&self, template: &AgentTemplate) -> Result<FargateSpec, Error> {
        let spec = FargateSpec::from_value(&template.spec).map_err(Error::InvalidSpec)?;
        if !self.inner.config.has_cluster(&spec.cluster) {
            return Err(Error::InvalidSpec(vec![format!(
                "spec.cluster: `{}` is not one of the backend's clusters ({}); its tasks would never be listed",
                spec.cluster,
                self.inner.config.clusters.join(", ")
            )]));
        }
        Ok(spec)
    }

    /// The task definition ARN a template runs (registering it when needed).
    pub async fn task_definition_for(&self, template: &AgentTemplate) -> Result<String, Error> {
        let spec = self.spec_of(template)?;
        let c = &self.inner.config;
        self.inner
            .task_definitions
            .resolve(
                self.inner.api.as_ref(),
                &c.family_prefix,
                &c.owner,
                &template.name,
                &spec,
            )
            .await
    }

    /// Describes task ARNs of one cluster, in batches of 100 (tags included).
    async fn describe_cluster(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<Task>, ApiError> {
        let mut tasks = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_BATCH) {
            let input = DescribeTasksInputBuilder::default()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .include(TaskField::Tags);
            let api = &self.inner.api;
            let out = paced(
                &self.inner.describe_limiter,
                self.inner.config.backoff,
                || api.describe_tasks(input.clone()),
            )
            .await?;
            tasks.extend(out.tasks().iter().cloned());
        }
        Ok(tasks)
    }

    /// Describes any task ARNs, grouped by cluster. Unparseable ids are skipped.
    async fn describe_tasks(&self, ids: &[CloudId]) -> Result<HashMap<String, Task>, ApiError> {
        let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for id in ids {
            if let Some(cluster) = cluster_of(&id.0) {
                by_cluster.entry(cluster).or_default().push(id.0.clone());
            }
        }
        let mut found = HashMap::new();
        for (cluster, arns) in by_cluster {
            let mut arns = arns;
            arns.sort();
            arns.dedup();
            for task in self.describe_cluster(cluster, &arns).await? {
                if let Some(arn) = task.task_arn() {
                    found.insert(arn.to_owned(), task.clone());
                }
            }
        }
        Ok(found)
    }

    async fn list_cluster(&self, cluster: &str) -> Result<Vec<String>, ApiError> {
        let mut arns = BTreeSet::new();
        for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let mut next: Option<String> = None;
            loop {
                let input = ListTasksInputBuilder::default()
                    .cluster(cluster)
                    .started_by(self.inner.config.owner.as_str())
                    .desired_status(status.clone())
                    .max_results(100)
                    .set_next_token(next.take());
                let api = &self.inner.api;
                let out = paced(
                    &self.inner.describe_limiter,
                    self.inner.config.backoff,
                    || api.list_tasks(input.clone()),
                )
                .await?;
                arns.extend(out.task_arns().iter().cloned());
                match out.next_token() {
                    Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(arns.into_iter().collect())
    }
}

/// What a batched chunk needs, shared by the chunks of one launch.
#[derive(Debug)]
struct Batcher {
    api: Arc<dyn EcsApi>,
    run_limiter: Arc<RateLimiter>,
    tag_limiter: Arc<RateLimiter>,
    backoff: crate::rate::Backoff,
    owner: OwnerId,
    template: AgentTemplate,
    spec: Arc<FargateSpec>,
    task_definition: String,
    jenkins: JenkinsEndpoint,
}

impl Batcher {
    /// Starts one chunk (≤ 10 agents, given by name) with one RunTask (plus
    /// one on-demand fallback for spot capacity failures) and binds task i to
    /// agent i with TagResource. One result per agent, in order.
    async fn run_chunk(&self, names: &[String], token: &str) -> Vec<Result<CloudId, Error>> {
        let n = names.len();
        let mut results: Vec<Result<CloudId, Error>> =
            vec![Err(Error::Internal("chunk was not launched".into())); n];
        let mut pending: Vec<usize> = (0..n).collect();
        for placement in [Placement::Template, Placement::OnDemandFallback] {
            if placement == Placement::OnDemandFallback {
                pending.retain(|&i| match &results[i] {
                    Err(err) => should_fall_back(&self.spec, Placement::Template, err),
                    Ok(_) => false,
                });
                if pending.is_empty() {
                    break;
                }
                tracing::warn!(
                    agents = pending.len(),
                    "spot capacity unavailable; falling back to FARGATE"
                );
            }
            let token = match placement {
                Placement::Template => token.to_owned(),
                Placement::OnDemandFallback => fallback_token(token),
            };
            let input = match batch_input(
                &self.owner,
                &self.template,
                &self.spec,
                &self.task_definition,
                &self.jenkins,
                pending.len(),
                token,
                placement,
            ) {
                Ok(input) => input,
                Err(err) => {
                    for &i in &pending {
                        results[i] = Err(err.clone());
                    }
                    break;
                }
            };
            let api = &self.api;
            match paced(&self.run_limiter, self.backoff, || {
                api.run_task(input.clone())
            })
            .await
            {
                Err(err) => {
                    for &i in &pending {
                        results[i] = Err(Error::from(err.clone()));
                    }
                }
                Ok(out) => {
                    let answer = batch_answer(&out);
                    let started = answer.arns.len();
                    for arn in answer.arns.iter().skip(pending.len()) {
                        tracing::error!(task = %arn, "RunTask started more tasks than requested; stopping the extra one");
                        self.stop(arn, "RunTask started more tasks than requested")
                            .await;
                    }
                    let mut failures = answer.failures.into_iter();
                    for (k, &i) in pending.iter().enumerate() {
                        results[i] = match answer.arns.get(k) {
                            Some(arn) => Ok(CloudId(arn.clone())),
                            None => Err(failures.next().unwrap_or_else(|| {
                                Error::Internal(format!(
                                    "RunTask started {started} of {} tasks and gave no failure for the rest",
                                    pending.len()
                                ))
                            })),
                        };
                    }
                }
            }
        }
        for (name, result) in names.iter().zip(results.iter_mut()) {
            if let Ok(CloudId(arn)) = result {
                if let Err(err) = self.bind(arn, name).await {
                    *result = Err(err);
                }
            }
        }
        results
    }

    /// Tags `arn` with its agent's name; on failure stops the task at once.
    async fn bind(&self, arn: &str, name: &str) -> Result<(), Error> {
        let input = TagResourceInputBuilder::default()
            .resource_arn(arn)
            .tags(Tag::builder().key(tags::AGENT).value(name).build());
        let api = &self.api;
        let Err(err) = paced(&self.tag_limiter, self.backoff, || {
            api.tag_resource(input.clone())
        })
        .await
        else {
            return Ok(());
        };
        tracing::warn!(task = %arn, agent = %name, error = %err, "could not tag the task with its agent; stopping it");
        let stopped = self.stop(arn, "could not bind the task to its agent").await;
        Err(Error::Unbound {
            arn: arn.to_owned(),
            source: err,
            stopped,
        })
    }

    /// Stops a task we just started; whether it worked (failures are logged:
    /// the task stays listed as `untagged-…` and is collected as an orphan).
    async fn stop(&self, arn: &str, reason: &str) -> bool {
        let Some(cluster) = cluster_of(arn) else {
            tracing::error!(task = %arn, "not a task ARN; cannot stop it");
            return false;
        };
        let input = StopTaskInputBuilder::default()
            .cluster(cluster)
            .task(arn)
            .reason(stop_reason(reason));
        let api = &self.api;
        match paced(&self.run_limiter, self.backoff, || {
            api.stop_task(input.clone())
        })
        .await
        {
            Ok(_) => true,
            Err(err) => {
                tracing::error!(task = %arn, error = %err, "could not stop the task; it is left for orphan collection");
                false
            }
        }
    }
}

impl FargateBackend {
    /// Batched launch (`spec.launch_batching`): chunks of ≤ 10 agents, one
    /// RunTask per chunk, then one TagResource per task. See docs/fargate.md.
    async fn launch_batched(
        &self,
        batch: &LaunchBatch<'_>,
        spec: Arc<FargateSpec>,
        task_definition: String,
    ) -> Vec<LaunchOutcome> {
        let batcher = Arc::new(Batcher {
            api: self.inner.api.clone(),
            run_limiter: self.inner.run_limiter.clone(),
            tag_limiter: self.inner.tag_limiter.clone(),
            backoff: self.inner.config.backoff,
            owner: self.inner.config.owner.clone(),
            template: batch.template.clone(),
            spec,
            task_definition,
            jenkins: batch.jenkins.clone(),
        });
        let semaphore = Arc::new(Semaphore::new(self.inner.config.concurrency));
        let mut set = JoinSet::new();
        for (c, chunk) in batch.agents.chunks(RUN_TASK_MAX_COUNT).enumerate() {
            let names: Vec<String> = chunk.iter().map(|a| a.agent_name.clone()).collect();
            let token = chunk_token(chunk);
            let (batcher, semaphore) = (batcher.clone(), semaphore.clone());
            set.spawn(async move {
                let _permit = semaphore
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                (c, batcher.run_chunk(&names, &token).await)
            });
        }
        let mut results: Vec<Option<Result<CloudId, Error>>> = vec![None; batch.agents.len()];
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((c, chunk)) => {
                    for (k, result) in chunk.into_iter().enumerate() {
                        results[c * RUN_TASK_MAX_COUNT + k] = Some(result);
                    }
                }
                Err(e) => tracing::error!(error = %e, "batched launch task panicked"),
            }
        }
        outcomes(batch.agents, results)
    }
}

fn stop_reason(reason: &str) -> String {
    let mut text = format!("{STOP_REASON_PREFIX}{reason}");
    if text.len() > 255 {
        let mut end = 255;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn task_gone(err: &ApiError) -> bool {
    let m = err.message.to_ascii_lowercase();
    m.contains("task was not found")
        || m.contains("could not find task")
        || m.contains("task not found")
}

#[async_trait]
impl Backend for FargateBackend {
    fn kind(&self) -> &str {
        "fargate"
    }

    fn owner(&self) -> &OwnerId {
        &self.inner.config.owner
    }

    fn capabilities(&self) -> Capabilities {
        // One RunTask per agent (per-agent overrides), so launch batches are
        // bounded by in-flight concurrency rather than RunTask's count of 10.
        Capabilities::new(
            self.inner.config.concurrency * 10,
            DESCRIBE_BATCH,
            DESCRIBE_BATCH,
        )
        .with_spot(true)
    }

    fn classify_failure(&self, reason: &str) -> jenkins_cloud_core::ErrorClass {
        crate::state::classify_stop_reason(reason)
    }

    fn validate_template(&self, template: &AgentTemplate) -> Result<(), Vec<String>> {
        match self.spec_of(template) {
            Ok(spec) => {
                let mut p = Vec::new();
                for k in template.environment.keys() {
                    if crate::spec::RESERVED_ENV.contains(&k.as_str()) {
                        p.push(format!("environment.{k}: set by the backend; remove it"));
                    }
                }
                if spec.agent_secret == crate::spec::AgentSecretDelivery::FetchedByAgent
                    && spec.secrets.is_empty()
                    && !spec.is_external()
                {
                    p.push("spec.agent_secret: fetched_by_agent needs a connect credential in spec.secrets".to_owned());
                }
                if p.is_empty() {
                    Ok(())
                } else {
                    Err(p)
                }
            }
            Err(Error::InvalidSpec(p)) => Err(p),
            Err(other) => Err(vec![other.to_string()]),
        }
    }

    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        let fail_all = |err: BackendError| {
            batch
                .agents
                .iter()
                .map(|a| LaunchOutcome {
                    agent_name: a.agent_name.clone(),
                    result: Err(err.clone()),
                })
                .collect::<Vec<_>>()
        };
        if let Err(problems) = self.validate_template(batch.template) {
            return fail_all(Error::InvalidSpec(problems).into());
        }
        let spec = match self.spec_of(batch.template) {
            Ok(spec) => Arc::new(spec),
            Err(err) => return fail_all(err.into()),
        };
        let task_definition = match self.task_definition_for(batch.template).await {
            Ok(arn) => arn,
            Err(err) => return fail_all(err.into()),
        };
        if spec.launch_batching {
            return self.launch_batched(&batch, spec, task_definition).await;
        }
        let owner = &self.inner.config.owner;
        let semaphore = Arc::new(Semaphore::new(self.inner.config.concurrency));
        let mut set = JoinSet::new();
        let mut results: Vec<Option<Result<CloudId, Error>>> = vec![None; batch.agents.len()];
        for (i, agent) in batch.agents.iter().enumerate() {
            let inputs = [Placement::Template, Placement::OnDemandFallback].map(|p| {
                run_input(
                    owner,
                    batch.template,
                    &spec,
                    &task_definition,
                    batch.jenkins,
                    agent,
                    p,
                )
            });
            let [primary, fallback] = inputs;
            let (primary, fallback) = match (primary, fallback) {
                (Ok(p), Ok(f)) => (p, f),
                (Err(e), _) | (_, Err(e)) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let (api, limiter, backoff) = (
                self.inner.api.clone(),
                self.inner.run_limiter.clone(),
                self.inner.config.backoff,
            );
            let (semaphore, spec, name) =
                (semaphore.clone(), spec.clone(), agent.agent_name.clone());
            set.spawn(async move {
                let _permit = semaphore.acquire_owned().await.expect("semaphore is never closed");
                let run = |input: aws_sdk_ecs::operation::run_task::builders::RunTaskInputBuilder| {
                    let (api, limiter) = (api.clone(), limiter.clone());
                    async move {
                        let out = paced(&limiter, backoff, || api.run_task(input.clone())).await?;
                        outcome_of(&out)
                    }
                };
                let mut result = run(primary).await;
                if let Err(err) = &result {
                    if should_fall_back(&spec, Placement::Template, err) {
                        tracing::warn!(agent = %name, error = %err, "spot capacity unavailable; falling back to FARGATE");
                        result = run(fallback).await;
                    }
                }
                (i, result)
            });
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, result)) => results[i] = Some(result),
                Err(e) => tracing::error!(error = %e, "launch task panicked"),
            }
        }
        outcomes(batch.agents, results)
    }

    async fn describe(&self, ids: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        let found = self.describe_tasks(ids).await.map_err(Error::from)?;
        let owner = &self.inner.config.owner;
        let mut seen = BTreeSet::new();
        Ok(ids
            .iter()
            .filter(|id| seen.insert(id.0.clone()))
            .filter_map(|id| found.get(&id.0).and_then(|t| instance_of(t, owner)))
            .collect())
    }

    async fn terminate(&self, ids: &[CloudId], reason: &str) -> Vec<TerminateOutcome> {
        let found = match self.describe_tasks(ids).await {
            Ok(found) => found,
            Err(err) => {
                let err = BackendError::from(Error::from(err));
                return ids
                    .iter()
                    .map(|id| TerminateOutcome {
                        id: id.clone(),
                        result: Err(err.clone()),
                    })
                    .collect();
            }
        };
        let owner = &self.inner.config.owner;
        let reason = stop_reason(reason);
        let mut results: Vec<Option<Result<(), Error>>> = vec![None; ids.len()];
        let mut set = JoinSet::new();
        let mut stopping = BTreeSet::new();
        for (i, id) in ids.iter().enumerate() {
            let Some(cluster) = cluster_of(&id.0) else {
                results[i] = Some(Err(Error::InvalidId(id.0.clone())));
                continue;
            };
            let Some(task) = found.get(&id.0) else {
                // Unknown to ECS: long gone (ECS forgets stopped tasks) or never ours.
                results[i] = Some(Ok(()));
                continue;
            };
            if !is_owned(task, owner) {
                results[i] = Some(Err(Error::NotOwned(id.0.clone())));
                continue;
            }
            if task.desired_status() == Some("STOPPED")
                || task.last_status() == Some("STOPPED")
                || !stopping.insert(id.0.clone())
            {
                results[i] = Some(Ok(()));
                continue;
            }
            let input = StopTaskInputBuilder::default()
                .cluster(cluster)
                .task(&id.0)
                .reason(&reason);
            let (api, limiter, backoff) = (
                self.inner.api.clone(),
                self.inner.run_limiter.clone(),
                self.inner.config.backoff,
            );
            set.spawn(async move {
                let result = match paced(&limiter, backoff, || api.stop_task(input.clone())).await {
                    Ok(_) => Ok(()),
                    Err(err) if task_gone(&err) => Ok(()),
                    Err(err) => Err(Error::from(err)),
                };
                (i, result)
            });
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, result)) => results[i] = Some(result),
                Err(e) => tracing::error!(error = %e, "stop task panicked"),
            }
        }
        ids.iter()
            .zip(results)
            .map(|(id, result)| {
                let result =
                    result.unwrap_or_else(|| Err(Error::Internal("stop did not finish".into())));
                TerminateOutcome {
                    id: id.clone(),
                    result: result.map_err(BackendError::from),
                }
            })
            .collect()
    }

    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        let owner = &self.inner.config.owner;
        let mut out = Vec::new();
        for cluster in &self.inner.config.clusters {
            let arns = self.list_cluster(cluster).await.map_err(Error::from)?;
            let tasks = self
                .describe_cluster(cluster, &arns)
                .await
                .map_err(Error::from)?;
            out.extend(tasks.iter().filter_map(|t| instance_of(t, owner)));
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }
}

#[cfg(test)]
#[path = "backend_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "batch_tests.rs"]
mod batch_tests;

/// One outcome per agent, in order; an agent whose launch task did not finish
/// (it panicked) gets an internal error. Failures are logged once here.
fn outcomes(
    agents: &[jenkins_cloud_core::backend::AgentLaunch],
    results: Vec<Option<Result<CloudId, Error>>>,
) -> Vec<LaunchOutcome> {
    agents
        .iter()
        .zip(results)
        .map(|(agent, result)| {
            let result =
                result.unwrap_or_else(|| Err(Error::Internal("launch task did not finish".into())));
            if let Err(err) = &result {
                tracing::warn!(
                    agent = %agent.agent_name,
                    class = %err.class(),
                    error = %err,
                    "launch failed"
                );
            }
            LaunchOutcome {
                agent_name: agent.agent_name.clone(),
                result: result.map_err(BackendError::from),
            }
        })
        .collect()
}
