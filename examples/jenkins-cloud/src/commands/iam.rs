//! `iam-policy`: the least-privilege IAM policy a configuration needs.
//!
//! The actions come from the backends' operation tables
//! (`jenkins_cloud_fargate::iam::OPERATIONS`, `jenkins_cloud_ec2::iam::OPERATIONS`):
//! every action a table lists whose [`Need`] the configuration has, and no
//! other. This module only says how each action is scoped: task-definition
//! families of this owner, the configured clusters, the owner tag on
//! everything started, stopped or tagged, the roles templates pass. Actions
//! whose resource types are `*` only (Describe, List, RegisterTaskDefinition…)
//! get `*`. Statements with the same resources and condition are merged.

use std::collections::BTreeSet;

use jenkins_cloud_core::backend::tags;
use jenkins_cloud_core::iam::{AwsOperation, IamAction, Need};
use jenkins_cloud_ec2::Ec2Spec;
use serde_json::{json, Value};

use crate::config::{CloudKind, CloudSettings, Config};

/// The policy document (IAM JSON) for `config`.
pub fn policy(config: &Config) -> Value {
    let mut statements: Vec<Value> = Vec::new();
    for cloud in &config.clouds {
        let (table, needs): (&[AwsOperation], BTreeSet<Need>) = match cloud.kind {
            CloudKind::Fargate => (jenkins_cloud_fargate::iam::OPERATIONS, fargate_needs(cloud)),
            CloudKind::Ec2 => (jenkins_cloud_ec2::iam::OPERATIONS, ec2_needs(cloud)),
            CloudKind::Memory => continue,
        };
        let scope = Scope::new(config, cloud);
        let mut grouped: Vec<(String, Value, Value, Vec<&str>)> = Vec::new();
        for op in table {
            for action in op.actions.iter().filter(|a| needs.contains(&a.need)) {
                for (sid, resource, condition) in scope.of(op, action) {
                    match grouped
                        .iter_mut()
                        .find(|(_, r, c, _)| *r == resource && *c == condition)
                    {
                        Some((_, _, _, actions)) => actions.push(action.action),
                        None => grouped.push((sid, resource, condition, vec![action.action])),
                    }
                }
            }
        }
        for (sid_part, resource, condition, mut actions) in grouped {
            actions.sort_unstable();
            actions.dedup();
            let mut statement = json!({
                "Sid": sid(&cloud.name, &sid_part),
                "Effect": "Allow",
                "Action": actions,
                "Resource": resource,
            });
            if !condition.is_null() {
                statement["Condition"] = condition;
            }
            statements.push(statement);
        }
    }
    dedup_sids(&mut statements);
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// What a Fargate cloud's templates need beyond the always-needed actions.
fn fargate_needs(cloud: &CloudSettings) -> BTreeSet<Need> {
    let mut needs = BTreeSet::from([Need::Always, Need::TagOnCreate, Need::Check]);
    if !roles(cloud).is_empty() {
        needs.insert(Need::PassRole);
    }
    if cloud
        .templates
        .iter()
        .any(|t| t.spec.get("launch_batching").and_then(Value::as_bool) == Some(true))
    {
        needs.insert(Need::Batching);
    }
    needs
}

/// What an EC2 cloud's templates need beyond the always-needed actions.
fn ec2_needs(cloud: &CloudSettings) -> BTreeSet<Need> {
    let mut needs = BTreeSet::from([Need::Always, Need::TagOnCreate, Need::Check]);
    for t in &cloud.templates {
        let Ok(spec) = Ec2Spec::parse(&t.spec) else {
            continue;
        };
        if spec.warm_pool {
            needs.insert(Need::WarmPool);
        }
        if spec.instance_profile.is_some() {
            needs.insert(Need::PassRole);
        }
        if matches!(
            spec.secret_delivery,
            jenkins_cloud_ec2::spec::SecretDelivery::Ssm
        ) {
            needs.insert(Need::SsmSecrets);
        }
        if matches!(
            spec.ami,
            jenkins_cloud_ec2::spec::AmiSelector::SsmParameter { .. }
        ) {
            needs.insert(Need::SsmImage);
        }
        // A name filter is resolved with DescribeImages; so is any image
        // whose root device must be known for a `root_volume`.
        if spec
            .root_volume
            .as_ref()
            .is_some_and(|r| r.device_name.is_none())
            || matches!(
                spec.ami,
                jenkins_cloud_ec2::spec::AmiSelector::Filter { .. }
            )
        {
            needs.insert(Need::ImageLookup);
        }
    }
    needs
}

fn roles(cloud: &CloudSettings) -> BTreeSet<String> {
    spec_strings(cloud, "task_role_arn")
        .into_iter()
        .chain(spec_strings(cloud, "execution_role_arn"))
        .collect()
}

/// How each action of one cloud is scoped.
struct Scope<'a> {
    config: &'a Config,
    cloud: &'a CloudSettings,
    region: &'a str,
    account: &'a str,
}

