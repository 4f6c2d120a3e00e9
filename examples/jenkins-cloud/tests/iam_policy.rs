//! `iam-policy` against the backends' operation tables and the AWS facts they
//! cite: every needed action granted, nothing else, each statement's resources
//! and condition keys among those the Service Authorization Reference lists.

use std::collections::BTreeSet;

use jenkins_cloud_cli::commands::iam;
use jenkins_cloud_cli::config::Config;
use jenkins_cloud_core::iam::{AwsOperation, IamAction};
use serde_json::Value;

/// Every feature that needs a permission: roles, batching, warm pool, spot,
/// an AMI through SSM, an instance profile, SSM secrets.
const FULL: &str = r#"owner: ci-full
jenkins: {url: "https://jenkins.example.com/", user: bot, token_env: JC_IAM_TEST_TOKEN}
clouds:
  - name: fargate
    kind: fargate
    region: us-east-1
    account_id: "123456789012"
    clusters: [ci]
    defaults:
      cluster: ci
      subnets: [subnet-0a1b2c3d4e5f60001]
      security_groups: [sg-0a1b2c3d4e5f60001]
    templates:
      - name: linux
        labels: linux
        spec: {image: "jenkins/inbound-agent", cpu: 1024, memory: 2048, execution_role_arn: "arn:aws:iam::123456789012:role/exec"}
      - name: batched
        labels: batch
        spec: {image: "acme/agent", cpu: 1024, memory: 2048, agent_secret: fetched_by_agent, launch_batching: true}
  - name: vm
    kind: ec2
    region: eu-west-1
    account_id: "123456789012"
    templates:
      - name: pooled
        labels: pooled
        spec: {ami: {ssm_parameter: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64}, instance_types: [m6i.large], subnets: [subnet-0a1b2c3d4e5f60009], security_groups: [sg-0a1b2c3d4e5f60009], instance_profile: agent, warm_pool: true}
      - name: spot
        labels: spot
        spec: {ami: {name: "agent-*", owners: [self]}, instance_types: [m6i.large], spot: {fallback_to_on_demand: true}}
"#;

fn parse(text: &str) -> Config {
    Config::parse(text, "iam-test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn statements(p: &Value) -> &Vec<Value> {
    p["Statement"].as_array().expect("statements")
}

fn granted(p: &Value) -> BTreeSet<String> {
    statements(p)
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn with_action<'a>(p: &'a Value, action: &str) -> Vec<&'a Value> {
    statements(p)
        .iter()
        .filter(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
        .collect()
}

fn tables() -> [&'static [AwsOperation]; 2] {
    [
        jenkins_cloud_fargate::iam::OPERATIONS,
        jenkins_cloud_ec2::iam::OPERATIONS,
    ]
}

fn table_entries(action: &str) -> Vec<&'static IamAction> {
    tables()
        .iter()
        .flat_map(|t| t.iter())
        .flat_map(|o| o.actions.iter())
        .filter(|a| a.action == action)
        .collect()
}

fn fargate_only(extra_spec: &str) -> Config {
    parse(&format!(
        r#"owner: ci-f
jenkins: {{url: "https://jenkins.example.com/", user: bot, token_env: JC_IAM_TEST_TOKEN}}
clouds:
  - name: fargate
    kind: fargate
    region: us-east-1
    account_id: "123456789012"
    clusters: [ci]
    defaults: {{cluster: ci, subnets: [subnet-0a1b2c3d4e5f60001], security_groups: [sg-0a1b2c3d4e5f60001]}}
    templates:
      - name: linux
        labels: linux
        spec: {{image: "acme/agent", cpu: 1024, memory: 2048{extra_spec}}}
"#
    ))
}

/// The three defects found against AWS's documentation: stale revisions could
/// not be deregistered, tagged RegisterTaskDefinition needs ecs:TagResource
/// with `ecs:CreateAction`, and batched launches tag running tasks.
#[test]
fn fargate_grants_deregistration_and_every_tag_call() {
    let p = iam::policy(&fargate_only(""));
    assert!(
        granted(&p).contains("ecs:DeregisterTaskDefinition"),
        "stale revisions must be deregistered: {p:#}"
    );
    let on_register: Vec<_> = with_action(&p, "ecs:TagResource")
        .into_iter()
        .filter(|s| s["Condition"]["StringEquals"]["ecs:CreateAction"] == "RegisterTaskDefinition")
        .collect();
    assert_eq!(on_register.len(), 1, "{p:#}");
    assert_eq!(
        on_register[0]["Resource"][0],
        "arn:aws:ecs:us-east-1:123456789012:task-definition/jenkins-cloud-ci-f-*"
    );
    let on_run: Vec<_> = with_action(&p, "ecs:TagResource")
        .into_iter()
        .filter(|s| s["Condition"]["StringEquals"]["ecs:CreateAction"] == "RunTask")
        .collect();
    assert_eq!(on_run.len(), 1, "{p:#}");

    let batched = iam::policy(&fargate_only(
        ", agent_secret: fetched_by_agent, launch_batching: true",
    ));
    let after_run: Vec<_> = with_action(&batched, "ecs:TagResource")
        .into_iter()
        .filter(|s| s["Condition"]["StringEquals"]["aws:ResourceTag/jenkins-cloud:owner"] == "ci-f")
        .collect();
    assert_eq!(
        after_run.len(),
        1,
        "batched tasks are tagged after RunTask: {batched:#}"
    );
    assert_eq!(
        after_run[0]["Resource"][0],
        "arn:aws:ecs:us-east-1:123456789012:task/ci/*"
    );
    assert!(
        with_action(&p, "ecs:TagResource")
            .iter()
            .all(|s| s["Condition"]["StringEquals"]
                .get("aws:ResourceTag/jenkins-cloud:owner")
                .is_none()),
        "without batching no task is tagged after it runs"
    );
}

