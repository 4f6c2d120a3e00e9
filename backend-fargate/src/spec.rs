//! The Fargate part of an agent template ([`AgentTemplate::spec`]) and its checks.
//!
//! [`AgentTemplate::spec`]: jenkins_cloud_core::AgentTemplate::spec

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Environment variables the backend sets itself; templates may not set them.
pub const RESERVED_ENV: &[&str] = &[
    "JENKINS_URL",
    "JENKINS_AGENT_NAME",
    "JENKINS_SECRET",
    "JENKINS_WEB_SOCKET",
    "JENKINS_TUNNEL",
    "JENKINS_AGENT_WORKDIR",
];

/// The default agent image.
pub const DEFAULT_IMAGE: &str = "jenkins/inbound-agent:latest-jdk21";

/// The container name in task definitions this backend registers.
pub const DEFAULT_CONTAINER: &str = "agent";

/// Fargate settings of one template, read from [`AgentTemplate::spec`]
/// (snake_case keys, unknown keys refused).
///
/// Either the backend registers and maintains the task definition (`image`,
/// `cpu`, `memory`… given), or `task_definition` names an externally managed
/// one that is used as is (then only the run-time fields below apply).
///
/// [`AgentTemplate::spec`]: jenkins_cloud_core::AgentTemplate::spec
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FargateSpec {
    /// The ECS cluster (name or ARN). Must be one of the backend's clusters.
    pub cluster: String,
    /// An externally managed task definition (`family`, `family:revision` or ARN),
    /// used as is. Excludes every task-definition field.
    pub task_definition: Option<String>,
    /// The agent container's name: default `agent`; required with `task_definition`.
    pub container_name: Option<String>,
    /// The agent image (default `jenkins/inbound-agent:latest-jdk21`).
    pub image: Option<String>,
    /// Task CPU units (256, 512, 1024, 2048, 4096, 8192, 16384).
    pub cpu: Option<u32>,
    /// Task memory in MiB; must fit `cpu` (Fargate's table).
    pub memory: Option<u32>,
    /// `X86_64` (default) or `ARM64`.
    pub cpu_architecture: Option<String>,
    /// `LINUX` (default) or a `WINDOWS_SERVER_*` family.
    pub operating_system: Option<String>,
    /// Fargate platform version (`LATEST`, `1.4.0`…).
    pub platform_version: Option<String>,
    /// Subnet ids (`subnet-…`), 1–16.
    pub subnets: Vec<String>,
    /// Security group ids (`sg-…`), 1–5.
    pub security_groups: Vec<String>,
    /// Give the task a public IP (needed in public subnets without NAT).
    pub assign_public_ip: bool,
    /// IAM role ARN for the agent's own AWS calls.
    pub task_role_arn: Option<String>,
    /// IAM role ARN ECS uses to pull images, read secrets and write logs.
    pub execution_role_arn: Option<String>,
    /// CloudWatch Logs (`awslogs` driver) settings.
    pub logs: Option<AwsLogs>,
    /// Static environment of the agent container (in the task definition).
    pub environment: BTreeMap<String, String>,
    /// Environment variables read by ECS from SSM Parameter Store or Secrets
    /// Manager: name → `valueFrom` ARN. Needs `execution_role_arn`.
    pub secrets: BTreeMap<String, String>,
    /// Ephemeral storage in GiB (21–200; Fargate gives 20 by default).
    pub ephemeral_storage_gib: Option<u32>,
    /// EFS volumes mounted into the agent container.
    pub efs_volumes: Vec<EfsVolume>,
    /// Enable ECS Exec (needs `task_role_arn` with the ssmmessages actions).
    pub enable_execute_command: bool,
    /// Extra tags on tasks and task definitions (keys not starting with
    /// `jenkins-cloud:` or `aws:`).
    pub tags: BTreeMap<String, String>,
    /// Capacity providers with weights; empty means launch type FARGATE.
    pub capacity_providers: Vec<CapacityProvider>,
    /// How the agent gets its Jenkins secret.
    pub agent_secret: AgentSecretDelivery,
    /// Batched launches: one RunTask (`count` ≤ 10) per 10 agents, each task
    /// then bound to its agent by a `jenkins-cloud:agent` tag (TagResource).
    /// The container learns its name from its own task tags, so this needs
    /// `agent_secret: fetched_by_agent` and an entrypoint wrapper (see
    /// docs/fargate.md, "Batched launches"). Default false.
    pub launch_batching: bool,
}

