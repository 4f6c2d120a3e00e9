//! Security groups by name: a template's `security_groups` entries that are
//! not ids (`sg-…`) are group names, resolved at launch to the ids of the
//! groups of those names in the VPC of the template's first subnet.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::api::Ec2Api;
use crate::error::Ec2Error;
use crate::spec::Ec2Spec;

/// How long a resolution is reused. Unknown names are never cached: creating
/// the missing group fixes the next launch.
pub const GROUP_CACHE_TTL: Duration = Duration::from_secs(300);

/// Whether a `security_groups` entry is an id (else it is a name).
pub fn is_group_id(entry: &str) -> bool {
    entry.starts_with("sg-")
}

/// The names of `names` found in the VPC, each with its group id (`None`:
/// no group of that name there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameResolution {
    /// The VPC the names were looked up in (the first subnet's).
    pub vpc_id: String,
    /// Every name asked for, in order, with its id if found.
    pub groups: Vec<(String, Option<String>)>,
}

/// Looks `names` up with one DescribeSubnets (the VPC of `subnet`) and one
/// DescribeSecurityGroups (filters `group-name` and `vpc-id`).
pub async fn resolve_names(
    api: &dyn Ec2Api,
    subnet: &str,
    names: &[String],
) -> Result<NameResolution, Ec2Error> {
    let vpc_id = api
        .describe_subnets(vec![subnet.to_owned()])
        .await?
        .into_iter()
        .find(|(id, _)| id == subnet)
        .map(|(_, vpc)| vpc)
        .ok_or_else(|| {
            Ec2Error::InvalidSpec(vec![format!(
                "spec.subnets[0]: subnet {subnet} not found (security group names are resolved in its VPC)"
            )])
        })?;
    let found = api
        .describe_security_groups(vec![
            ("group-name".to_owned(), names.to_vec()),
            ("vpc-id".to_owned(), vec![vpc_id.clone()]),
        ])
        .await?;
    let groups = names
        .iter()
        .map(|name| {
            let id = found
                .iter()
                .find(|g| &g.name == name && g.vpc_id.as_deref().is_none_or(|v| v == vpc_id))
                .map(|g| g.id.clone());
            (name.clone(), id)
        })
        .collect();
    Ok(NameResolution { vpc_id, groups })
}

type CacheKey = (String, Vec<String>);

/// Resolved group ids by (first subnet, `security_groups` as written), shared
/// by every launch of a backend, each entry for [`GROUP_CACHE_TTL`].
#[derive(Debug, Default)]
pub struct GroupCache(Mutex<HashMap<CacheKey, (Instant, Vec<String>)>>);

/// The spec's security group ids: entries that are ids as they are, names
/// resolved ([`resolve_names`], cached in `cache`), in the spec's order.
/// With ids only, no AWS call. A name with no group in the VPC is an
/// [`Ec2Error::InvalidSpec`] (permanent) naming it.
pub async fn resolve_security_groups(
    api: &dyn Ec2Api,
    spec: &Ec2Spec,
    cache: &GroupCache,
) -> Result<Vec<String>, Ec2Error> {
    let names: Vec<String> = spec
        .security_groups
        .iter()
        .filter(|g| !is_group_id(g))
        .cloned()
        .collect();
    if names.is_empty() {
        return Ok(spec.security_groups.clone());
    }
    let Some(subnet) = spec.subnets.first() else {
        // Spec validation already refuses this; never launch into the default VPC by guess.
        return Err(Ec2Error::InvalidSpec(vec![
            "spec.security_groups: group names need spec.subnets".into(),
        ]));
    };
    let key = (subnet.clone(), spec.security_groups.clone());
    {
        let map = cache.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, ids)) = map.get(&key) {
            if at.elapsed() < GROUP_CACHE_TTL {
                return Ok(ids.clone());
            }
        }
    }
    let resolution = resolve_names(api, subnet, &names).await?;
    let missing: Vec<String> = resolution
        .groups
        .iter()
        .filter(|(_, id)| id.is_none())
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    if !missing.is_empty() {
        return Err(Ec2Error::InvalidSpec(vec![format!(
            "spec.security_groups: no security group named {} in {} (the VPC of subnet {subnet})",
            missing.join(", "),
            resolution.vpc_id
        )]));
    }
    let mut ids: Vec<String> = Vec::with_capacity(spec.security_groups.len());
    for entry in &spec.security_groups {
        let id = if is_group_id(entry) {
            entry.clone()
        } else {
            resolution
                .groups
                .iter()
                .find(|(name, _)| name == entry)
                .and_then(|(_, id)| id.clone())
                .unwrap_or_default()
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut map = cache.0.lock().unwrap_or_else(PoisonError::into_inner);
    map.insert(key, (Instant::now(), ids.clone()));
    Ok(ids)
}
