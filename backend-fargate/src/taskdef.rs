//! Task definitions: one family per template, a new revision only when the
//! template changed (content hash kept as a tag), and deregistration of the
//! revisions this backend registered that are no longer current.

use std::collections::HashMap;

use aws_sdk_ecs::operation::deregister_task_definition::builders::DeregisterTaskDefinitionInputBuilder;
use aws_sdk_ecs::operation::describe_task_definition::builders::DescribeTaskDefinitionInputBuilder;
use aws_sdk_ecs::operation::list_task_definitions::builders::ListTaskDefinitionsInputBuilder;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionInputBuilder;
use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, CpuArchitecture, EfsAuthorizationConfig,
    EfsTransitEncryption, EfsVolumeConfiguration, EphemeralStorage, KeyValuePair, LogConfiguration,
    LogDriver, MountPoint, NetworkMode, OsFamily, RuntimePlatform, Tag, TaskDefinitionField,
    TaskDefinitionStatus, Volume,
};
use jenkins_cloud_core::backend::{tags, OwnerId};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::api::{ApiError, EcsApi};
use crate::error::Error;
use crate::spec::{AwsLogs, EfsVolume, FargateSpec};

/// Tag holding the content hash of a task definition this backend registered.
pub const HASH_TAG: &str = "jenkins-cloud:spec-hash";

/// Version of the content model: bump when [`register_input`] changes meaning.
const MODEL_VERSION: &str = "jenkins-cloud-fargate/1";

/// The task-definition family of a template.
pub fn family(prefix: &str, owner: &OwnerId, template: &str) -> String {
    format!("{prefix}-{owner}-{template}")
}

/// The part of a spec that goes into the task definition: hashed as is.
#[derive(Serialize)]
struct Content<'a> {
    version: &'static str,
    family: &'a str,
    container: &'a str,
    image: &'a str,
    cpu: Option<u32>,
    memory: Option<u32>,
    arch: &'a str,
    os: &'a str,
    task_role_arn: &'a Option<String>,
    execution_role_arn: &'a Option<String>,
    logs: &'a Option<AwsLogs>,
    environment: &'a std::collections::BTreeMap<String, String>,
    secrets: &'a std::collections::BTreeMap<String, String>,
    ephemeral_storage_gib: Option<u32>,
    efs_volumes: &'a [EfsVolume],
    tags: &'a std::collections::BTreeMap<String, String>,
}