/// The policy grants exactly the tables' actions when every feature is used,
/// and only the always-needed ones (plus check's) for a plain template.
#[test]
fn the_policy_grants_exactly_what_the_tables_list() {
    let all: BTreeSet<String> = tables()
        .iter()
        .flat_map(|t| t.iter())
        .flat_map(|o| o.actions.iter())
        .map(|a| a.action.to_owned())
        .collect();
    assert_eq!(granted(&iam::policy(&parse(FULL))), all);

    let plain = granted(&iam::policy(&fargate_only("")));
    for action in ["iam:PassRole", "ssm:PutParameter", "ec2:RunInstances"] {
        assert!(
            !plain.contains(action),
            "{action} granted without need: {plain:?}"
        );
    }
    assert!(
        !all.contains("ssm:AddTagsToResource"),
        "PutParameter carries no tags, so tagging rights are not needed"
    );
}

/// Each statement's condition keys are among those its actions support, and
/// each resource is of a type its actions are authorised on (as the tables
/// record from the Service Authorization Reference).
#[test]
fn statements_use_only_documented_resource_types_and_condition_keys() {
    let p = iam::policy(&parse(FULL));
    let mut sids = BTreeSet::new();
    for s in statements(&p) {
        assert!(
            sids.insert(s["Sid"].as_str().unwrap().to_owned()),
            "duplicate Sid in {s:#}"
        );
        let actions: Vec<&str> = s["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let keys: Vec<String> = s
            .get("Condition")
            .and_then(Value::as_object)
            .map(|ops| {
                ops.values()
                    .flat_map(|m| m.as_object().unwrap().keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let resources: Vec<String> = match &s["Resource"] {
            Value::String(r) => vec![r.clone()],
            Value::Array(rs) => rs.iter().map(|r| r.as_str().unwrap().to_owned()).collect(),
            other => panic!("resource {other}"),
        };
        for action in &actions {
            let entries = table_entries(action);
            assert!(!entries.is_empty(), "{action} is in no table");
            for key in &keys {
                let documented = entries.iter().any(|e| {
                    e.condition_keys
                        .iter()
                        .any(|k| match k.strip_suffix("${TagKey}") {
                            Some(prefix) => key.starts_with(prefix),
                            None => k == key,
                        })
                });
                assert!(
                    documented,
                    "{action} does not support condition key {key}: {s:#}"
                );
            }
            for r in resources.iter().filter(|r| *r != "*") {
                let kind = resource_type(r);
                let documented = entries
                    .iter()
                    .any(|e| e.resource_types.contains(&kind.as_str()));
                assert!(
                    documented,
                    "{action} is not authorised on {kind} ({r}): {s:#}"
                );
            }
        }
    }
}

/// The resource type of an ARN: `task-definition` of
/// `arn:aws:ecs:…:task-definition/x`, `parameter` of `arn:aws:ssm:…:parameter/x`.
fn resource_type(arn: &str) -> String {
    let rest = arn.splitn(6, ':').nth(5).unwrap_or_default();
    rest.split(['/', ':']).next().unwrap_or_default().to_owned()
}

#[test]
fn terraform_output_is_the_same_policy() {
    let config = parse(FULL);
    let p = iam::policy(&config);
    let tf = iam::terraform(&p, "jenkins_cloud");
    assert!(
        tf.starts_with("data \"aws_iam_policy_document\" \"jenkins_cloud\" {"),
        "{tf}"
    );
    assert_eq!(
        tf.matches("  statement {").count(),
        statements(&p).len(),
        "{tf}"
    );
    for action in granted(&p) {
        assert!(
            tf.contains(&format!("\"{action}\"")),
            "{action} missing:\n{tf}"
        );
    }
    assert!(tf.contains("test     = \"StringEquals\""), "{tf}");
    assert!(tf.contains("variable = \"ecs:CreateAction\""), "{tf}");
    assert!(
        tf.contains("values   = [\"RegisterTaskDefinition\"]"),
        "{tf}"
    );
}