/// `awslogs` log driver settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsLogs {
    /// Log group name.
    pub group: String,
    /// Region of the log group.
    pub region: String,
    /// Stream prefix (streams are `prefix/container/task-id`).
    #[serde(default = "default_stream_prefix")]
    pub stream_prefix: String,
    /// Let ECS create the group (needs `logs:CreateLogGroup` on the execution role).
    #[serde(default)]
    pub create_group: bool,
}

fn default_stream_prefix() -> String {
    "jenkins-agent".to_owned()
}

/// One EFS volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EfsVolume {
    /// Volume name (letters, digits, `-`, `_`).
    pub name: String,
    /// The file system (`fs-…`).
    pub file_system_id: String,
    /// Directory of the file system to mount (default `/`).
    #[serde(default)]
    pub root_directory: Option<String>,
    /// Where the container sees it (absolute path).
    pub container_path: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
    /// TLS between task and EFS (required with an access point). Default true.
    #[serde(default = "yes")]
    pub transit_encryption: bool,
    /// EFS access point (`fsap-…`).
    #[serde(default)]
    pub access_point_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// A capacity provider and its share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityProvider {
    /// `FARGATE` or `FARGATE_SPOT`.
    pub provider: String,
    /// Relative share (0–1000).
    #[serde(default = "one")]
    pub weight: u32,
    /// Tasks placed here first (0–100000).
    #[serde(default)]
    pub base: u32,
}

fn one() -> u32 {
    1
}

/// How the agent learns its Jenkins secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentSecretDelivery {
    /// `JENKINS_SECRET` as a container override: simple, works with the stock
    /// image, but readable by anyone allowed `ecs:DescribeTasks`.
    #[default]
    Environment,
    /// No secret in the task: the image's entrypoint fetches
    /// `{JENKINS_URL}computer/{JENKINS_AGENT_NAME}/jenkins-agent.jnlp` with a
    /// connect-only credential given through `secrets` (see docs/fargate.md).
    FetchedByAgent,
}

/// The serde error `whole` of a spec, split by key: each key of the object
/// read on its own (every field has a default), so each bad key is named.
fn field_errors(value: &serde_json::Value, whole: serde_json::Error) -> Vec<String> {
    let Some(obj) = value.as_object() else {
        return vec![format!("spec: {whole}")];
    };
    let problems: Vec<String> = obj
        .iter()
        .filter_map(|(key, v)| {
            let one = serde_json::Value::Object([(key.clone(), v.clone())].into_iter().collect());
            serde_json::from_value::<FargateSpec>(one).err().map(|e| {
                // An unknown key is named by serde's message itself.
                if e.to_string().starts_with("unknown field") {
                    format!("spec: {e}")
                } else {
                    format!("spec.{key}: {e}")
                }
            })
        })
        .collect();
    if problems.is_empty() {
        vec![format!("spec: {whole}")]
    } else {
        problems
    }
}

/// Memory sizes (MiB) Fargate allows for a CPU size, per the ECS developer guide.
pub fn allowed_memory(cpu: u32) -> Option<Vec<u32>> {
    let range = |from: u32, to: u32, step: u32| (from..=to).step_by(step as usize).collect();
    Some(match cpu {
        256 => vec![512, 1024, 2048],
        512 => range(1024, 4096, 1024),
        1024 => range(2048, 8192, 1024),
        2048 => range(4096, 16384, 1024),
        4096 => range(8192, 30720, 1024),
        8192 => range(16384, 61440, 4096),
        16384 => range(32768, 122880, 8192),
        _ => return None,
    })
}

const OS_FAMILIES: &[&str] = &[
    "LINUX",
    "WINDOWS_SERVER_2019_CORE",
    "WINDOWS_SERVER_2019_FULL",
    "WINDOWS_SERVER_2022_CORE",
    "WINDOWS_SERVER_2022_FULL",
];

