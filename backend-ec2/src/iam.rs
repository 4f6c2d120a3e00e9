//! Every AWS operation this backend can call, and the IAM actions each needs:
//! the one table the program's `iam-policy` and the tests read.
//!
//! Resource types and condition keys from the Service Authorization
//! Reference, "Actions, resources, and condition keys for Amazon EC2"
//! (docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html)
//! and "… for AWS Systems Manager" (…/list_awssystemsmanager.html).
//! RunInstances authorises every resource it touches (image, instance,
//! network interface, security group and subnet always; key pair, launch
//! template and volume when used); with TagSpecifications it also authorises
//! `ec2:CreateTags` with `ec2:CreateAction` = `RunInstances` ("Grant
//! permission to tag resources during creation",
//! docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html).
//! An instance profile needs `iam:PassRole` on its role, passed to
//! `ec2.amazonaws.com`. PutParameter carries no tags, so no
//! `ssm:AddTagsToResource`; SecureString parameters use the AWS-managed key,
//! so no `kms:` action.

use jenkins_cloud_core::iam::{AwsOperation, IamAction, Need};

const fn plain(action: &'static str, need: Need) -> IamAction {
    IamAction {
        action,
        need,
        resource_types: &[],
        condition_keys: &[],
    }
}

const fn own_instance(action: &'static str, need: Need) -> IamAction {
    IamAction {
        action,
        need,
        resource_types: &["instance"],
        condition_keys: &["aws:ResourceTag/${TagKey}"],
    }
}

/// The operations, by the SDK's names.
pub const OPERATIONS: &[AwsOperation] = &[
    AwsOperation {
        operation: "RunInstances",
        service: "ec2",
        actions: &[
            IamAction {
                action: "ec2:RunInstances",
                need: Need::Always,
                // Required: image, instance, network-interface,
                // security-group, subnet; optional among them: key-pair,
                // launch-template, volume. (No spot-instances-request: spot
                // options of RunInstances authorise none.)
                resource_types: &[
                    "image",
                    "instance",
                    "network-interface",
                    "security-group",
                    "subnet",
                    "key-pair",
                    "launch-template",
                    "volume",
                ],
                condition_keys: &["aws:RequestTag/${TagKey}"],
            },
            IamAction {
                action: "ec2:CreateTags",
                need: Need::TagOnCreate,
                resource_types: &["instance", "volume", "network-interface"],
                condition_keys: &["ec2:CreateAction"],
            },
            IamAction {
                action: "iam:PassRole",
                need: Need::PassRole,
                resource_types: &["role"],
                condition_keys: &["iam:PassedToService"],
            },
        ],
    },
    AwsOperation {
        operation: "DescribeInstances",
        service: "ec2",
        actions: &[plain("ec2:DescribeInstances", Need::Always)],
    },
    AwsOperation {
        operation: "TerminateInstances",
        service: "ec2",
        actions: &[own_instance("ec2:TerminateInstances", Need::Always)],
    },
    AwsOperation {
        operation: "StopInstances",
        service: "ec2",
        actions: &[own_instance("ec2:StopInstances", Need::WarmPool)],
    },
    AwsOperation {
        operation: "StartInstances",
        service: "ec2",
        actions: &[own_instance("ec2:StartInstances", Need::WarmPool)],
    },
    AwsOperation {
        operation: "CreateTags",
        service: "ec2",
        actions: &[own_instance("ec2:CreateTags", Need::WarmPool)],
    },
    // Needed by every launch whose template names no `platform`: the AMI's
    // platform comes from DescribeImages (cached per image id).
    AwsOperation {
        operation: "DescribeImages",
        service: "ec2",
        actions: &[plain("ec2:DescribeImages", Need::Always)],
    },
    AwsOperation {
        operation: "PutParameter",
        service: "ssm",
        actions: &[IamAction {
            action: "ssm:PutParameter",
            need: Need::SsmSecrets,
            resource_types: &["parameter"],
            condition_keys: &[],
        }],
    },
    AwsOperation {
        operation: "DeleteParameter",
        service: "ssm",
        actions: &[IamAction {
            action: "ssm:DeleteParameter",
            need: Need::SsmSecrets,
            resource_types: &["parameter"],
            condition_keys: &[],
        }],
    },
    AwsOperation {
        operation: "GetParameter",
        service: "ssm",
        actions: &[IamAction {
            action: "ssm:GetParameter",
            need: Need::SsmImage,
            resource_types: &["parameter"],
            condition_keys: &[],
        }],
    },
    // Security group names are resolved at launch: DescribeSubnets for the
    // first subnet's VPC, DescribeSecurityGroups by name in it (`check`
    // probes both too). Describe* actions support no resource-level
    // permissions, so `Resource: "*"` (Service Authorization Reference,
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
    AwsOperation {
        operation: "DescribeSubnets",
        service: "ec2",
        actions: &[plain("ec2:DescribeSubnets", Need::Always)],
    },
    AwsOperation {
        operation: "DescribeSecurityGroups",
        service: "ec2",
        actions: &[plain("ec2:DescribeSecurityGroups", Need::Always)],
    },
];
