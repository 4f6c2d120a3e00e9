//! The shipped example configurations parse and validate, and `iam-policy`
//! scopes its statements to them.

use std::path::PathBuf;

use jenkins_cloud_cli::commands::iam;
use jenkins_cloud_cli::config::{CloudKind, Config};
use serde_json::Value;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn load(name: &str) -> Config {
    Config::load(&examples_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_example_config_validates() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.templates().count() > 0, "{}", path.display());
        seen += 1;
    }
    assert!(
        seen >= 2,
        "expected the fargate and ec2 examples, saw {seen}"
    );
}

#[test]
fn fargate_example_inherits_and_merges_defaults() {
    let c = load("fargate.yaml");
    assert_eq!(c.clouds[0].kind, CloudKind::Fargate);
    let large = c.clouds[0]
        .templates
        .iter()
        .find(|t| t.name == "linux-large")
        .unwrap();
    assert_eq!(large.spec["cpu"], 4096);
    assert_eq!(large.spec["image"], "jenkins/inbound-agent:latest-jdk21");
    assert_eq!(large.spec["subnets"][1], "subnet-0a1b2c3d4e5f60002");
    assert_eq!(large.executors, 2);
}

fn statement<'a>(policy: &'a Value, action: &str) -> Vec<&'a Value> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
        .collect()
}

#[test]
fn fargate_policy_is_scoped_to_families_cluster_owner_and_roles() {
    let p = iam::policy(&load("fargate.yaml"));
    assert_eq!(p["Version"], "2012-10-17");
    let run = statement(&p, "ecs:RunTask");
    assert_eq!(run.len(), 1);
    assert_eq!(
        run[0]["Resource"][0],
        "arn:aws:ecs:us-east-1:123456789012:task-definition/jenkins-cloud-ci-prod-*"
    );
    assert_eq!(
        run[0]["Condition"]["ArnEquals"]["ecs:cluster"][0],
        "arn:aws:ecs:us-east-1:123456789012:cluster/ci-agents"
    );
    let stop = statement(&p, "ecs:StopTask");
    assert_eq!(
        stop[0]["Resource"][0],
        "arn:aws:ecs:us-east-1:123456789012:task/ci-agents/*"
    );
    assert_eq!(
        stop[0]["Condition"]["StringEquals"]["aws:ResourceTag/jenkins-cloud:owner"],
        "ci-prod"
    );
    let pass = statement(&p, "iam:PassRole");
    let roles: Vec<&str> = pass[0]["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "arn:aws:iam::123456789012:role/jenkins-agent-build",
            "arn:aws:iam::123456789012:role/jenkins-agent-execution"
        ]
    );
    assert_eq!(
        pass[0]["Condition"]["StringEquals"]["iam:PassedToService"],
        "ecs-tasks.amazonaws.com"
    );
    assert!(
        statement(&p, "ec2:RunInstances").is_empty(),
        "no EC2 rights for a Fargate-only config"
    );
}

#[test]
fn ec2_policy_is_scoped_to_owner_tag_subnets_and_ssm_path() {
    let p = iam::policy(&load("ec2.yaml"));
    let run = statement(&p, "ec2:RunInstances");
    let tagged = run.iter().find(|s| s.get("Condition").is_some()).unwrap();
    assert_eq!(
        tagged["Condition"]["StringEquals"]["aws:RequestTag/jenkins-cloud:owner"],
        "ci-ec2"
    );
    let uses = run.iter().find(|s| s.get("Condition").is_none()).unwrap();
    let res: Vec<&str> = uses["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        res.contains(&"arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0123456789abcdef1"),
        "{res:?}"
    );
    assert!(
        !res.iter().any(|r| r.ends_with("subnet/*")),
        "subnets are listed, not wildcarded"
    );
    let term = statement(&p, "ec2:TerminateInstances");
    assert_eq!(
        term[0]["Condition"]["StringEquals"]["aws:ResourceTag/jenkins-cloud:owner"],
        "ci-ec2"
    );
    let ssm = statement(&p, "ssm:PutParameter");
    assert_eq!(
        ssm[0]["Resource"],
        "arn:aws:ssm:eu-west-1:123456789012:parameter/jenkins-cloud/ci-ec2/*"
    );
    let ami = statement(&p, "ssm:GetParameter");
    assert_eq!(
        ami[0]["Resource"][0],
        "arn:aws:ssm:eu-west-1::parameter/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    );
}

/// The policies shown in docs/fargate.md and docs/ec2.md are what
/// `iam-policy` generates for the example configurations.
#[test]
fn the_docs_show_the_generated_policies() {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut seen = 0;
    for doc in ["fargate.md", "ec2.md"] {
        let text = std::fs::read_to_string(docs.join(doc)).unwrap();
        for (at, _) in text.match_indices("<!-- iam-policy: examples/config/") {
            let rest = &text[at..];
            let file = rest["<!-- iam-policy: examples/config/".len()..]
                .split(" -->")
                .next()
                .unwrap();
            let block = rest.split("```json\n").nth(1).unwrap();
            let json = block.split("\n```").next().unwrap();
            let shown: Value = serde_json::from_str(json)
                .unwrap_or_else(|e| panic!("{doc}: the policy block is not JSON: {e}"));
            assert_eq!(
                shown,
                iam::policy(&load(file)),
                "{doc} shows another policy than `iam-policy` prints for {file}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 2, "both docs carry a generated policy");
}
