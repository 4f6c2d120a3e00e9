//! The EC2 part of an agent template (`AgentTemplate::spec`), and its validation.
//!
//! ```json
//! {
//!   "ami": {"name": "al2023-ami-2023.*-x86_64", "owners": ["amazon"]},
//!   "instance_types": ["m6i.large", "m5.large"],
//!   "subnets": ["subnet-0a", "subnet-0b"],
//!   "security_groups": ["sg-01", "jenkins-agents"],
//!   "platform": "linux",
//!   "instance_profile": "jenkins-agent",
//!   "root_volume": {"size_gib": 100, "volume_type": "gp3", "encrypted": true},
//!   "spot": {"max_price": "0.05", "fallback_to_on_demand": true},
//!   "tags": {"team": "ci"},
//!   "warm_pool": true,
//!   "warm_pool_max": 10
//! }
//! ```

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How the launch finds its AMI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum AmiSelector {
    /// A fixed image id.
    Id {
        /// `ami-…`
        id: String,
    },
    /// The newest image (by creation date) whose name matches `name`
    /// (wildcards `*` and `?`), owned by one of `owners`.
    Filter {
        /// Name pattern, as for DescribeImages' `name` filter.
        name: String,
        /// Owner account ids or aliases (`amazon`, `self`…); at least one.
        owners: Vec<String>,
        /// Optional architecture filter (`x86_64`, `arm64`).
        #[serde(default)]
        architecture: Option<String>,
    },
    /// The image id stored in an SSM parameter (for example
    /// `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`).
    SsmParameter {
        /// The parameter name.
        ssm_parameter: String,
    },
}

/// Spot settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpotSpec {
    /// Highest hourly price in USD (a decimal string); `None`: the on-demand price.
    #[serde(default)]
    pub max_price: Option<String>,
    /// Launch on-demand when no spot capacity is found (the request then carries
    /// no spot options at all). Default `true`.
    #[serde(default = "yes")]
    pub fallback_to_on_demand: bool,
}

/// Instance metadata service options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataSpec {
    /// Require IMDSv2 session tokens. Default `true`.
    #[serde(default = "yes")]
    pub require_tokens: bool,
    /// PUT response hop limit, 1–64. Default 1; use 2 when containers on the
    /// agent must reach the metadata service.
    #[serde(default = "one")]
    pub hop_limit: i32,
}

impl Default for MetadataSpec {
    fn default() -> Self {
        Self {
            require_tokens: true,
            hop_limit: 1,
        }
    }
}

/// Root EBS volume settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RootVolumeSpec {
    /// Device name; default: the AMI's root device name.
    #[serde(default)]
    pub device_name: Option<String>,
    /// Size in GiB.
    #[serde(default)]
    pub size_gib: Option<i32>,
    /// `gp3`, `gp2`, `io1`, `io2`, `st1`, `sc1`, `standard`.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Provisioned IOPS (gp3, io1, io2).
    #[serde(default)]
    pub iops: Option<i32>,
    /// Throughput in MiB/s (gp3).
    #[serde(default)]
    pub throughput: Option<i32>,
    /// Encrypt the volume.
    #[serde(default)]
    pub encrypted: Option<bool>,
    /// KMS key for encryption.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

/// How the agent's inbound secret reaches the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecretDelivery {
    /// A SecureString SSM parameter per agent (`/jenkins-cloud/<owner>/<agent>`),
    /// read by the instance role and deleted when the agent goes. The default.
    #[default]
    Ssm,
    /// In the user data. Anyone allowed `ec2:DescribeInstanceAttribute` can read
    /// it; no SSM permissions needed. Not allowed with `warm_pool`.
    UserData,
}

/// The operating system of the agent instances: picks the default user data
/// template and how placeholders are quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Linux: bash user data, systemd service, POSIX shell quoting.
    #[default]
    Linux,
    /// Windows Server with EC2Launch v2: PowerShell user data, a scheduled
    /// task, PowerShell quoting.
    Windows,
}

impl Platform {
    /// The platform of an AMI from DescribeImages' `Platform` field: AWS sets
    /// it to `windows` for Windows AMIs and leaves it blank otherwise
    /// (<https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Image.html>).
    pub fn of_image(platform: Option<&str>) -> Self {
        match platform {
            Some(p) if p.eq_ignore_ascii_case("windows") => Platform::Windows,
            _ => Platform::Linux,
        }
    }

    /// `linux` or `windows`.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Windows => "windows",
        }
    }
}

