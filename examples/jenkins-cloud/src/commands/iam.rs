//! `iam-policy`: the least-privilege IAM policy a configuration needs.
//!
//! Scoped where AWS allows: task-definition families of this owner, the
//! configured clusters, the owner tag on everything started or stopped, the
//! roles templates pass. Describe/List calls do not support resource scoping in
//! ECS and EC2, so they use `*`.

use std::collections::BTreeSet;

use jenkins_cloud_core::backend::tags;
use serde_json::{json, Value};

use crate::config::{CloudKind, CloudSettings, Config};

/// The policy document (IAM JSON) for `config`.
pub fn policy(config: &Config) -> Value {
    let mut statements = Vec::new();
    for cloud in &config.clouds {
        match cloud.kind {
            CloudKind::Fargate => fargate(config, cloud, &mut statements),
            CloudKind::Ec2 => ec2(config, cloud, &mut statements),
            CloudKind::Memory => {}
        }
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn region(c: &CloudSettings) -> &str {
    c.region.as_deref().unwrap_or("*")
}

fn account(c: &CloudSettings) -> &str {
    c.account_id.as_deref().unwrap_or("*")
}

fn sid(cloud: &str, what: &str) -> String {
    let clean: String = cloud
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{clean}{what}")
}

fn spec_strings(cloud: &CloudSettings, field: &str) -> BTreeSet<String> {
    cloud
        .templates
        .iter()
        .filter_map(|t| t.spec.get(field).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

fn fargate(config: &Config, cloud: &CloudSettings, out: &mut Vec<Value>) {
    let (r, a) = (region(cloud), account(cloud));
    let owner = config.owner.as_str();
    let cluster_arns: Vec<String> = cloud
        .clusters
        .iter()
        .map(|c| {
            if c.starts_with("arn:") {
                c.clone()
            } else {
                format!("arn:aws:ecs:{r}:{a}:cluster/{c}")
            }
        })
        .collect();
    let cluster_names: Vec<String> = cloud
        .clusters
        .iter()
        .map(|c| c.rsplit('/').next().unwrap_or(c).to_owned())
        .collect();
    let family = format!(
        "arn:aws:ecs:{r}:{a}:task-definition/{}-{owner}-*",
        cloud.family_prefix
    );
    let mut families = vec![family.clone()];
    for td in spec_strings(cloud, "task_definition") {
        families.push(if td.starts_with("arn:") {
            td
        } else {
            format!(
                "arn:aws:ecs:{r}:{a}:task-definition/{}",
                td.split(':').next().unwrap_or(&td)
            ) + ":*"
        });
    }
    let tasks: Vec<String> = cluster_names
        .iter()
        .map(|c| format!("arn:aws:ecs:{r}:{a}:task/{c}/*"))
        .collect();
    out.push(json!({
        "Sid": sid(&cloud.name, "RunTask"),
        "Effect": "Allow",
        "Action": ["ecs:RunTask"],
        "Resource": families,
        "Condition": {"ArnEquals": {"ecs:cluster": cluster_arns}}
    }));
    out.push(json!({
        "Sid": sid(&cloud.name, "TagOnRun"),
        "Effect": "Allow",
        "Action": ["ecs:TagResource"],
        "Resource": tasks,
        "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}}
    }));
    out.push(json!({
        "Sid": sid(&cloud.name, "StopOwnTasks"),
        "Effect": "Allow",
        "Action": ["ecs:StopTask"],
        "Resource": tasks,
        "Condition": {"StringEquals": {format!("aws:ResourceTag/{}", tags::OWNER): owner}}
    }));
    out.push(json!({
        "Sid": sid(&cloud.name, "ReadTasks"),
        "Effect": "Allow",
        "Action": ["ecs:DescribeTasks", "ecs:ListTasks"],
        "Resource": "*",
        "Condition": {"ArnEquals": {"ecs:cluster": cluster_arns}}
    }));
    out.push(json!({
        "Sid": sid(&cloud.name, "TaskDefinitions"),
        "Effect": "Allow",
        "Action": ["ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions", "ecs:DescribeClusters"],
        "Resource": "*"
    }));
    let roles: BTreeSet<String> = spec_strings(cloud, "task_role_arn")
        .into_iter()
        .chain(spec_strings(cloud, "execution_role_arn"))
        .collect();
    if !roles.is_empty() {
        out.push(json!({
            "Sid": sid(&cloud.name, "PassTaskRoles"),
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": roles,
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
        }));
    }
    out.push(json!({
        "Sid": sid(&cloud.name, "CheckNetwork"),
        "Effect": "Allow",
        "Action": ["ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"],
        "Resource": "*"
    }));
}

fn ec2(config: &Config, cloud: &CloudSettings, out: &mut Vec<Value>) {
    let (r, a) = (region(cloud), account(cloud));
    let owner = config.owner.as_str();
    let owner_tag = format!("aws:RequestTag/{}", tags::OWNER);
    let created: Vec<String> = ["instance", "volume", "network-interface"]
        .iter()
        .map(|k| format!("arn:aws:ec2:{r}:{a}:{k}/*"))
        .collect();
    out.push(json!({
        "Sid": sid(&cloud.name, "RunTaggedInstances"),
        "Effect": "Allow",
        "Action": ["ec2:RunInstances"],
        "Resource": created,
        "Condition": {"StringEquals": {owner_tag: owner}}
    }));
    let mut used: Vec<String> = Vec::new();
    let subnets: BTreeSet<String> = cloud
        .templates
        .iter()
        .flat_map(|t| strings(&t.spec, "subnets"))
        .collect();
    let groups: BTreeSet<String> = cloud
        .templates
        .iter()
        .flat_map(|t| strings(&t.spec, "security_groups"))
        .collect();
    if subnets.is_empty() {
        used.push(format!("arn:aws:ec2:{r}:{a}:subnet/*"));
    }
    used.extend(
        subnets
            .iter()
            .map(|s| format!("arn:aws:ec2:{r}:{a}:subnet/{s}")),
    );
    if groups.is_empty() {
        used.push(format!("arn:aws:ec2:{r}:{a}:security-group/*"));
    }
    used.extend(
        groups
            .iter()
            .map(|g| format!("arn:aws:ec2:{r}:{a}:security-group/{g}")),
    );
    used.push(format!("arn:aws:ec2:{r}::image/*"));
    used.push(format!("arn:aws:ec2:{r}:{a}:key-pair/*"));
    out.push(json!({
        "Sid": sid(&cloud.name, "RunInstancesUses"),
        "Effect": "Allow",
        "Action": ["ec2:RunInstances"],
        "Resource": used
    }));
    out.push(json!({
        "Sid": sid(&cloud.name, "TagOnLaunch"),
        "Effect": "Allow",
        "Action": ["ec2:CreateTags"],
        "Resource": format!("arn:aws:ec2:{r}:{a}:*/*"),
        "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}}
    }));
    out.push(json!({
        "Sid": sid(&cloud.name, "ManageOwnInstances"),
        "Effect": "Allow",
        "Action": ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances", "ec2:CreateTags"],
        "Resource": format!("arn:aws:ec2:{r}:{a}:instance/*"),
        "Condition": {"StringEquals": {format!("aws:ResourceTag/{}", tags::OWNER): owner}}
    }));
    out.push(json!({
        "Sid": sid(&cloud.name, "Describe"),
        "Effect": "Allow",
        "Action": ["ec2:DescribeInstances", "ec2:DescribeImages", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"],
        "Resource": "*"
    }));
    let uses_ssm_secret = cloud.templates.iter().any(|t| {
        t.spec
            .get("secret_delivery")
            .and_then(Value::as_str)
            .unwrap_or("ssm")
            == "ssm"
    });
    if uses_ssm_secret {
        out.push(json!({
            "Sid": sid(&cloud.name, "AgentSecrets"),
            "Effect": "Allow",
            "Action": ["ssm:PutParameter", "ssm:DeleteParameter", "ssm:AddTagsToResource"],
            "Resource": format!("arn:aws:ssm:{r}:{a}:parameter/jenkins-cloud/{owner}/*")
        }));
    }
    let ami_params: BTreeSet<String> = cloud
        .templates
        .iter()
        .filter_map(|t| {
            t.spec
                .get("ami")?
                .get("ssm_parameter")?
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    if !ami_params.is_empty() {
        let arns: Vec<String> = ami_params
            .iter()
            .map(|p| {
                format!(
                    "arn:aws:ssm:{r}:{}:parameter{p}",
                    if p.starts_with("/aws/") { "" } else { a }
                )
            })
            .collect();
        out.push(json!({
            "Sid": sid(&cloud.name, "AmiParameters"),
            "Effect": "Allow",
            "Action": ["ssm:GetParameter"],
            "Resource": arns
        }));
    }
    if cloud
        .templates
        .iter()
        .any(|t| t.spec.get("instance_profile").is_some())
    {
        out.push(json!({
            "Sid": sid(&cloud.name, "PassInstanceRole"),
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": format!("arn:aws:iam::{a}:role/*"),
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
        }));
    }
}

fn strings(spec: &Value, field: &str) -> Vec<String> {
    spec.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
