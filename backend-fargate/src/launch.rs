//! RunTask requests (one task per agent: see docs/fargate.md, "Why one task per
//! RunTask call") and the classification of their answers.

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
    let mut env = vec![
        kv("JENKINS_URL", &jenkins.url),
        kv("JENKINS_AGENT_NAME", &agent.agent_name),
        kv("JENKINS_AGENT_WORKDIR", &template.remote_fs),
    ];
    match &jenkins.transport {
        AgentTransport::WebSocket => env.push(kv("JENKINS_WEB_SOCKET", "true")),
        AgentTransport::Tunnel(tunnel) => env.push(kv("JENKINS_TUNNEL", tunnel)),
    }
    if spec.agent_secret == AgentSecretDelivery::Environment {
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
    let token = match placement {
        Placement::Template => agent.client_token.clone(),
        Placement::OnDemandFallback => fallback_token(&agent.client_token),
    };
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let mut input = RunTaskInputBuilder::default()
        .cluster(&spec.cluster)
        .task_definition(task_definition)
        .count(1)
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
        .tags(tag(tags::TEMPLATE, &template.name))
        .tags(tag(tags::AGENT, &agent.agent_name));
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
        Some(f) => {
            let mut reason = f.reason().unwrap_or("no reason given").to_owned();
            if let Some(detail) = f.detail().filter(|d| !d.is_empty()) {
                reason.push_str(": ");
                reason.push_str(detail);
            }
            let class = classify_reason(&reason).unwrap_or(ErrorClass::Transient);
            Err(Error::TaskNotStarted {
                reason,
                arn: f.arn().map(str::to_owned),
                class,
            })
        }
        None => Err(Error::Internal(
            "RunTask returned neither a task nor a failure".into(),
        )),
    }
}
