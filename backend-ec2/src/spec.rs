//! The EC2 part of an agent template (`AgentTemplate::spec`), and its validation.
//!
//! ```json
//! {
//!   "ami": {"name": "al2023-ami-2023.*-x86_64", "owners": ["amazon"]},
//!   "instance_types": ["m6i.large", "m5.large"],
//!   "subnets": ["subnet-0a", "subnet-0b"],
//!   "security_groups": ["sg-01"],
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
    /// Security group ids.
    #[serde(default)]
    pub security_groups: Vec<String>,
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

    fn check(&self, errors: &mut Vec<String>) {
        match &self.ami {
            AmiSelector::Id { id } if !id.starts_with("ami-") => {
                errors.push(format!("spec.ami.id: `{id}` is not an AMI id (ami-…)"))
            }
            AmiSelector::Filter { name, owners, .. } => {
                if name.trim().is_empty() {
                    errors.push("spec.ami.name: must not be empty".into());
                }
                if owners.is_empty() {
                    errors.push("spec.ami.owners: at least one owner is needed".into());
                }
            }
            AmiSelector::SsmParameter { ssm_parameter } if ssm_parameter.trim().is_empty() => {
                errors.push("spec.ami.ssm_parameter: must not be empty".into())
            }
            _ => {}
        }
        if self.instance_types.is_empty() {
            errors.push("spec.instance_types: at least one instance type is needed".into());
        }
        for (i, t) in self.instance_types.iter().enumerate() {
            if !t.contains('.') || t.contains(char::is_whitespace) {
                errors.push(format!(
                    "spec.instance_types[{i}]: `{t}` is not an instance type (like m6i.large)"
                ));
            }
        }
        for (i, s) in self.subnets.iter().enumerate() {
            if !s.starts_with("subnet-") {
                errors.push(format!(
                    "spec.subnets[{i}]: `{s}` is not a subnet id (subnet-…)"
                ));
            }
        }
        for (i, s) in self.security_groups.iter().enumerate() {
            if !s.starts_with("sg-") {
                errors.push(format!(
                    "spec.security_groups[{i}]: `{s}` is not a security group id (sg-…)"
                ));
            }
        }
        if !(1..=64).contains(&self.metadata.hop_limit) {
            errors.push(format!(
                "spec.metadata.hop_limit: {} is outside 1–64",
                self.metadata.hop_limit
            ));
        }
        if let Some(root) = &self.root_volume {
            if let Some(size) = root.size_gib {
                if !(1..=65536).contains(&size) {
                    errors.push(format!(
                        "spec.root_volume.size_gib: {size} is outside 1–65536"
                    ));
                }
            }
            if let Some(t) = &root.volume_type {
                if !VOLUME_TYPES.contains(&t.as_str()) {
                    errors.push(format!(
                        "spec.root_volume.volume_type: `{t}` is not one of {}",
                        VOLUME_TYPES.join(", ")
                    ));
                }
            }
            if root.iops.is_some_and(|v| v <= 0) {
                errors.push("spec.root_volume.iops: must be positive".into());
            }
            if root.throughput.is_some_and(|v| v <= 0) {
                errors.push("spec.root_volume.throughput: must be positive".into());
            }
            if root.throughput.is_some() && root.volume_type.as_deref() != Some("gp3") {
                errors
                    .push("spec.root_volume.throughput: only gp3 volumes take a throughput".into());
            }
        }
        if self.tags.len() > 40 {
            errors.push(format!(
                "spec.tags: {} tags, at most 40 (EC2 allows 50, jenkins-cloud uses up to 10)",
                self.tags.len()
            ));
        }
        for (k, v) in &self.tags {
            if k.starts_with("aws:") || k.starts_with("jenkins-cloud:") {
                errors.push(format!(
                    "spec.tags.{k}: the prefixes aws: and jenkins-cloud: are reserved"
                ));
            } else if k.is_empty() || k.len() > 128 {
                errors.push(format!("spec.tags.{k}: keys are 1–128 characters"));
            } else if !imds_tag_key_ok(k) {
                errors.push(format!(
                    "spec.tags.{k}: with instance metadata tags on, keys may only use letters, digits and + - = . , _ : @"
                ));
            }
            if v.len() > 256 {
                errors.push(format!("spec.tags.{k}: values are at most 256 characters"));
            }
        }
        if let Some(spot) = &self.spot {
            if let Some(price) = &spot.max_price {
                if !price.parse::<f64>().is_ok_and(|p| p.is_finite() && p > 0.0) {
                    errors.push(format!(
                        "spec.spot.max_price: `{price}` is not a positive decimal price"
                    ));
                }
            }
        }
        if self.warm_pool && self.spot.is_some() {
            errors.push(
                "spec.warm_pool: cannot be combined with spot (one-time spot instances cannot be stopped, only terminated)"
                    .into(),
            );
        }
        if self.warm_pool && self.secret_delivery == SecretDelivery::UserData {
            errors.push(
                "spec.warm_pool: needs secret_delivery `ssm` (user data is fixed at launch, a reused instance could not learn a new secret)"
                    .into(),
            );
        }
        match self.warm_pool_max {
            Some(_) if !self.warm_pool => {
                errors.push("spec.warm_pool_max: only allowed with `warm_pool: true`".into())
            }
            Some(0) => errors.push(
                "spec.warm_pool_max: must be at least 1 (use `warm_pool: false` for no pool)"
                    .into(),
            ),
            _ => {}
        }
        if let Some(t) = &self.user_data_template {
            if let Err(e) = crate::userdata::check_template(t) {
                errors.push(format!("spec.user_data_template: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_spec_gets_defaults() {
        let s = Ec2Spec::parse(&json!({"ami": {"id": "ami-1"}, "instance_types": ["t3.small"]}))
            .unwrap();
        assert!(s.metadata.require_tokens);
        assert_eq!(s.metadata.hop_limit, 1);
        assert_eq!(s.secret_delivery, SecretDelivery::Ssm);
        assert!(!s.warm_pool && s.spot.is_none() && s.subnets.is_empty());
        assert_eq!((s.warm_pool_max, s.warm_pool_bound()), (None, 0));
    }

    #[test]
    fn warm_pool_max_defaults_and_bounds() {
        let base = json!({"ami": {"id": "ami-1"}, "instance_types": ["t3.small"]});
        let with = |extra: serde_json::Value| {
            let mut spec = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            Ec2Spec::parse(&spec)
        };
        let s = with(json!({"warm_pool": true})).unwrap();
        assert_eq!(s.warm_pool_bound(), DEFAULT_WARM_POOL_MAX as usize);
        let s = with(json!({"warm_pool": true, "warm_pool_max": 2})).unwrap();
        assert_eq!((s.warm_pool_max, s.warm_pool_bound()), (Some(2), 2));
        let s = with(json!({"warm_pool": true, "warm_pool_max": null})).unwrap();
        assert_eq!(s.warm_pool_bound(), DEFAULT_WARM_POOL_MAX as usize);

        for (extra, needle) in [
            (
                json!({"warm_pool_max": 3}),
                "only allowed with `warm_pool: true`",
            ),
            (
                json!({"warm_pool": false, "warm_pool_max": 3}),
                "only allowed with `warm_pool: true`",
            ),
            (json!({"warm_pool": true, "warm_pool_max": 0}), "at least 1"),
            (
                json!({"warm_pool": true, "warm_pool_max": -1}),
                "invalid value",
            ),
            (
                json!({"warm_pool": true, "warm_pool_max": 2.5}),
                "invalid type",
            ),
            (
                json!({"warm_pool": true, "warm_pool_max": "5"}),
                "invalid type",
            ),
        ] {
            let errors = with(extra.clone()).unwrap_err();
            assert_eq!(errors.len(), 1, "{extra}: {errors:?}");
            assert!(
                errors[0].starts_with("spec.warm_pool_max:") && errors[0].contains(needle),
                "{extra}: {errors:?}"
            );
        }
        // One-time spot instances cannot be stopped: no pool with spot.
        let errors = with(json!({"warm_pool": true, "spot": {}})).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("spec.warm_pool:") && errors[0].contains("spot"),
            "{errors:?}"
        );
        assert!(with(json!({"spot": {}})).is_ok());
    }

    #[test]
    fn ami_selectors_parse() {
        let s = Ec2Spec::parse(&json!({"ami": {"name": "al2023-*", "owners": ["amazon"]}, "instance_types": ["t3.small"]}))
            .unwrap();
        assert!(matches!(s.ami, AmiSelector::Filter { .. }));
        let s = Ec2Spec::parse(
            &json!({"ami": {"ssm_parameter": "/aws/x"}, "instance_types": ["t3.small"]}),
        )
        .unwrap();
        assert_eq!(
            s.ami,
            AmiSelector::SsmParameter {
                ssm_parameter: "/aws/x".into()
            }
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let errors = Ec2Spec::parse(&json!({
            "instance_types": "m5.large",
            "subnets": [1],
            "bogus": true,
        }))
        .unwrap_err();
        let text = errors.join("\n");
        assert!(text.contains("spec.bogus: unknown field"), "{text}");
        assert!(text.contains("spec.ami: missing"), "{text}");
        assert!(text.contains("spec.instance_types:"), "{text}");
        assert!(text.contains("spec.subnets:"), "{text}");
        assert_eq!(errors.len(), 4, "{text}");

        let errors = Ec2Spec::parse(&json!({
            "ami": {"id": "img-1"},
            "instance_types": ["m5.large", "large"],
            "subnets": ["subnet-1", "sub-2"],
            "security_groups": ["default"],
            "metadata": {"hop_limit": 0},
            "root_volume": {"size_gib": 0, "volume_type": "gp9", "throughput": 200},
            "tags": {"aws:x": "1", "a/b": "2"},
            "spot": {"max_price": "free"},
            "warm_pool": true,
            "secret_delivery": "user_data",
            "user_data_template": "#!/bin/sh\necho {{nope}}",
        }))
        .unwrap_err();
        let text = errors.join("\n");
        for field in [
            "spec.ami.id",
            "spec.instance_types[1]",
            "spec.subnets[1]",
            "spec.security_groups[0]",
            "spec.metadata.hop_limit",
            "spec.root_volume.size_gib",
            "spec.root_volume.volume_type",
            "spec.root_volume.throughput",
            "spec.tags.aws:x",
            "spec.tags.a/b",
            "spec.spot.max_price",
            "spec.warm_pool",
            "spec.user_data_template",
        ] {
            assert!(text.contains(field), "missing {field} in:\n{text}");
        }
        assert!(text.contains("nope"), "{text}");
    }

    #[test]
    fn not_an_object_is_an_error() {
        assert_eq!(
            Ec2Spec::parse(&json!([])).unwrap_err(),
            vec!["spec: must be an object".to_string()]
        );
    }
}
