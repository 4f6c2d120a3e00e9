//! The launch of one instance: AMI resolution and the fallback chain over
//! market × instance type × subnet.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::api::{Ec2Api, ImageInfo, RunRequest, SpotRequest};
use crate::error::{Ec2Error, SPOT_WIDE_CODES};
use crate::pacing::{throttle_backoff, TokenBucket};
use crate::spec::{AmiSelector, Ec2Spec, Platform};
use jenkins_cloud_core::ErrorClass;

/// Retries of one attempt after throttling before giving up.
const THROTTLE_RETRIES: u32 = 4;
/// Retries of one attempt after a transient failure (same client token: safe).
const TRANSIENT_RETRIES: u32 = 2;

/// One combination to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Instance type.
    pub instance_type: String,
    /// Subnet, or the default VPC.
    pub subnet: Option<String>,
    /// Spot options, or on-demand.
    pub spot: Option<SpotRequest>,
}

/// A stable number from the client token, to spread agents across subnets in a
/// way that a retry of the same launch repeats.
fn token_hash(token: &str) -> u64 {
    let digest = Sha256::digest(token.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The client token of attempt `index`: the agent's own token first, then a
/// token derived from it (a changed request with the same token would fail
/// with `IdempotentParameterMismatch`). Always ≤ 64 ASCII characters.
pub fn attempt_token(client_token: &str, index: usize) -> String {
    if index == 0 {
        client_token.to_owned()
    } else {
        hex::encode(Sha256::digest(format!("{client_token}#{index}").as_bytes()))
    }
}

/// The attempts for one agent, in order: spot (if asked) for every type, each
/// over every subnet starting at one picked from the client token; then the
/// same on-demand if the spec falls back.
pub fn plan(spec: &Ec2Spec, client_token: &str) -> Vec<Attempt> {
    let subnets: Vec<Option<String>> = if spec.subnets.is_empty() {
        vec![None]
    } else {
        let start = (token_hash(client_token) % spec.subnets.len() as u64) as usize;
        (0..spec.subnets.len())
            .map(|i| Some(spec.subnets[(start + i) % spec.subnets.len()].clone()))
            .collect()
    };
    let mut markets = Vec::new();
    match &spec.spot {
        Some(spot) => {
            markets.push(Some(SpotRequest {
                max_price: spot.max_price.clone(),
            }));
            if spot.fallback_to_on_demand {
                markets.push(None);
            }
        }
        None => markets.push(None),
    }
    let mut attempts = Vec::new();
    for market in &markets {
        for instance_type in &spec.instance_types {
            for subnet in &subnets {
                attempts.push(Attempt {
                    instance_type: instance_type.clone(),
                    subnet: subnet.clone(),
                    spot: market.clone(),
                });
            }
        }
    }
    attempts
}

fn describe_attempt(a: &Attempt) -> String {
    format!(
        "{} {} in {}",
        if a.spot.is_some() {
            "spot"
        } else {
            "on-demand"
        },
        a.instance_type,
        a.subnet.as_deref().unwrap_or("the default subnet")
    )
}

/// Runs `base` through `attempts` until one starts an instance. Capacity errors
/// move on (spot-wide ones skip the remaining spot attempts); throttling backs
/// off with jitter and repeats the attempt; transient failures repeat it with
/// the same token; permanent errors stop at once. Returns the instance id and
/// the attempt that worked.
pub async fn run_with_fallback(
    api: &dyn Ec2Api,
    bucket: &TokenBucket,
    base: &RunRequest,
    attempts: &[Attempt],
) -> Result<(String, Attempt), Ec2Error> {
    let mut no_capacity = Vec::new();
    let mut skip_spot = false;
    for (index, attempt) in attempts.iter().enumerate() {
        if skip_spot && attempt.spot.is_some() {
            continue;
        }
        let mut request = base.clone();
        request.instance_type = attempt.instance_type.clone();
        request.subnet_id = attempt.subnet.clone();
        request.spot = attempt.spot.clone();
        request.client_token = attempt_token(&base.client_token, index);
        let (mut throttled, mut transient) = (0, 0);
        loop {
            bucket.acquire().await;
            let err = match api.run_instance(request.clone()).await {
                Ok(id) => return Ok((id, attempt.clone())),
                Err(err) => err,
            };
            match err.class() {
                ErrorClass::Throttled if throttled < THROTTLE_RETRIES => {
                    tokio::time::sleep(throttle_backoff(throttled)).await;
                    throttled += 1;
                }
                ErrorClass::Transient if transient < TRANSIENT_RETRIES => {
                    tokio::time::sleep(throttle_backoff(transient)).await;
                    transient += 1;
                }
                ErrorClass::Capacity => {
                    tracing::info!(attempt = %describe_attempt(attempt), error = %err, "no capacity, trying the next fallback");
                    if attempt.spot.is_some()
                        && err.code().is_some_and(|c| SPOT_WIDE_CODES.contains(&c))
                    {
                        skip_spot = true;
                    }
                    no_capacity.push(format!(
                        "{} ({})",
                        describe_attempt(attempt),
                        err.code().unwrap_or("no capacity")
                    ));
                    break;
                }
                _ => return Err(err),
            }
        }
    }
    Err(Ec2Error::NoCapacity(no_capacity))
}

/// Picks the newest image (by creation date; ISO 8601 sorts as text).
fn newest(images: Vec<ImageInfo>) -> Option<ImageInfo> {
    images.into_iter().max_by(|a, b| {
        a.creation_date
            .cmp(&b.creation_date)
            .then_with(|| a.id.cmp(&b.id))
    })
}

/// What a launch needs to know about an image besides its id. Both are fixed
/// when the image is registered, so they are cached by image id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetails {
    /// The root device name (for a `root_volume` override).
    pub root_device_name: Option<String>,
    /// Windows or Linux, from DescribeImages' `Platform`.
    pub platform: Platform,
}

impl ImageDetails {
    fn of(image: &ImageInfo) -> Self {
        Self {
            root_device_name: image.root_device_name.clone(),
            platform: Platform::of_image(image.platform.as_deref()),
        }
    }
}

/// An AMI selector resolved to an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAmi {
    /// `ami-…`
    pub id: String,
    /// The image's details: always for a name filter, otherwise only when asked.
    pub details: Option<ImageDetails>,
}