impl FargateSpec {
    /// Reads a spec from a template's JSON value: every problem, naming `spec.<field>`.
    ///
    /// A value of the wrong type is named by its key (for `memory: -1`, the
    /// problem starts with `spec.memory:`), every such key at once; an unknown
    /// key is named in the message of a problem starting with `spec:`.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, Vec<String>> {
        let spec: Self =
            serde_json::from_value(value.clone()).map_err(|e| field_errors(value, e))?;
        let problems = spec.problems();
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(problems)
        }
    }

    /// Whether the task definition is managed outside this backend.
    pub fn is_external(&self) -> bool {
        self.task_definition.is_some()
    }

    /// The name of the container that runs the agent.
    pub fn container(&self) -> &str {
        self.container_name.as_deref().unwrap_or(DEFAULT_CONTAINER)
    }

    /// The image, defaulted.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or(DEFAULT_IMAGE)
    }

    /// The OS family, defaulted.
    pub fn os(&self) -> &str {
        self.operating_system.as_deref().unwrap_or("LINUX")
    }

    /// The CPU architecture, defaulted.
    pub fn arch(&self) -> &str {
        self.cpu_architecture.as_deref().unwrap_or("X86_64")
    }

    /// Every problem with this spec, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.cluster.trim().is_empty() {
            p.push("spec.cluster: required (the ECS cluster name or ARN)".to_owned());
        }
        self.check_network(&mut p);
        self.check_runtime(&mut p);
        if self.launch_batching && self.agent_secret != AgentSecretDelivery::FetchedByAgent {
            p.push("spec.launch_batching: needs spec.agent_secret: fetched_by_agent (batched tasks share their overrides, so no per-agent name or secret can be in them; the agent reads its name from its task tags)".to_owned());
        }
        if self.is_external() {
            self.check_external(&mut p);
        } else {
            self.check_task_definition(&mut p);
        }
        p
    }

    fn check_network(&self, p: &mut Vec<String>) {
        if self.subnets.is_empty() {
            p.push("spec.subnets: at least one subnet is required (awsvpc networking)".to_owned());
        } else if self.subnets.len() > 16 {
            p.push(format!(
                "spec.subnets: at most 16 subnets, got {}",
                self.subnets.len()
            ));
        }
        for (i, s) in self.subnets.iter().enumerate() {
            if !is_aws_id(s, "subnet-") {
                p.push(format!(
                    "spec.subnets[{i}]: `{s}` is not a subnet id (subnet-…)"
                ));
            }
        }
        if self.security_groups.is_empty() {
            p.push(
                "spec.security_groups: at least one security group is required (awsvpc networking)"
                    .to_owned(),
            );
        } else if self.security_groups.len() > 5 {
            p.push(format!(
                "spec.security_groups: at most 5, got {}",
                self.security_groups.len()
            ));
        }
        for (i, s) in self.security_groups.iter().enumerate() {
            if !is_aws_id(s, "sg-") {
                p.push(format!(
                    "spec.security_groups[{i}]: `{s}` is not a security group id (sg-…)"
                ));
            }
        }
    }

    fn check_runtime(&self, p: &mut Vec<String>) {
        if let Some(name) = &self.container_name {
            if name.is_empty()
                || name.len() > 255
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                p.push(format!(
                    "spec.container_name: `{name}` must be 1–255 letters, digits, - or _"
                ));
            }
        } else if self.is_external() {
            p.push("spec.container_name: required with spec.task_definition (the container that runs the agent)".to_owned());
        }
        if let Some(v) = &self.platform_version {
            let ok = v == "LATEST"
                || v.split('.').count() == 3 && v.split('.').all(|n| n.parse::<u32>().is_ok());
            if !ok {
                p.push(format!(
                    "spec.platform_version: `{v}` is not LATEST or a version like 1.4.0"
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, cp) in self.capacity_providers.iter().enumerate() {
            if cp.provider != "FARGATE" && cp.provider != "FARGATE_SPOT" {
                p.push(format!(
                    "spec.capacity_providers[{i}].provider: `{}` is not FARGATE or FARGATE_SPOT",
                    cp.provider
                ));
            }
            if !seen.insert(cp.provider.clone()) {
                p.push(format!(
                    "spec.capacity_providers[{i}].provider: `{}` is listed twice",
                    cp.provider
                ));
            }
            if cp.weight > 1000 {
                p.push(format!(
                    "spec.capacity_providers[{i}].weight: {} is above 1000",
                    cp.weight
                ));
            }
            if cp.base > 100_000 {
                p.push(format!(
                    "spec.capacity_providers[{i}].base: {} is above 100000",
                    cp.base
                ));
            }
        }
        if !self.capacity_providers.is_empty()
            && self.capacity_providers.iter().all(|c| c.weight == 0)
        {
            p.push(
                "spec.capacity_providers: at least one provider needs a weight above 0".to_owned(),
            );
        }
        if self
            .capacity_providers
            .iter()
            .filter(|c| c.base > 0)
            .count()
            > 1
        {
            p.push("spec.capacity_providers: only one provider may have a base".to_owned());
        }
        if self.enable_execute_command && self.task_role_arn.is_none() && !self.is_external() {
            p.push("spec.enable_execute_command: needs spec.task_role_arn (a role allowed the ssmmessages actions)".to_owned());
        }
        if self.tags.len() > 45 {
            p.push(format!(
                "spec.tags: at most 45 tags (ECS allows 50, the backend adds its own), got {}",
                self.tags.len()
            ));
        }
        for (k, v) in &self.tags {
            let lower = k.to_ascii_lowercase();
            if lower.starts_with("aws:") || lower.starts_with("jenkins-cloud:") {
                p.push(format!(
                    "spec.tags.{k}: keys starting with aws: or jenkins-cloud: are reserved"
                ));
            } else if k.is_empty() || k.len() > 128 {
                p.push(format!("spec.tags.{k}: keys must be 1–128 characters"));
            }
            if v.len() > 256 {
                p.push(format!("spec.tags.{k}: values are at most 256 characters"));
            }
        }
    }

    fn check_external(&self, p: &mut Vec<String>) {
        let owned: [(&str, bool); 12] = [
            ("image", self.image.is_some()),
            ("cpu", self.cpu.is_some()),
            ("memory", self.memory.is_some()),
            ("cpu_architecture", self.cpu_architecture.is_some()),
            ("operating_system", self.operating_system.is_some()),
            ("task_role_arn", self.task_role_arn.is_some()),
            ("execution_role_arn", self.execution_role_arn.is_some()),
            ("logs", self.logs.is_some()),
            ("environment", !self.environment.is_empty()),
            ("secrets", !self.secrets.is_empty()),
            (
                "ephemeral_storage_gib",
                self.ephemeral_storage_gib.is_some(),
            ),
            ("efs_volumes", !self.efs_volumes.is_empty()),
        ];
        for (field, set) in owned {
            if set {
                p.push(format!("spec.{field}: not allowed with spec.task_definition (an external task definition is used as is)"));
            }
        }
        if self
            .task_definition
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            p.push("spec.task_definition: must not be empty".to_owned());
        }
    }

    fn check_task_definition(&self, p: &mut Vec<String>) {
        let image = self.image();
        if image.trim().is_empty() || image.chars().any(char::is_whitespace) || image.len() > 255 {
            p.push(format!("spec.image: `{image}` is not an image reference"));
        }
        if image.contains(".dkr.ecr.") && self.execution_role_arn.is_none() {
            p.push("spec.execution_role_arn: required to pull a private ECR image".to_owned());
        }
        if !OS_FAMILIES.contains(&self.os()) {
            p.push(format!(
                "spec.operating_system: `{}` is not one of {}",
                self.os(),
                OS_FAMILIES.join(", ")
            ));
        }
        let windows = self.os().starts_with("WINDOWS");
        match self.arch() {
            "X86_64" => {}
            "ARM64" if windows => p.push("spec.cpu_architecture: ARM64 is Linux only".to_owned()),
            "ARM64" => {}
            other => p.push(format!(
                "spec.cpu_architecture: `{other}` is not X86_64 or ARM64"
            )),
        }
        self.check_size(windows, p);
        let old_platform = self
            .platform_version
            .as_deref()
            .is_some_and(|v| v != "LATEST" && version_below(v, (1, 4, 0)));
        if old_platform {
            if self.ephemeral_storage_gib.is_some() {
                p.push(
                    "spec.ephemeral_storage_gib: needs platform version 1.4.0 or later".to_owned(),
                );
            }
            if !self.efs_volumes.is_empty() {
                p.push("spec.efs_volumes: needs platform version 1.4.0 or later".to_owned());
            }
        }
        for (field, arn) in [
            ("task_role_arn", &self.task_role_arn),
            ("execution_role_arn", &self.execution_role_arn),
        ] {
            if let Some(arn) = arn {
                if !(arn.starts_with("arn:aws") && arn.contains(":iam::") && arn.contains(":role/"))
                {
                    p.push(format!("spec.{field}: `{arn}` is not an IAM role ARN"));
                }
            }
        }
        if let Some(logs) = &self.logs {
            if logs.group.is_empty() || logs.group.len() > 512 {
                p.push("spec.logs.group: must be 1–512 characters".to_owned());
            }
            if logs.region.is_empty() {
                p.push("spec.logs.region: required".to_owned());
            }
            if logs.stream_prefix.is_empty()
                || logs.stream_prefix.contains(':')
                || logs.stream_prefix.contains('*')
            {
                p.push("spec.logs.stream_prefix: must be non-empty, without : or *".to_owned());
            }
            if self.execution_role_arn.is_none() {
                p.push(
                    "spec.execution_role_arn: required by spec.logs (ECS writes the logs with it)"
                        .to_owned(),
                );
            }
        }
        for (k, v) in &self.environment {
            check_env_name("environment", k, p);
            if v.len() > 32 * 1024 {
                p.push(format!("spec.environment.{k}: value too long"));
            }
        }
        for (k, v) in &self.secrets {
            check_env_name("secrets", k, p);
            if self.environment.contains_key(k) {
                p.push(format!("spec.secrets.{k}: also set in spec.environment"));
            }
            if !(v.starts_with("arn:aws")
                && (v.contains(":ssm:") || v.contains(":secretsmanager:")))
                && !v.starts_with('/')
            {
                p.push(format!(
                    "spec.secrets.{k}: `{v}` is not an SSM parameter or Secrets Manager ARN"
                ));
            }
        }
        if !self.secrets.is_empty() && self.execution_role_arn.is_none() {
            p.push(
                "spec.execution_role_arn: required by spec.secrets (ECS reads them with it)"
                    .to_owned(),
            );
        }
        if let Some(gib) = self.ephemeral_storage_gib {
            if !(21..=200).contains(&gib) {
                p.push(format!(
                    "spec.ephemeral_storage_gib: {gib} is outside 21–200"
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, v) in self.efs_volumes.iter().enumerate() {
            let at = format!("spec.efs_volumes[{i}]");
            if v.name.is_empty()
                || !v
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                p.push(format!(
                    "{at}.name: `{}` must be letters, digits, - or _",
                    v.name
                ));
            } else if !names.insert(v.name.clone()) {
                p.push(format!("{at}.name: `{}` is used twice", v.name));
            }
            if !is_aws_id(&v.file_system_id, "fs-") {
                p.push(format!(
                    "{at}.file_system_id: `{}` is not an EFS id (fs-…)",
                    v.file_system_id
                ));
            }
            if !v.container_path.starts_with('/') {
                p.push(format!(
                    "{at}.container_path: `{}` must be absolute",
                    v.container_path
                ));
            }
            if let Some(ap) = &v.access_point_id {
                if !is_aws_id(ap, "fsap-") {
                    p.push(format!(
                        "{at}.access_point_id: `{ap}` is not an access point id (fsap-…)"
                    ));
                }
                if !v.transit_encryption {
                    p.push(format!(
                        "{at}.transit_encryption: must be true with an access point"
                    ));
                }
                if v.root_directory.as_deref().is_some_and(|d| d != "/") {
                    p.push(format!(
                        "{at}.root_directory: must be / or unset with an access point"
                    ));
                }
            }
        }
    }

    fn check_size(&self, windows: bool, p: &mut Vec<String>) {
        match (self.cpu, self.memory) {
            (None, _) => p.push("spec.cpu: required (CPU units: 256, 512, 1024, 2048, 4096, 8192 or 16384)".to_owned()),
            (_, None) => p.push("spec.memory: required (MiB, within Fargate's range for spec.cpu)".to_owned()),
            (Some(cpu), Some(memory)) => match allowed_memory(cpu) {
                None => p.push(format!("spec.cpu: {cpu} is not a Fargate size (256, 512, 1024, 2048, 4096, 8192, 16384)")),
                Some(allowed) => {
                    if !allowed.contains(&memory) {
                        let (lo, hi) = (allowed[0], allowed[allowed.len() - 1]);
                        p.push(format!(
                            "spec.memory: {memory} MiB is not allowed with cpu {cpu} (allowed: {})",
                            if allowed.len() <= 3 {
                                allowed.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                            } else {
                                format!("{lo}–{hi} in steps of {}", allowed[1] - allowed[0])
                            }
                        ));
                    }
                    if windows && !(1024..=4096).contains(&cpu) {
                        p.push(format!("spec.cpu: {cpu} is not allowed on Windows (1024–4096 only)"));
                    }
                    if cpu >= 8192
                        && self.platform_version.as_deref().is_some_and(|v| v != "LATEST" && version_below(v, (1, 4, 0)))
                    {
                        p.push(format!("spec.cpu: {cpu} needs platform version 1.4.0 or later"));
                    }
                }
            },
        }
    }
}

fn check_env_name(field: &str, k: &str, p: &mut Vec<String>) {
    if RESERVED_ENV.contains(&k) {
        p.push(format!("spec.{field}.{k}: set by the backend; remove it"));
    } else if k.is_empty()
        || k.starts_with(|c: char| c.is_ascii_digit())
        || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        p.push(format!(
            "spec.{field}.{k}: not a valid environment variable name"
        ));
    }
}

fn is_aws_id(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 32 && rest.chars().all(|c| c.is_ascii_hexdigit())
    })
}

fn version_below(v: &str, min: (u32, u32, u32)) -> bool {
    let parts: Vec<u32> = v.split('.').filter_map(|n| n.parse().ok()).collect();
    match parts.as_slice() {
        [a, b, c] => (*a, *b, *c) < min,
        _ => false,
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
