use serde_json::json;

use super::*;

fn valid() -> serde_json::Value {
    json!({
        "cluster": "ci",
        "cpu": 1024,
        "memory": 2048,
        "subnets": ["subnet-0123abcd"],
        "security_groups": ["sg-0123abcd"],
    })
}

fn problems(value: serde_json::Value) -> Vec<String> {
    FargateSpec::from_value(&value).expect_err("spec should be rejected")
}

fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
    let mut v = valid();
    v[field] = value;
    v
}

#[test]
fn a_minimal_spec_is_valid_and_defaulted() {
    let spec = FargateSpec::from_value(&valid()).unwrap();
    assert_eq!(spec.image(), DEFAULT_IMAGE);
    assert_eq!(spec.container(), DEFAULT_CONTAINER);
    assert_eq!((spec.arch(), spec.os()), ("X86_64", "LINUX"));
    assert_eq!(spec.agent_secret, AgentSecretDelivery::Environment);
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let p = problems(with("cpus", json!(1)));
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("spec:") && p[0].contains("cpus"), "{p:?}");
}

#[test]
fn every_fargate_size_pair_follows_the_table() {
    for (cpu, memory, ok) in [
        (256, 512, true),
        (256, 4096, false),
        (512, 4096, true),
        (1024, 1024, false),
        (1024, 8192, true),
        (2048, 16384, true),
        (4096, 30720, true),
        (4096, 32768, false),
        (8192, 20480, true),
        (8192, 18432, false),
        (16384, 122880, true),
        (16384, 36864, false),
        (3000, 4096, false),
    ] {
        let mut v = with("cpu", json!(cpu));
        v["memory"] = json!(memory);
        assert_eq!(
            FargateSpec::from_value(&v).is_ok(),
            ok,
            "cpu {cpu} memory {memory}"
        );
    }
    let p = problems(with("memory", json!(1000)));
    assert_eq!(p, vec!["spec.memory: 1000 MiB is not allowed with cpu 1024 (allowed: 2048–8192 in steps of 1024)"]);
}

#[test]
fn windows_sizes_and_arm_are_checked() {
    let mut v = with("operating_system", json!("WINDOWS_SERVER_2022_CORE"));
    v["cpu"] = json!(512);
    v["memory"] = json!(1024);
    v["cpu_architecture"] = json!("ARM64");
    let p = problems(v);
    assert!(
        p.iter()
            .any(|m| m.starts_with("spec.cpu: 512 is not allowed on Windows")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("spec.cpu_architecture: ARM64 is Linux only")),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once_with_its_field() {
    let p = problems(json!({
        "cluster": "",
        "cpu": 1024,
        "subnets": ["subnet-1", "vpc-2"],
        "security_groups": [],
        "environment": {"JENKINS_SECRET": "x", "1BAD": "y"},
        "secrets": {"TOKEN": "plain-text"},
        "logs": {"group": "/ci", "region": "us-east-1"},
        "ephemeral_storage_gib": 10,
        "efs_volumes": [{"name": "cache", "file_system_id": "fs-12", "container_path": "rel", "access_point_id": "fsap-1", "transit_encryption": false}],
        "capacity_providers": [{"provider": "SPOT", "weight": 1}],
        "tags": {"aws:x": "y"},
        "enable_execute_command": true,
    }));
    let expect = [
        "spec.cluster:",
        "spec.subnets[1]:",
        "spec.security_groups:",
        "spec.memory: required",
        "spec.environment.JENKINS_SECRET:",
        "spec.environment.1BAD:",
        "spec.secrets.TOKEN:",
        "spec.execution_role_arn: required by spec.logs",
        "spec.execution_role_arn: required by spec.secrets",
        "spec.ephemeral_storage_gib:",
        "spec.efs_volumes[0].container_path:",
        "spec.efs_volumes[0].transit_encryption:",
        "spec.capacity_providers[0].provider:",
        "spec.tags.aws:x:",
        "spec.enable_execute_command:",
    ];
    for e in expect {
        assert!(
            p.iter().any(|m| m.starts_with(e)),
            "missing `{e}` in {p:#?}"
        );
    }
    assert!(
        !p.iter().any(|m| m.starts_with("spec.subnets[0]")),
        "subnet-1 is fine: {p:#?}"
    );
}

#[test]
fn an_external_task_definition_excludes_owned_fields_and_needs_a_container() {
    let p = problems(json!({
        "cluster": "ci",
        "task_definition": "my-agents:7",
        "image": "x",
        "cpu": 1024,
        "subnets": ["subnet-0a"],
        "security_groups": ["sg-0a"],
    }));
    assert!(
        p.iter()
            .any(|m| m.starts_with("spec.container_name: required")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|m| m.starts_with("spec.image: not allowed")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|m| m.starts_with("spec.cpu: not allowed")),
        "{p:?}"
    );
    let ok = FargateSpec::from_value(&json!({
        "cluster": "ci",
        "task_definition": "my-agents:7",
        "container_name": "jnlp",
        "subnets": ["subnet-0a"],
        "security_groups": ["sg-0a"],
    }))
    .unwrap();
    assert!(ok.is_external());
    assert_eq!(ok.container(), "jnlp");
}

#[test]
fn old_platform_versions_cannot_use_newer_features() {
    let mut v = with("platform_version", json!("1.3.0"));
    v["cpu"] = json!(8192);
    v["memory"] = json!(16384);
    v["ephemeral_storage_gib"] = json!(50);
    let p = problems(v);
    assert!(
        p.iter()
            .any(|m| m.starts_with("spec.cpu: 8192 needs platform version 1.4.0")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("spec.ephemeral_storage_gib: needs platform")),
        "{p:?}"
    );
    assert!(problems(with("platform_version", json!("new")))
        .iter()
        .any(|m| m.starts_with("spec.platform_version")));
}

#[test]
fn launch_batching_needs_the_agent_to_fetch_its_secret() {
    assert!(!FargateSpec::from_value(&valid()).unwrap().launch_batching);
    let p = problems(with("launch_batching", json!(true)));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("spec.launch_batching:"), "{p:?}");
    assert!(p[0].contains("fetched_by_agent"), "{p:?}");

    let mut ok = with("launch_batching", json!(true));
    ok["agent_secret"] = json!("fetched_by_agent");
    ok["execution_role_arn"] = json!("arn:aws:iam::123456789012:role/exec");
    ok["secrets"] =
        json!({"JENKINS_CONNECT_TOKEN": "arn:aws:ssm:us-east-1:123456789012:parameter/connect"});
    let spec = FargateSpec::from_value(&ok).unwrap();
    assert!(spec.launch_batching);

    let p = problems(with("launch_batching", json!("yes")));
    assert!(
        p[0].contains("launch_batching") || p[0].contains("boolean"),
        "{p:?}"
    );
}