impl<'a> Scope<'a> {
    fn new(config: &'a Config, cloud: &'a CloudSettings) -> Self {
        Self {
            config,
            cloud,
            region: cloud.region.as_deref().unwrap_or("*"),
            account: cloud.account_id.as_deref().unwrap_or("*"),
        }
    }

    fn owner_tag(&self, kind: &str) -> Value {
        json!({"StringEquals": {format!("aws:{kind}/{}", tags::OWNER): self.config.owner.as_str()}})
    }

    /// The statements granting `action` of `op`: (Sid suffix, Resource,
    /// Condition or null) each.
    fn of(&self, op: &AwsOperation, action: &IamAction) -> Vec<(String, Value, Value)> {
        if action.resource_types.is_empty() {
            let what = if action.need == Need::Check {
                "Check"
            } else {
                "AnyResource"
            };
            return vec![(what.into(), json!("*"), Value::Null)];
        }
        if action.action == "ec2:RunInstances" {
            // What it creates only with our owner tag in the request; what it
            // uses (subnets, groups, images…) carries no tag to condition on.
            return vec![
                (
                    "RunTaggedInstances".into(),
                    json!(self.created()),
                    self.owner_tag("RequestTag"),
                ),
                ("RunInstancesUses".into(), json!(self.used()), Value::Null),
            ];
        }
        let one = match (op.service, action.action, action.need) {
            ("ecs", "ecs:RunTask", _) => (
                "RunTask".into(),
                json!(self.families()),
                json!({"ArnEquals": {"ecs:cluster": self.cluster_arns()}}),
            ),
            ("ecs", "ecs:TagResource", Need::TagOnCreate) if op.operation == "RunTask" => (
                "TagOnRun".into(),
                json!(self.tasks()),
                json!({"StringEquals": {"ecs:CreateAction": "RunTask"}}),
            ),
            ("ecs", "ecs:TagResource", Need::TagOnCreate) => (
                "TagOnRegister".into(),
                json!(self.families()),
                json!({"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}}),
            ),
            ("ecs", "ecs:DescribeTasks" | "ecs:ListTasks", _) => (
                "ReadTasks".into(),
                json!("*"),
                json!({"ArnEquals": {"ecs:cluster": self.cluster_arns()}}),
            ),
            ("ecs", "ecs:StopTask" | "ecs:TagResource", _) => (
                "OwnTasks".into(),
                json!(self.tasks()),
                self.owner_tag("ResourceTag"),
            ),
            ("ecs", "ecs:DescribeClusters", _) => {
                ("Check".into(), json!(self.cluster_arns()), Value::Null)
            }
            ("ecs", "iam:PassRole", _) => (
                "PassTaskRoles".into(),
                json!(roles(self.cloud)),
                json!({"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}),
            ),
            ("ec2", "ec2:CreateTags", Need::TagOnCreate) => (
                "TagOnLaunch".into(),
                json!(self.created()),
                json!({"StringEquals": {"ec2:CreateAction": "RunInstances"}}),
            ),
            ("ec2", _, _) if action.resource_types == ["instance"] => (
                "OwnInstances".into(),
                json!(format!(
                    "arn:aws:ec2:{}:{}:instance/*",
                    self.region, self.account
                )),
                self.owner_tag("ResourceTag"),
            ),
            ("ec2", "iam:PassRole", _) => (
                "PassInstanceRole".into(),
                json!(format!("arn:aws:iam::{}:role/*", self.account)),
                json!({"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
            ),
            ("ssm", "ssm:GetParameter", _) => (
                "AmiParameters".into(),
                json!(self.ami_parameters()),
                Value::Null,
            ),
            ("ssm", _, _) => (
                "AgentSecrets".into(),
                json!(format!(
                    "arn:aws:ssm:{}:{}:parameter/jenkins-cloud/{}/*",
                    self.region,
                    self.account,
                    self.config.owner.as_str()
                )),
                Value::Null,
            ),
            _ => ("Unscoped".into(), json!("*"), Value::Null),
        };
        vec![one]
    }

    fn cluster_arns(&self) -> Vec<String> {
        let (r, a) = (self.region, self.account);
        self.cloud
            .clusters
            .iter()
            .map(|c| {
                if c.starts_with("arn:") {
                    c.clone()
                } else {
                    format!("arn:aws:ecs:{r}:{a}:cluster/{c}")
                }
            })
            .collect()
    }

    fn families(&self) -> Vec<String> {
        let (r, a) = (self.region, self.account);
        let mut families = vec![format!(
            "arn:aws:ecs:{r}:{a}:task-definition/{}-{}-*",
            self.cloud.family_prefix,
            self.config.owner.as_str()
        )];
        for td in spec_strings(self.cloud, "task_definition") {
            families.push(if td.starts_with("arn:") {
                td
            } else {
                format!(
                    "arn:aws:ecs:{r}:{a}:task-definition/{}",
                    td.split(':').next().unwrap_or(&td)
                ) + ":*"
            });
        }
        families
    }

    fn tasks(&self) -> Vec<String> {
        let (r, a) = (self.region, self.account);
        self.cloud
            .clusters
            .iter()
            .map(|c| c.rsplit('/').next().unwrap_or(c))
            .map(|c| format!("arn:aws:ecs:{r}:{a}:task/{c}/*"))
            .collect()
    }

    /// What RunInstances creates (and tags): instances, volumes, interfaces.
    fn created(&self) -> Vec<String> {
        ["instance", "volume", "network-interface"]
            .iter()
            .map(|k| format!("arn:aws:ec2:{}:{}:{k}/*", self.region, self.account))
            .collect()
    }

    /// What RunInstances uses: the configured subnets and groups (or any),
    /// images and key pairs.
    fn used(&self) -> Vec<String> {
        let (r, a) = (self.region, self.account);
        let list = |field: &str| -> BTreeSet<String> {
            self.cloud
                .templates
                .iter()
                .flat_map(|t| strings(&t.spec, field))
                .collect()
        };
        let mut used = Vec::new();
        for (field, kind) in [("subnets", "subnet"), ("security_groups", "security-group")] {
            let ids = list(field);
            if ids.is_empty() {
                used.push(format!("arn:aws:ec2:{r}:{a}:{kind}/*"));
            }
            used.extend(
                ids.iter()
                    .map(|id| format!("arn:aws:ec2:{r}:{a}:{kind}/{id}")),
            );
        }
        used.push(format!("arn:aws:ec2:{r}::image/*"));
        used.push(format!("arn:aws:ec2:{r}:{a}:key-pair/*"));
        used
    }

    fn ami_parameters(&self) -> Vec<String> {
        let (r, a) = (self.region, self.account);
        let params: BTreeSet<String> = self
            .cloud
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
        params
            .iter()
            .map(|p| {
                let account = if p.starts_with("/aws/") { "" } else { a };
                format!("arn:aws:ssm:{r}:{account}:parameter{p}")
            })
            .collect()
    }
}

fn sid(cloud: &str, what: &str) -> String {
    let clean: String = cloud
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{clean}{what}")
}

/// Makes every Sid unique (IAM requires it) by numbering repeats.
fn dedup_sids(statements: &mut [Value]) {
    let mut seen = BTreeSet::new();
    for s in statements.iter_mut() {
        let base = s["Sid"].as_str().unwrap_or_default().to_owned();
        let mut sid = base.clone();
        let mut n = 2;
        while !seen.insert(sid.clone()) {
            sid = format!("{base}{n}");
            n += 1;
        }
        s["Sid"] = json!(sid);
    }
}

fn spec_strings(cloud: &CloudSettings, field: &str) -> BTreeSet<String> {
    cloud
        .templates
        .iter()
        .filter_map(|t| t.spec.get(field).and_then(Value::as_str).map(str::to_owned))
        .collect()
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

/// The policy as a Terraform `aws_iam_policy_document` data source named
/// `name` (`iam-policy --format terraform`).
pub fn terraform(policy: &Value, name: &str) -> String {
    let list = |v: &Value| -> String {
        let items: Vec<String> = match v {
            Value::Array(a) => a.iter().map(|x| x.to_string()).collect(),
            other => vec![other.to_string()],
        };
        format!("[{}]", items.join(", "))
    };
    let mut out = format!("data \"aws_iam_policy_document\" \"{name}\" {{\n");
    for s in policy["Statement"].as_array().into_iter().flatten() {
        out.push_str("  statement {\n");
        out.push_str(&format!("    sid       = {}\n", s["Sid"]));
        out.push_str(&format!("    effect    = {}\n", s["Effect"]));
        out.push_str(&format!("    actions   = {}\n", list(&s["Action"])));
        out.push_str(&format!("    resources = {}\n", list(&s["Resource"])));
        for (test, vars) in s["Condition"].as_object().into_iter().flatten() {
            for (variable, values) in vars.as_object().into_iter().flatten() {
                out.push_str("    condition {\n");
                out.push_str(&format!("      test     = \"{test}\"\n"));
                out.push_str(&format!("      variable = \"{variable}\"\n"));
                out.push_str(&format!("      values   = {}\n", list(values)));
                out.push_str("    }\n");
            }
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}
