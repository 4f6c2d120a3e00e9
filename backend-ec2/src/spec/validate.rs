//! The field-by-field checks of a parsed [`Ec2Spec`].

use super::{imds_tag_key_ok, AmiSelector, Ec2Spec, SecretDelivery, VOLUME_TYPES};

impl Ec2Spec {
    pub(super) fn check(&self, errors: &mut Vec<String>) {
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
        // Entries not starting with `sg-` are group names, resolved at launch
        // in the VPC of the first subnet (AWS: names up to 255 characters,
        // none starting with `sg-`).
        for (i, s) in self.security_groups.iter().enumerate() {
            if let Some(hex) = s.strip_prefix("sg-") {
                if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_alphanumeric()) {
                    errors.push(format!(
                        "spec.security_groups[{i}]: `{s}` is not a security group id (sg- and hex digits)"
                    ));
                }
            } else if s.trim().is_empty() || s.trim() != s || s.chars().count() > 255 {
                errors.push(format!(
                    "spec.security_groups[{i}]: `{s}` is neither a group id (sg-…) nor a group name (1–255 characters, no surrounding spaces)"
                ));
            } else if self.subnets.is_empty() {
                errors.push(format!(
                    "spec.security_groups[{i}]: the group name `{s}` needs spec.subnets (names are resolved in the VPC of the first subnet)"
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