/// The EC2 backend's template spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Spec {
    /// Where the AMI comes from.
    pub ami: AmiSelector,
    /// Instance types, tried in order on capacity errors. At least one.
    pub instance_types: Vec<String>,
    /// Subnets; launches are spread across them and fall back to the next on
    /// capacity errors. Empty: the default VPC.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Security groups: ids (`sg-…`) are used as they are; any other entry is
    /// a group name, resolved at launch to the id of the group of that name in
    /// the VPC of the first subnet (names need `subnets`).
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// `linux` or `windows`; absent: taken from the AMI (DescribeImages says
    /// `windows` for Windows AMIs), Linux otherwise.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Instance profile name or ARN (needed for the SSM secret delivery).
    #[serde(default)]
    pub instance_profile: Option<String>,
    /// EC2 key pair name (for SSH debugging; not needed by the agent).
    #[serde(default)]
    pub key_name: Option<String>,
    /// Instance metadata options.
    #[serde(default)]
    pub metadata: MetadataSpec,
    /// Root volume overrides.
    #[serde(default)]
    pub root_volume: Option<RootVolumeSpec>,
    /// Extra tags on instances, volumes and network interfaces.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Spot instead of on-demand.
    #[serde(default)]
    pub spot: Option<SpotSpec>,
    /// Stop instead of terminate, and reuse stopped instances of the same
    /// template for new agents.
    #[serde(default)]
    pub warm_pool: bool,
    /// Most stopped instances kept per template in the warm pool (≥ 1; only
    /// with `warm_pool: true`). Default [`DEFAULT_WARM_POOL_MAX`]. Not part of
    /// the launch fingerprint: changing it does not make pooled instances stale.
    #[serde(default)]
    pub warm_pool_max: Option<u32>,
    /// How the agent secret is delivered.
    #[serde(default)]
    pub secret_delivery: SecretDelivery,
    /// A user data template replacing the default one (see `docs/ec2.md`).
    #[serde(default)]
    pub user_data_template: Option<String>,
}

fn yes() -> bool {
    true
}

fn one() -> i32 {
    1
}

/// `warm_pool_max` when the spec leaves it out.
pub const DEFAULT_WARM_POOL_MAX: u32 = 10;

const VOLUME_TYPES: &[&str] = &["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"];
const FIELDS: &[&str] = &[
    "ami",
    "instance_types",
    "subnets",
    "security_groups",
    "platform",
    "instance_profile",
    "key_name",
    "metadata",
    "root_volume",
    "tags",
    "spot",
    "warm_pool",
    "warm_pool_max",
    "secret_delivery",
    "user_data_template",
];

fn check_field<T: DeserializeOwned>(
    key: &str,
    value: &serde_json::Value,
    errors: &mut Vec<String>,
) {
    if let Err(e) = serde_json::from_value::<T>(value.clone()) {
        errors.push(format!("spec.{key}: {e}"));
    }
}

/// Whether a tag key is readable through instance metadata tags.
fn imds_tag_key_ok(key: &str) -> bool {
    !key.is_empty()
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-=._:@,".contains(c))
}

impl Ec2Spec {
    /// The most stopped instances this template keeps: `warm_pool_max` (default
    /// [`DEFAULT_WARM_POOL_MAX`]) with `warm_pool`, 0 without.
    pub fn warm_pool_bound(&self) -> usize {
        if self.warm_pool {
            self.warm_pool_max.unwrap_or(DEFAULT_WARM_POOL_MAX) as usize
        } else {
            0
        }
    }

    /// Parses and checks a template spec; every problem at once, each naming its field.
    pub fn parse(spec: &serde_json::Value) -> Result<Self, Vec<String>> {
        let Some(obj) = spec.as_object() else {
            return Err(vec!["spec: must be an object".into()]);
        };
        let mut errors = Vec::new();
        for key in obj.keys() {
            if !FIELDS.contains(&key.as_str()) {
                errors.push(format!(
                    "spec.{key}: unknown field (expected one of {})",
                    FIELDS.join(", ")
                ));
            }
        }
        for field in ["ami", "instance_types"] {
            if !obj.contains_key(field) {
                errors.push(format!("spec.{field}: missing"));
            }
        }
        for (key, value) in obj {
            match key.as_str() {
                "ami" => check_field::<AmiSelector>(key, value, &mut errors),
                "instance_types" | "subnets" | "security_groups" => {
                    check_field::<Vec<String>>(key, value, &mut errors)
                }
                "instance_profile" | "key_name" | "user_data_template" => {
                    check_field::<Option<String>>(key, value, &mut errors)
                }
                "metadata" => check_field::<MetadataSpec>(key, value, &mut errors),
                "root_volume" => check_field::<Option<RootVolumeSpec>>(key, value, &mut errors),
                "tags" => check_field::<BTreeMap<String, String>>(key, value, &mut errors),
                "spot" => check_field::<Option<SpotSpec>>(key, value, &mut errors),
                "warm_pool" => check_field::<bool>(key, value, &mut errors),
                "warm_pool_max" => check_field::<Option<u32>>(key, value, &mut errors),
                "secret_delivery" => check_field::<SecretDelivery>(key, value, &mut errors),
                "platform" => check_field::<Option<Platform>>(key, value, &mut errors),
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let parsed: Ec2Spec =
            serde_json::from_value(spec.clone()).map_err(|e| vec![format!("spec: {e}")])?;
        parsed.check(&mut errors);
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(errors)
        }
    }
}

mod validate;

#[cfg(test)]
mod tests;