/// Hex SHA-256 of everything that shapes the task definition of `spec`.
pub fn content_hash(family: &str, spec: &FargateSpec) -> String {
    let content = Content {
        version: MODEL_VERSION,
        family,
        container: spec.container(),
        image: spec.image(),
        cpu: spec.cpu,
        memory: spec.memory,
        arch: spec.arch(),
        os: spec.os(),
        task_role_arn: &spec.task_role_arn,
        execution_role_arn: &spec.execution_role_arn,
        logs: &spec.logs,
        environment: &spec.environment,
        secrets: &spec.secrets,
        ephemeral_storage_gib: spec.ephemeral_storage_gib,
        efs_volumes: &spec.efs_volumes,
        tags: &spec.tags,
    };
    let json = serde_json::to_vec(&content).expect("task definition content serialises");
    hex::encode(Sha256::digest(json))
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The RegisterTaskDefinition request for `spec` (validated beforehand).
pub fn register_input(
    family: &str,
    hash: &str,
    owner: &OwnerId,
    template: &str,
    spec: &FargateSpec,
) -> Result<RegisterTaskDefinitionInputBuilder, Error> {
    let memory = spec.memory.unwrap_or_default();
    let mut container = ContainerDefinition::builder()
        .name(spec.container())
        .image(spec.image())
        .essential(true)
        // Fargate needs only the task size; a container limit equal to it is
        // harmless and some emulators insist on one.
        .memory(memory as i32);
    for (k, v) in &spec.environment {
        container = container.environment(KeyValuePair::builder().name(k).value(v).build());
    }
    for (k, v) in &spec.secrets {
        let secret = aws_sdk_ecs::types::Secret::builder()
            .name(k)
            .value_from(v)
            .build()
            .map_err(|e| Error::Internal(format!("secret {k}: {e}")))?;
        container = container.secrets(secret);
    }
    if let Some(logs) = &spec.logs {
        let mut cfg = LogConfiguration::builder()
            .log_driver(LogDriver::Awslogs)
            .options("awslogs-group", &logs.group)
            .options("awslogs-region", &logs.region)
            .options("awslogs-stream-prefix", &logs.stream_prefix);
        if logs.create_group {
            cfg = cfg.options("awslogs-create-group", "true");
        }
        container = container.log_configuration(
            cfg.build()
                .map_err(|e| Error::Internal(format!("log configuration: {e}")))?,
        );
    }
    let mut input = RegisterTaskDefinitionInputBuilder::default()
        .family(family)
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu(spec.cpu.unwrap_or_default().to_string())
        .memory(memory.to_string())
        .runtime_platform(
            RuntimePlatform::builder()
                .cpu_architecture(CpuArchitecture::from(spec.arch()))
                .operating_system_family(OsFamily::from(spec.os()))
                .build(),
        )
        .tags(tag(tags::OWNER, owner.as_str()))
        .tags(tag(tags::TEMPLATE, template))
        .tags(tag(HASH_TAG, hash));
    for (k, v) in &spec.tags {
        input = input.tags(tag(k, v));
    }
    if let Some(arn) = &spec.task_role_arn {
        input = input.task_role_arn(arn);
    }
    if let Some(arn) = &spec.execution_role_arn {
        input = input.execution_role_arn(arn);
    }
    if let Some(gib) = spec.ephemeral_storage_gib {
        input =
            input.ephemeral_storage(EphemeralStorage::builder().size_in_gib(gib as i32).build());
    }
    for v in &spec.efs_volumes {
        let mut efs = EfsVolumeConfiguration::builder()
            .file_system_id(&v.file_system_id)
            .transit_encryption(if v.transit_encryption {
                EfsTransitEncryption::Enabled
            } else {
                EfsTransitEncryption::Disabled
            });
        if let Some(dir) = &v.root_directory {
            efs = efs.root_directory(dir);
        }
        if let Some(ap) = &v.access_point_id {
            efs = efs.authorization_config(
                EfsAuthorizationConfig::builder()
                    .access_point_id(ap)
                    .build(),
            );
        }
        let efs = efs
            .build()
            .map_err(|e| Error::Internal(format!("EFS volume {}: {e}", v.name)))?;
        input = input.volumes(
            Volume::builder()
                .name(&v.name)
                .efs_volume_configuration(efs)
                .build(),
        );
        container = container.mount_points(
            MountPoint::builder()
                .source_volume(&v.name)
                .container_path(&v.container_path)
                .read_only(v.read_only)
                .build(),
        );
    }
    Ok(input.container_definitions(container.build()))
}

/// The family of a task-definition ARN (`…:task-definition/FAMILY:REV`).
pub fn family_of_arn(arn: &str) -> Option<&str> {
    let tail = arn.rsplit_once("task-definition/")?.1;
    Some(tail.rsplit_once(':').map_or(tail, |(family, _)| family))
}

fn not_found(err: &ApiError) -> bool {
    err.code.as_deref() == Some("ClientException")
        && err.message.contains("Unable to describe task definition")
}

/// Resolves templates to task-definition ARNs, registering and cleaning up.
#[derive(Debug, Default)]
pub struct TaskDefinitions {
    /// template name → (content hash, ARN) known to be current.
    cache: Mutex<HashMap<String, (String, String)>>,
}

impl TaskDefinitions {
    /// The ARN to run for `template`, registering a new revision only when the
    /// content hash changed, and deregistering our stale revisions after that.
    pub async fn resolve(
        &self,
        api: &dyn EcsApi,
        prefix: &str,
        owner: &OwnerId,
        template: &str,
        spec: &FargateSpec,
    ) -> Result<String, Error> {
        if let Some(external) = &spec.task_definition {
            return Ok(external.clone());
        }
        let family = family(prefix, owner, template);
        let hash = content_hash(&family, spec);
        // Held across the calls: one registration per template at a time.
        let mut cache = self.cache.lock().await;
        if let Some((cached_hash, arn)) = cache.get(template) {
            if *cached_hash == hash {
                return Ok(arn.clone());
            }
        }
        let latest = api
            .describe_task_definition(
                DescribeTaskDefinitionInputBuilder::default()
                    .task_definition(&family)
                    .include(TaskDefinitionField::Tags),
            )
            .await;
        let reusable = match latest {
            Ok(out) => {
                let tags = out.tags();
                let has = |k: &str, v: &str| {
                    tags.iter()
                        .any(|t| t.key() == Some(k) && t.value() == Some(v))
                };
                out.task_definition()
                    .filter(|td| td.status() == Some(&TaskDefinitionStatus::Active))
                    .filter(|_| has(tags::OWNER, owner.as_str()) && has(HASH_TAG, &hash))
                    .and_then(|td| td.task_definition_arn().map(str::to_owned))
            }
            Err(err) if not_found(&err) => None,
            Err(err) => return Err(err.into()),
        };
        let arn = match reusable {
            Some(arn) => {
                tracing::debug!(%family, %arn, "reusing task definition");
                arn
            }
            None => {
                let out = api
                    .register_task_definition(register_input(
                        &family, &hash, owner, template, spec,
                    )?)
                    .await?;
                let arn = out
                    .task_definition()
                    .and_then(|td| td.task_definition_arn())
                    .ok_or_else(|| {
                        Error::Internal("RegisterTaskDefinition returned no ARN".into())
                    })?
                    .to_owned();
                tracing::info!(%family, %arn, "registered task definition");
                arn
            }
        };
        cache.insert(template.to_owned(), (hash, arn.clone()));
        drop(cache);
        if let Err(err) = deregister_stale(api, &family, owner, &arn).await {
            tracing::warn!(%family, error = %err, "could not deregister stale task definitions");
        }
        Ok(arn)
    }
}

/// Deregisters the ACTIVE revisions of `family` carrying our owner tag, except `current`.
/// Returns how many were deregistered.
pub async fn deregister_stale(
    api: &dyn EcsApi,
    family: &str,
    owner: &OwnerId,
    current: &str,
) -> Result<usize, ApiError> {
    let mut arns = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = api
            .list_task_definitions(
                ListTaskDefinitionsInputBuilder::default()
                    .family_prefix(family)
                    .status(TaskDefinitionStatus::Active)
                    .set_next_token(next.take()),
            )
            .await?;
        // familyPrefix is a prefix on AWS: keep only this exact family.
        arns.extend(
            out.task_definition_arns()
                .iter()
                .filter(|arn| family_of_arn(arn) == Some(family) && arn.as_str() != current)
                .cloned(),
        );
        match out.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => break,
        }
    }
    let mut done = 0;
    for arn in arns {
        let out = api
            .describe_task_definition(
                DescribeTaskDefinitionInputBuilder::default()
                    .task_definition(&arn)
                    .include(TaskDefinitionField::Tags),
            )
            .await?;
        let ours = out
            .tags()
            .iter()
            .any(|t| t.key() == Some(tags::OWNER) && t.value() == Some(owner.as_str()));
        if ours {
            api.deregister_task_definition(
                DeregisterTaskDefinitionInputBuilder::default().task_definition(&arn),
            )
            .await?;
            tracing::info!(%arn, "deregistered stale task definition");
            done += 1;
        }
    }
    Ok(done)
}
