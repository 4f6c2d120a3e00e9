//! RunTask requests and the classification of their answers: one task per
//! agent by default (see docs/fargate.md, "Launch: why one RunTask call per
//! agent"), or up to 10 identical tasks per call in batched mode ("Batched
//! launches").

use aws_sdk_ecs::operation::run_task::builders::RunTaskInputBuilder;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride,
    KeyValuePair, LaunchType, NetworkConfiguration, PropagateTags, Tag, TaskOverride,
};
use jenkins_cloud_core::backend::{
    tags, AgentLaunch, AgentTransport, CloudId, JenkinsEndpoint, OwnerId,
};
use jenkins_cloud_core::{AgentTemplate, ErrorClass};
use sha2::{Digest, Sha256};

use crate::api::classify_reason;
use crate::error::Error;
use crate::spec::{AgentSecretDelivery, FargateSpec};

/// Capacity placement of one RunTask call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The template's capacity-provider strategy (or launch type FARGATE when it has none).
    Template,
    /// Launch type FARGATE: the on-demand fallback after a spot capacity error.
    OnDemandFallback,
}

fn kv(name: &str, value: &str) -> KeyValuePair {
    KeyValuePair::builder().name(name).value(value).build()
}

/// The client token of the on-demand fallback: a new request needs a new token,
/// still stable across retries of the same launch.
pub fn fallback_token(token: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!("{token}/on-demand").as_bytes()));
    digest[..64.min(digest.len())].to_owned()
}

/// Most tasks one RunTask call may start (an ECS limit).
pub const RUN_TASK_MAX_COUNT: usize = 10;

/// The client token of one batched RunTask call: derived from the chunk's
/// agent tokens (in order), so retries of the same chunk are idempotent and
/// different chunks never share a token. 64 hex characters (ECS allows 64).
pub fn chunk_token(chunk: &[AgentLaunch]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"jenkins-cloud/batch");
    for agent in chunk {
        hasher.update((agent.client_token.len() as u64).to_be_bytes());
        hasher.update(agent.client_token.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The RunTask request for one agent.
#[allow(clippy::too_many_arguments)]
pub fn run_input(
    owner: &OwnerId,
    template: &AgentTemplate,
    spec: &FargateSpec,
    task_definition: &str,
    jenkins: &JenkinsEndpoint,
    agent: &AgentLaunch,
    placement: Placement,
) -> Result<RunTaskInputBuilder, Error> {
    let token = match placement {
        Placement::Template => agent.client_token.clone(),
        Placement::OnDemandFallback => fallback_token(&agent.client_token),
    };
    build_input(
        owner,
        template,
        spec,
        task_definition,
        jenkins,
        Some(agent),
        1,
        token,
        placement,
    )
}

/// The RunTask request for `count` identical tasks of a batched chunk: common
/// overrides (no agent name, no secret), tags owner + template (no agent tag:
/// each task is bound to its agent afterwards with TagResource), and `token`
/// as client token ([`chunk_token`], or its [`fallback_token`]).
#[allow(clippy::too_many_arguments)]
pub fn batch_input(
    owner: &OwnerId,
    template: &AgentTemplate,
    spec: &FargateSpec,
    task_definition: &str,
    jenkins: &JenkinsEndpoint,
    count: usize,
    token: String,
    placement: Placement,
) -> Result<RunTaskInputBuilder, Error> {
    if count == 0 || count > RUN_TASK_MAX_COUNT {
        return Err(Error::Internal(format!(
            "a batched RunTask starts 1–{RUN_TASK_MAX_COUNT} tasks, not {count}"
        )));
    }
    build_input(
        owner,
        template,
        spec,
        task_definition,
        jenkins,
        None,
        count,
        token,
        placement,
    )
}

#[allow(clippy::too_many_arguments)]
fn build_input(
    owner: &OwnerId,
    template: &AgentTemplate,
    spec: &FargateSpec,
    task_definition: &str,
    jenkins: &JenkinsEndpoint,
    agent: Option<&AgentLaunch>,
    count: usize,
    token: String,
    placement: Placement,
) -> Result<RunTaskInputBuilder, Error> {
    let mut env = vec![kv("JENKINS_URL", &jenkins.url)];
    if let Some(agent) = agent {
        env.push(kv("JENKINS_AGENT_NAME", &agent.agent_name));
    }
    env.push(kv("JENKINS_AGENT_WORKDIR", &template.remote_fs));
    match &jenkins.transport {
        AgentTransport::WebSocket => env.push(kv("JENKINS_WEB_SOCKET", "true")),
        AgentTransport::Tunnel(tunnel) => env.push(kv("JENKINS_TUNNEL", tunnel)),
    }
    if let (Some(agent), AgentSecretDelivery::Environment) = (agent, spec.agent_secret) {
        env.push(kv("JENKINS_SECRET", agent.secret.expose()));
    }
    for (k, v) in &template.environment {
        env.push(kv(k, v));
    }
    let overrides = TaskOverride::builder()
        .container_overrides(
            ContainerOverride::builder()
                .name(spec.container())
                .set_environment(Some(env))
                .build(),
        )
        .build();
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(spec.subnets.clone()))
        .set_security_groups(Some(spec.security_groups.clone()))
        .assign_public_ip(if spec.assign_public_ip {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        })
        .build()
        .map_err(|e| Error::Internal(format!("network configuration: {e}")))?;
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let mut input = RunTaskInputBuilder::default()
        .cluster(&spec.cluster)
        .task_definition(task_definition)
        .count(count as i32)
        .started_by(owner.as_str())
        .client_token(token)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(vpc)
                .build(),
        )
        .overrides(overrides)
        .enable_execute_command(spec.enable_execute_command)
        .tags(tag(tags::OWNER, owner.as_str()))
        .tags(tag(tags::TEMPLATE, &template.name));
    if let Some(agent) = agent {
        input = input.tags(tag(tags::AGENT, &agent.agent_name));
    }
    for (k, v) in &spec.tags {
        input = input.tags(tag(k, v));
    }
    if spec.is_external() {
        // Our tags go on explicitly; the external definition's own tags (cost
        // allocation…) are propagated. Our own definitions carry no extra tags.
        input = input.propagate_tags(PropagateTags::TaskDefinition);
    }
    if let Some(v) = &spec.platform_version {
        input = input.platform_version(v);
    }
    if spec.capacity_providers.is_empty() || placement == Placement::OnDemandFallback {
        input = input.launch_type(LaunchType::Fargate);
    } else {
        for cp in &spec.capacity_providers {
            let item = CapacityProviderStrategyItem::builder()
                .capacity_provider(&cp.provider)
                .weight(cp.weight as i32)
                .base(cp.base as i32)
                .build()
                .map_err(|e| Error::Internal(format!("capacity provider: {e}")))?;
            input = input.capacity_provider_strategy(item);
        }
    }
    Ok(input)
}

