//! Every AWS operation this backend can call, and the IAM actions each needs:
//! the one table the program's `iam-policy` and the tests read.
//!
//! Resource types and condition keys from the Service Authorization
//! Reference, "Actions, resources, and condition keys for Amazon Elastic
//! Container Service" (docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html).
//! Tag-on-create: when RunTask or RegisterTaskDefinition carries tags, ECS
//! also authorises `ecs:TagResource` on the new resource, with the condition
//! key `ecs:CreateAction` naming the create call ("Grant permission to tag
//! resources on creation", docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html).
//! RunTask and RegisterTaskDefinition with task or execution roles need
//! `iam:PassRole` on those roles, passed to `ecs-tasks.amazonaws.com`.

use jenkins_cloud_core::iam::{AwsOperation, IamAction, Need};

const PASS_ROLE: IamAction = IamAction {
    action: "iam:PassRole",
    need: Need::PassRole,
    resource_types: &["role"],
    condition_keys: &["iam:PassedToService"],
};

/// The operations, by the SDK's names.
pub const OPERATIONS: &[AwsOperation] = &[
    AwsOperation {
        operation: "RunTask",
        service: "ecs",
        actions: &[
            IamAction {
                action: "ecs:RunTask",
                need: Need::Always,
                resource_types: &["task-definition"],
                condition_keys: &["ecs:cluster"],
            },
            IamAction {
                action: "ecs:TagResource",
                need: Need::TagOnCreate,
                resource_types: &["task"],
                condition_keys: &["ecs:CreateAction"],
            },
            PASS_ROLE,
        ],
    },
    AwsOperation {
        operation: "DescribeTasks",
        service: "ecs",
        actions: &[IamAction {
            action: "ecs:DescribeTasks",
            need: Need::Always,
            resource_types: &["task"],
            condition_keys: &["ecs:cluster"],
        }],
    },
    AwsOperation {
        operation: "StopTask",
        service: "ecs",
        actions: &[IamAction {
            action: "ecs:StopTask",
            need: Need::Always,
            resource_types: &["task"],
            condition_keys: &["aws:ResourceTag/${TagKey}"],
        }],
    },
    AwsOperation {
        operation: "ListTasks",
        service: "ecs",
        actions: &[IamAction {
            action: "ecs:ListTasks",
            need: Need::Always,
            resource_types: &["container-instance"],
            condition_keys: &["ecs:cluster"],
        }],
    },
    AwsOperation {
        operation: "RegisterTaskDefinition",
        service: "ecs",
        actions: &[
            IamAction {
                action: "ecs:RegisterTaskDefinition",
                need: Need::Always,
                resource_types: &[],
                condition_keys: &[],
            },
            IamAction {
                action: "ecs:TagResource",
                need: Need::TagOnCreate,
                resource_types: &["task-definition"],
                condition_keys: &["ecs:CreateAction"],
            },
            PASS_ROLE,
        ],
    },
    AwsOperation {
        operation: "DescribeTaskDefinition",
        service: "ecs",
        actions: &[IamAction {
            action: "ecs:DescribeTaskDefinition",
            need: Need::Always,
            resource_types: &[],
            condition_keys: &[],
        }],
    },
    AwsOperation {
        operation: "ListTaskDefinitions",
        service: "ecs",
        actions: &[IamAction {
            action: "ecs:ListTaskDefinitions",
            need: Need::Always,
            resource_types: &[],
            condition_keys: &[],
        }],
    },
    AwsOperation {
        operation: "DeregisterTaskDefinition",
        service: "ecs",
        actions: &[IamAction {
            action: "ecs:DeregisterTaskDefinition",
            need: Need::Always,
            resource_types: &[],
            condition_keys: &[],
        }],
    },
    AwsOperation {
        operation: "TagResource",
        service: "ecs",
        actions: &[IamAction {
            action: "ecs:TagResource",
            need: Need::Batching,
            resource_types: &["task"],
            condition_keys: &["aws:ResourceTag/${TagKey}"],
        }],
    },
    AwsOperation {
        operation: "DescribeClusters",
        service: "ecs",
        actions: &[IamAction {
            action: "ecs:DescribeClusters",
            need: Need::Check,
            resource_types: &["cluster"],
            condition_keys: &[],
        }],
    },
    AwsOperation {
        operation: "DescribeSubnets",
        service: "ec2",
        actions: &[IamAction {
            action: "ec2:DescribeSubnets",
            need: Need::Check,
            resource_types: &[],
            condition_keys: &[],
        }],
    },
    AwsOperation {
        operation: "DescribeSecurityGroups",
        service: "ec2",
        actions: &[IamAction {
            action: "ec2:DescribeSecurityGroups",
            need: Need::Check,
            resource_types: &[],
            condition_keys: &[],
        }],
    },
];
