//! The few EC2 and SSM calls the backend makes, behind a trait so fallback
//! chains and error handling can be tested without AWS ([`crate::sdk`] holds the
//! real implementation).

use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::Ec2Error;

/// The purchase option of one RunInstances request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotRequest {
    /// Highest hourly price; `None`: the on-demand price.
    pub max_price: Option<String>,
}

/// Root EBS volume settings of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RootVolume {
    /// Device name (the AMI's root device).
    pub device_name: String,
    /// Size in GiB.
    pub size_gib: Option<i32>,
    /// Volume type.
    pub volume_type: Option<String>,
    /// Provisioned IOPS.
    pub iops: Option<i32>,
    /// Throughput in MiB/s.
    pub throughput: Option<i32>,
    /// Encryption.
    pub encrypted: Option<bool>,
    /// KMS key id.
    pub kms_key_id: Option<String>,
}

/// One RunInstances request for exactly one instance.
#[derive(Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// AMI id.
    pub image_id: String,
    /// Instance type.
    pub instance_type: String,
    /// Subnet, or the default VPC.
    pub subnet_id: Option<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
    /// Instance profile name or ARN.
    pub instance_profile: Option<String>,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Require IMDSv2.
    pub require_imds_tokens: bool,
    /// IMDS hop limit.
    pub hop_limit: i32,
    /// Expose instance tags in IMDS.
    pub metadata_tags: bool,
    /// Root volume override.
    pub root_volume: Option<RootVolume>,
    /// Tags for the instance.
    pub instance_tags: Vec<(String, String)>,
    /// Tags for volumes and network interfaces.
    pub resource_tags: Vec<(String, String)>,
    /// Spot options; `None` sends no market options at all (on-demand).
    pub spot: Option<SpotRequest>,
    /// User data, plain text (base64-encoded by the implementation).
    pub user_data: String,
    /// Idempotency token.
    pub client_token: String,
}

impl std::fmt::Debug for RunRequest {
    /// Leaves out the user data: it may carry a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRequest")
            .field("image_id", &self.image_id)
            .field("instance_type", &self.instance_type)
            .field("subnet_id", &self.subnet_id)
            .field("spot", &self.spot)
            .field("client_token", &self.client_token)
            .finish_non_exhaustive()
    }
}

/// An instance as DescribeInstances reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// Instance id.
    pub id: String,
    /// State name (`pending`, `running`, `shutting-down`, `terminated`, `stopping`, `stopped`).
    pub state: String,
    /// State reason code (`Server.SpotInstanceTermination`…), if any.
    pub state_reason_code: Option<String>,
    /// State reason message, if any.
    pub state_reason_message: Option<String>,
    /// Launch time.
    pub launch_time: Option<SystemTime>,
    /// All tags.
    pub tags: Vec<(String, String)>,
    /// `spot` for spot instances.
    pub lifecycle: Option<String>,
    /// The instance type.
    pub instance_type: Option<String>,
    /// The subnet.
    pub subnet_id: Option<String>,
}

impl InstanceInfo {
    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An AMI as DescribeImages reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// AMI id.
    pub id: String,
    /// Creation date (ISO 8601 text, so it sorts).
    pub creation_date: Option<String>,
    /// Root device name.
    pub root_device_name: Option<String>,
    /// DescribeImages' `Platform`: `windows` for Windows AMIs, else absent.
    pub platform: Option<String>,
}

/// A security group as DescribeSecurityGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroupInfo {
    /// `sg-…`
    pub id: String,
    /// The group name.
    pub name: String,
    /// The VPC it belongs to.
    pub vpc_id: Option<String>,
}

/// A DescribeInstances / DescribeImages filter: name and values.
pub type Filter = (String, Vec<String>);

/// The EC2 and SSM calls of the backend.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Ec2Api: Send + Sync {
    /// RunInstances for one instance; returns its id.
    async fn run_instance(&self, request: RunRequest) -> Result<String, Ec2Error>;
    /// DescribeInstances with filters, all pages.
    async fn describe_instances(&self, filters: Vec<Filter>)
        -> Result<Vec<InstanceInfo>, Ec2Error>;
    /// TerminateInstances.
    async fn terminate_instances(&self, ids: Vec<String>) -> Result<(), Ec2Error>;
    /// StopInstances.
    async fn stop_instances(&self, ids: Vec<String>) -> Result<(), Ec2Error>;
    /// StartInstances.
    async fn start_instances(&self, ids: Vec<String>) -> Result<(), Ec2Error>;
    /// CreateTags (overwrites existing values).
    async fn create_tags(
        &self,
        ids: Vec<String>,
        tags: Vec<(String, String)>,
    ) -> Result<(), Ec2Error>;
    /// DescribeImages by ids, or by owners and filters.
    async fn describe_images(
        &self,
        image_ids: Vec<String>,
        owners: Vec<String>,
        filters: Vec<Filter>,
    ) -> Result<Vec<ImageInfo>, Ec2Error>;
    /// DescribeSubnets by ids: `(subnet id, VPC id)` of each found.
    async fn describe_subnets(
        &self,
        subnet_ids: Vec<String>,
    ) -> Result<Vec<(String, String)>, Ec2Error>;
    /// DescribeSecurityGroups with filters, all pages.
    async fn describe_security_groups(
        &self,
        filters: Vec<Filter>,
    ) -> Result<Vec<SecurityGroupInfo>, Ec2Error>;
    /// PutParameter as a SecureString, overwriting. Errors never contain the value.
    async fn put_secure_parameter(
        &self,
        name: String,
        value: jenkins_cloud_core::Secret,
    ) -> Result<(), Ec2Error>;
    /// DeleteParameter; a missing parameter is `Ok`.
    async fn delete_parameter(&self, name: String) -> Result<(), Ec2Error>;
    /// GetParameter (plain String parameters such as public AMI ids).
    async fn get_parameter(&self, name: String) -> Result<String, Ec2Error>;
    /// The region the clients talk to.
    fn region(&self) -> String;
}
