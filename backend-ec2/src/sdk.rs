//! [`Ec2Api`] on the real AWS SDK clients.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types as ec2t;
use jenkins_cloud_core::Secret;

use crate::api::{Ec2Api, Filter, ImageInfo, InstanceInfo, RunRequest, SecurityGroupInfo};
use crate::error::Ec2Error;

/// The EC2 and SSM clients the backend talks through.
#[derive(Debug, Clone)]
pub struct SdkApi {
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
}

impl SdkApi {
    /// Wraps existing clients (they should share region and credentials).
    pub fn new(ec2: aws_sdk_ec2::Client, ssm: aws_sdk_ssm::Client) -> Self {
        Self { ec2, ssm }
    }

    /// Clients from a shared SDK configuration.
    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        Self::new(
            aws_sdk_ec2::Client::new(conf),
            aws_sdk_ssm::Client::new(conf),
        )
    }
}

/// Converts an SDK error: service errors by code, transport failures as transient.
fn sdk_err<E, R>(operation: &'static str, err: SdkError<E, R>) -> Ec2Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(_) => {
            let code = err.code().map(str::to_owned);
            let message = err.message().unwrap_or("no message").to_owned();
            Ec2Error::aws(operation, code, message)
        }
        SdkError::ConstructionFailure(_) => Ec2Error::Aws {
            operation,
            code: None,
            message: format!("request could not be built: {}", error_chain(&err)),
            class: jenkins_cloud_core::ErrorClass::Permanent,
        },
        _ => Ec2Error::transport(operation, error_chain(&err)),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn tags(pairs: &[(String, String)]) -> Vec<ec2t::Tag> {
    pairs
        .iter()
        .map(|(k, v)| ec2t::Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_spec(kind: ec2t::ResourceType, pairs: &[(String, String)]) -> ec2t::TagSpecification {
    ec2t::TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags(pairs)))
        .build()
}

fn filters(filters: Vec<Filter>) -> Vec<ec2t::Filter> {
    filters
        .into_iter()
        .map(|(name, values)| {
            ec2t::Filter::builder()
                .name(name)
                .set_values(Some(values))
                .build()
        })
        .collect()
}

fn instance_info(i: &ec2t::Instance) -> InstanceInfo {
    InstanceInfo {
        id: i.instance_id().unwrap_or_default().to_owned(),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        state_reason_code: i.state_reason().and_then(|r| r.code()).map(str::to_owned),
        state_reason_message: i
            .state_reason()
            .and_then(|r| r.message())
            .map(str::to_owned),
        launch_time: i.launch_time().and_then(|t| SystemTime::try_from(*t).ok()),
        tags: i
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        lifecycle: i.instance_lifecycle().map(|l| l.as_str().to_owned()),
        instance_type: i.instance_type().map(|t| t.as_str().to_owned()),
        subnet_id: i.subnet_id().map(str::to_owned),
    }
}

/// Builds the RunInstances call; separate so the request shape is in one place.
fn run_instances_call(
    ec2: &aws_sdk_ec2::Client,
    r: RunRequest,
) -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder {
    let mut metadata = ec2t::InstanceMetadataOptionsRequest::builder()
        .http_endpoint(ec2t::InstanceMetadataEndpointState::Enabled)
        .http_put_response_hop_limit(r.hop_limit)
        .http_tokens(if r.require_imds_tokens {
            ec2t::HttpTokensState::Required
        } else {
            ec2t::HttpTokensState::Optional
        });
    if r.metadata_tags {
        metadata = metadata.instance_metadata_tags(ec2t::InstanceMetadataTagsState::Enabled);
    }
    let mut call = ec2
        .run_instances()
        .image_id(r.image_id)
        .instance_type(ec2t::InstanceType::from(r.instance_type.as_str()))
        .min_count(1)
        .max_count(1)
        .client_token(r.client_token)
        .user_data(aws_smithy_types::base64::encode(r.user_data.as_bytes()))
        .metadata_options(metadata.build())
        .set_subnet_id(r.subnet_id)
        .set_key_name(r.key_name)
        .tag_specifications(tag_spec(ec2t::ResourceType::Instance, &r.instance_tags))
        .tag_specifications(tag_spec(ec2t::ResourceType::Volume, &r.resource_tags))
        .tag_specifications(tag_spec(
            ec2t::ResourceType::NetworkInterface,
            &r.resource_tags,
        ));
    if !r.security_group_ids.is_empty() {
        call = call.set_security_group_ids(Some(r.security_group_ids));
    }
    if let Some(profile) = r.instance_profile {
        let spec = ec2t::IamInstanceProfileSpecification::builder();
        let spec = if profile.starts_with("arn:") {
            spec.arn(profile)
        } else {
            spec.name(profile)
        };
        call = call.iam_instance_profile(spec.build());
    }
    if let Some(root) = r.root_volume {
        let ebs = ec2t::EbsBlockDevice::builder()
            .delete_on_termination(true)
            .set_volume_size(root.size_gib)
            .set_volume_type(root.volume_type.as_deref().map(ec2t::VolumeType::from))
            .set_iops(root.iops)
            .set_throughput(root.throughput)
            .set_encrypted(root.encrypted)
            .set_kms_key_id(root.kms_key_id)
            .build();
        call = call.block_device_mappings(
            ec2t::BlockDeviceMapping::builder()
                .device_name(root.device_name)
                .ebs(ebs)
                .build(),
        );
    }
    // On-demand requests carry no market options at all.
    if let Some(spot) = r.spot {
        let options = ec2t::SpotMarketOptions::builder()
            .set_max_price(spot.max_price)
            .spot_instance_type(ec2t::SpotInstanceType::OneTime)
            .instance_interruption_behavior(ec2t::InstanceInterruptionBehavior::Terminate)
            .build();
        call = call.instance_market_options(
            ec2t::InstanceMarketOptionsRequest::builder()
                .market_type(ec2t::MarketType::Spot)
                .spot_options(options)
                .build(),
        );
    }
    call
}