/// [`ImageDetails`] by image id, shared by every launch of a backend.
#[derive(Debug, Default)]
pub struct ImageCache(Mutex<HashMap<String, ImageDetails>>);

impl ImageCache {
    fn get(&self, id: &str) -> Option<ImageDetails> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).cloned()
    }

    fn put(&self, id: &str, details: &ImageDetails) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(id.to_owned(), details.clone());
    }
}

/// Resolves the spec's AMI to an image id and, when `need_root_device`, its
/// root device name: [`resolve_image`] without a shared cache.
pub async fn resolve_ami(
    api: &dyn Ec2Api,
    selector: &AmiSelector,
    need_root_device: bool,
) -> Result<(String, Option<String>), Ec2Error> {
    let ami = resolve_image(api, selector, need_root_device, &ImageCache::default()).await?;
    Ok((ami.id, ami.details.and_then(|d| d.root_device_name)))
}

/// Resolves the spec's AMI to an image id and, when `need_details` (root
/// device for a `root_volume`, platform when the spec names none), its
/// [`ImageDetails`]: from `cache`, or one DescribeImages by id. A name
/// filter is resolved on every call (a newer image may have appeared).
pub async fn resolve_image(
    api: &dyn Ec2Api,
    selector: &AmiSelector,
    need_details: bool,
    cache: &ImageCache,
) -> Result<ResolvedAmi, Ec2Error> {
    let by_id = |id: String| async move {
        if !need_details {
            return Ok(ResolvedAmi { id, details: None });
        }
        if let Some(details) = cache.get(&id) {
            return Ok(ResolvedAmi {
                id,
                details: Some(details),
            });
        }
        let image = newest(
            api.describe_images(vec![id.clone()], vec![], vec![])
                .await?,
        )
        .ok_or_else(|| Ec2Error::AmiNotFound(format!("id {id}")))?;
        let details = ImageDetails::of(&image);
        cache.put(&image.id, &details);
        Ok(ResolvedAmi {
            id: image.id,
            details: Some(details),
        })
    };
    match selector {
        AmiSelector::Id { id } => by_id(id.clone()).await,
        AmiSelector::SsmParameter { ssm_parameter } => {
            let id = api.get_parameter(ssm_parameter.clone()).await?;
            by_id(id).await
        }
        AmiSelector::Filter {
            name,
            owners,
            architecture,
        } => {
            let mut filters = vec![
                ("name".to_owned(), vec![name.clone()]),
                ("state".to_owned(), vec!["available".to_owned()]),
            ];
            if let Some(arch) = architecture {
                filters.push(("architecture".to_owned(), vec![arch.clone()]));
            }
            let image = newest(api.describe_images(vec![], owners.clone(), filters).await?)
                .ok_or_else(|| {
                    Ec2Error::AmiNotFound(format!("name `{name}` owned by {}", owners.join(", ")))
                })?;
            let details = ImageDetails::of(&image);
            cache.put(&image.id, &details);
            Ok(ResolvedAmi {
                id: image.id,
                details: Some(details),
            })
        }
    }
}