/// Whether a failed launch with `placement` should be retried on on-demand FARGATE.
pub fn should_fall_back(spec: &FargateSpec, placement: Placement, err: &Error) -> bool {
    placement == Placement::Template
        && spec
            .capacity_providers
            .iter()
            .any(|c| c.provider == "FARGATE_SPOT")
        && err.class() == ErrorClass::Capacity
}

/// The task ARN of a one-task RunTask answer, or its classified failure.
pub fn outcome_of(out: &RunTaskOutput) -> Result<CloudId, Error> {
    if let Some(arn) = out.tasks().first().and_then(|t| t.task_arn()) {
        return Ok(CloudId(arn.to_owned()));
    }
    match out.failures().first() {
        Some(f) => Err(failure_error(f)),
        None => Err(Error::Internal(
            "RunTask returned neither a task nor a failure".into(),
        )),
    }
}

/// The answer to a batched RunTask call: the started task ARNs (sorted, so a
/// replay of the same idempotent call binds the same way) and the classified
/// failures, one per `failures[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchAnswer {
    /// ARNs of the tasks ECS started.
    pub arns: Vec<String>,
    /// One error per task ECS did not start.
    pub failures: Vec<Error>,
}

/// Splits a batched RunTask answer into started tasks and classified failures.
pub fn batch_answer(out: &RunTaskOutput) -> BatchAnswer {
    let mut arns: Vec<String> = out
        .tasks()
        .iter()
        .filter_map(|t| t.task_arn())
        .map(str::to_owned)
        .collect();
    arns.sort();
    arns.dedup();
    let failures = out.failures().iter().map(failure_error).collect();
    BatchAnswer { arns, failures }
}

fn failure_error(f: &aws_sdk_ecs::types::Failure) -> Error {
    let mut reason = f.reason().unwrap_or("no reason given").to_owned();
    if let Some(detail) = f.detail().filter(|d| !d.is_empty()) {
        reason.push_str(": ");
        reason.push_str(detail);
    }
    let class = classify_reason(&reason).unwrap_or(ErrorClass::Transient);
    Error::TaskNotStarted {
        reason,
        arn: f.arn().map(str::to_owned),
        class,
    }
}