#[async_trait]
impl Ec2Api for SdkApi {
    async fn run_instance(&self, request: RunRequest) -> Result<String, Ec2Error> {
        let out = run_instances_call(&self.ec2, request)
            .send()
            .await
            .map_err(|e| sdk_err("RunInstances", e))?;
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_owned)
            .ok_or_else(|| Ec2Error::transport("RunInstances", "the answer holds no instance"))
    }

    async fn describe_instances(&self, f: Vec<Filter>) -> Result<Vec<InstanceInfo>, Ec2Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .ec2
                .describe_instances()
                .set_filters(Some(filters(f.clone())))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_err("DescribeInstances", e))?;
            out.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .map(instance_info),
            );
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    async fn terminate_instances(&self, ids: Vec<String>) -> Result<(), Ec2Error> {
        self.ec2
            .terminate_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_err("TerminateInstances", e))
    }

    async fn stop_instances(&self, ids: Vec<String>) -> Result<(), Ec2Error> {
        self.ec2
            .stop_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_err("StopInstances", e))
    }

    async fn start_instances(&self, ids: Vec<String>) -> Result<(), Ec2Error> {
        self.ec2
            .start_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_err("StartInstances", e))
    }

    async fn create_tags(
        &self,
        ids: Vec<String>,
        t: Vec<(String, String)>,
    ) -> Result<(), Ec2Error> {
        self.ec2
            .create_tags()
            .set_resources(Some(ids))
            .set_tags(Some(tags(&t)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_err("CreateTags", e))
    }

    async fn describe_images(
        &self,
        image_ids: Vec<String>,
        owners: Vec<String>,
        f: Vec<Filter>,
    ) -> Result<Vec<ImageInfo>, Ec2Error> {
        let mut call = self.ec2.describe_images();
        if !image_ids.is_empty() {
            call = call.set_image_ids(Some(image_ids));
        }
        if !owners.is_empty() {
            call = call.set_owners(Some(owners));
        }
        if !f.is_empty() {
            call = call.set_filters(Some(filters(f)));
        }
        let out = call
            .send()
            .await
            .map_err(|e| sdk_err("DescribeImages", e))?;
        Ok(out
            .images()
            .iter()
            .map(|i| ImageInfo {
                id: i.image_id().unwrap_or_default().to_owned(),
                creation_date: i.creation_date().map(str::to_owned),
                root_device_name: i.root_device_name().map(str::to_owned),
                // As text: AWS sends `windows`, which the SDK's enum (variant
                // `Windows` = "Windows") only knows as an unknown value.
                platform: i.platform().map(|p| p.as_str().to_owned()),
            })
            .collect())
    }

    async fn describe_subnets(&self, ids: Vec<String>) -> Result<Vec<(String, String)>, Ec2Error> {
        let out = self
            .ec2
            .describe_subnets()
            .set_subnet_ids(Some(ids))
            .send()
            .await
            .map_err(|e| sdk_err("DescribeSubnets", e))?;
        Ok(out
            .subnets()
            .iter()
            .filter_map(|s| Some((s.subnet_id()?.to_owned(), s.vpc_id()?.to_owned())))
            .collect())
    }

    async fn describe_security_groups(
        &self,
        f: Vec<Filter>,
    ) -> Result<Vec<SecurityGroupInfo>, Ec2Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .ec2
                .describe_security_groups()
                .set_filters(Some(filters(f.clone())))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_err("DescribeSecurityGroups", e))?;
            out.extend(page.security_groups().iter().map(|g| SecurityGroupInfo {
                id: g.group_id().unwrap_or_default().to_owned(),
                name: g.group_name().unwrap_or_default().to_owned(),
                vpc_id: g.vpc_id().map(str::to_owned),
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    async fn put_secure_parameter(&self, name: String, value: Secret) -> Result<(), Ec2Error> {
        let result = self
            .ssm
            .put_parameter()
            .name(name)
            .value(value.expose())
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await;
        result
            .map(|_| ())
            .map_err(|e| redact(sdk_err("PutParameter", e), &value))
    }

    async fn delete_parameter(&self, name: String) -> Result<(), Ec2Error> {
        match self.ssm.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ParameterNotFound") => Ok(()),
            Err(e) => Err(sdk_err("DeleteParameter", e)),
        }
    }

    async fn get_parameter(&self, name: String) -> Result<String, Ec2Error> {
        let out = self
            .ssm
            .get_parameter()
            .name(name.clone())
            .send()
            .await
            .map_err(|e| sdk_err("GetParameter", e))?;
        out.parameter()
            .and_then(|p| p.value())
            .map(str::to_owned)
            .ok_or_else(|| Ec2Error::AmiNotFound(format!("SSM parameter {name} (no value)")))
    }

    fn region(&self) -> String {
        self.ec2
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }
}

/// Removes the secret from an error message (AWS validation messages may echo values).
pub(crate) fn redact(err: Ec2Error, secret: &Secret) -> Ec2Error {
    match err {
        Ec2Error::Aws {
            operation,
            code,
            message,
            class,
        } if !secret.is_empty() => Ec2Error::Aws {
            operation,
            code,
            message: message.replace(secret.expose(), "***"),
            class,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_the_secret() {
        let s = Secret::new("abcdef0123");
        let e = Ec2Error::aws(
            "PutParameter",
            Some("ValidationException".into()),
            "Value 'abcdef0123' is bad",
        );
        assert_eq!(
            redact(e, &s).to_string(),
            "PutParameter failed: ValidationException: Value '***' is bad"
        );
    }
}
