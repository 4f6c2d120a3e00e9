//! `import-jcasc` on migrations as they start: JCasC variables, the exported
//! cloud list, and every plugin setting we have an equivalent for (one test
//! each), with the checklist at the end.

use std::collections::HashMap;
use std::time::Duration;

use jenkins_cloud_cli::commands::import_jcasc::{import_with, ImportOptions, Imported};
use jenkins_cloud_cli::config::Config;
use jenkins_cloud_core::template::AgentTemplate;
use serde_json::json;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn convert(text: &str, env: &HashMap<String, String>, keep: bool) -> Result<Imported, String> {
    let lookup = |name: &str| env.get(name).cloned();
    import_with(
        text,
        "jenkins.yaml",
        &ImportOptions {
            keep_variables: keep,
        },
        &lookup,
    )
    .map_err(|e| e.0)
}

fn parse(out: &Imported, env: &HashMap<String, String>) -> Config {
    let lookup = |name: &str| env.get(name).cloned();
    Config::parse_with_env(&out.yaml, "imported.yaml", &lookup)
        .unwrap_or_else(|e| panic!("{e}\n{}", out.yaml))
}

fn has_note(out: &Imported, path: &str, words: &str) -> bool {
    out.notes
        .iter()
        .any(|n| n.starts_with(path) && n.contains(words))
}

fn template<'a>(config: &'a Config, name: &str) -> &'a AgentTemplate {
    config
        .templates()
        .map(|(_, t)| t)
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no template {name}"))
}

fn fargate_env() -> HashMap<String, String> {
    env_of(&[
        ("ECS_AGENT_CLUSTER", "ci-agents"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("NLB_DNS_NAME", "agents-nlb.example.com"),
        ("NLB_PORT", "50000"),
        ("JENKINS_URL", "jenkins.example.com/"),
        ("AGENT_SECURITY_GROUP", "sg-0123456789abcdef0"),
        (
            "SUBNETS",
            "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
        ),
    ])
}

// --- variables -----------------------------------------------------------

#[test]
fn the_plugins_fargate_example_converts_with_its_variables_resolved() {
    let env = fargate_env();
    let out = convert(&fixture("jcasc-ecs-fargate-example.yaml"), &env, false).unwrap();
    let config = parse(&out, &env);
    assert_eq!(config.jenkins.url, "https://jenkins.example.com/");
    let cloud = &config.clouds[0];
    assert_eq!(cloud.region.as_deref(), Some("eu-west-1"));
    assert_eq!(cloud.clusters, ["ci-agents"]);
    let t = template(&config, "build-example");
    assert_eq!(
        t.spec["subnets"],
        json!(["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"])
    );
    assert_eq!(t.spec["security_groups"], json!(["sg-0123456789abcdef0"]));
    assert_eq!(
        t.spec["image"], "jenkins/inbound-agent:latest-jdk21",
        "the default of ${{AGENT_TAG:-…}}"
    );
    assert_eq!(t.spec["cpu"], 512);
    assert_eq!(
        t.spec["memory"], 1024,
        "memoryReservation stands in for memory 0"
    );
    assert_eq!(
        t.environment["LITERAL"], "${NOT_A_VARIABLE}",
        "^${{ is JCasC's escape"
    );
    assert!(has_note(
        &out,
        "jenkins.clouds[0].ecs.tunnel",
        "replaced by WebSocket"
    ));
    assert!(out
        .checklist
        .iter()
        .any(|s| s.contains("agents-nlb.example.com:50000")));
}

#[test]
fn an_unset_variable_is_an_error_naming_the_field_and_the_variable() {
    let mut env = fargate_env();
    env.remove("SUBNETS");
    env.remove("ECS_AGENT_CLUSTER");
    let err = convert(&fixture("jcasc-ecs-fargate-example.yaml"), &env, false).unwrap_err();
    assert!(
        err.contains("jenkins.clouds[0].ecs.templates[0].subnets: `${SUBNETS}` is not set"),
        "{err}"
    );
    assert!(
        err.contains("jenkins.clouds[0].ecs.cluster: `${ECS_AGENT_CLUSTER}` is not set"),
        "{err}"
    );
    assert!(err.contains("--keep-variables"), "{err}");
}

#[test]
fn variables_in_fields_the_import_drops_are_not_needed() {
    // privateKey: ${PRIVATE_KEY}, sshKeysCredentialsId: ${readFile:…} and the
    // Windows password are dropped, so they need no value.
    let out = convert(&fixture("jcasc-ec2-export.yaml"), &HashMap::new(), false).unwrap();
    assert!(has_note(&out, "[0].amazonEC2.privateKey", "not carried"));
    let err = convert(
        "- amazonEC2:\n    templates:\n      - ami: ${AMI}\n",
        &HashMap::new(),
        false,
    )
    .unwrap_err();
    assert!(
        err.contains("[0].amazonEC2.templates[0].ami: `${AMI}` is not set"),
        "{err}"
    );
}

#[test]
fn keep_variables_writes_references_our_loader_resolves() {
    let env = fargate_env();
    let out = convert(&fixture("jcasc-ecs-fargate-example.yaml"), &env, true).unwrap();
    assert!(out.yaml.contains("${ECS_AGENT_CLUSTER}"), "{}", out.yaml);
    assert!(out.yaml.contains("https://${JENKINS_URL}"), "{}", out.yaml);
    assert!(
        out.yaml.contains("${AGENT_TAG:-latest-jdk21}"),
        "{}",
        out.yaml
    );
    assert!(
        !out.yaml.contains("${SUBNETS}"),
        "lists are split at import, so resolved: {}",
        out.yaml
    );
    // The same environment gives the same configuration as resolving now.
    let config = parse(&out, &env);
    assert_eq!(config.clouds[0].clusters, ["ci-agents"]);
    assert_eq!(config.jenkins.url, "https://jenkins.example.com/");
    // Where the variables are unset the output is still written, unvalidated.
    let mut partial = env.clone();
    partial.remove("ECS_AGENT_CLUSTER");
    let out = convert(&fixture("jcasc-ecs-fargate-example.yaml"), &partial, true).unwrap();
    assert!(
        out.checklist
            .iter()
            .any(|s| s.contains("Not validated here") && s.contains("${ECS_AGENT_CLUSTER}")),
        "{:#?}",
        out.checklist
    );
    // A split field cannot be kept: its value is needed now.
    partial.remove("SUBNETS");
    let err = convert(&fixture("jcasc-ecs-fargate-example.yaml"), &partial, true).unwrap_err();
    assert!(
        err.contains("subnets: `${SUBNETS}` is not set") && err.contains("converted"),
        "{err}"
    );
}

// --- shapes --------------------------------------------------------------

#[test]
fn the_exported_cloud_list_converts() {
    let out = convert(&fixture("jcasc-ecs-export.yaml"), &HashMap::new(), false).unwrap();
    let config = parse(&out, &HashMap::new());
    assert_eq!(config.clouds[0].name, "windows-ecs");
    assert_eq!(config.jenkins.url, "https://ci.example.com/");
    let out = convert(&fixture("jcasc-ec2-export.yaml"), &HashMap::new(), false).unwrap();
    let config = parse(&out, &HashMap::new());
    assert_eq!(config.clouds[0].name, "production");
    assert_eq!(config.templates().count(), 2);
}

// --- ec2 plugin settings ---------------------------------------------------

fn ec2_export() -> (Imported, Config) {
    let out = convert(&fixture("jcasc-ec2-export.yaml"), &HashMap::new(), false).unwrap();
    let config = parse(&out, &HashMap::new());
    (out, config)
}

#[test]
fn time_range_minimums_become_min_idle_windows() {
    let (out, config) = ec2_export();
    let linux = template(&config, "linux-builds");
    let windows: Vec<(String, u32)> = linux
        .retention
        .min_idle_windows
        .iter()
        .map(|w| (w.window.to_string(), w.count))
        .collect();
    assert_eq!(
        windows,
        [("Mon,Tue,Wed,Thu,Fri 08:00-18:30".to_owned(), 3)],
        "day flags, 12-hour from, 24-hour to; count = max(instances, spare)"
    );
    // The old day map, past midnight, 12-hour start.
    let win = template(&config, "production-1");
    let windows: Vec<String> = win
        .retention
        .min_idle_windows
        .iter()
        .map(|w| w.window.to_string())
        .collect();
    assert_eq!(windows, ["Mon,Sun 22:00-06:00"]);
    assert!(has_note(
        &out,
        "[0].amazonEC2.templates[0].minimumNumberOfInstancesTimeRangeConfig",
        "UTC"
    ));
}

#[test]
fn spare_instances_and_minimums_become_min_idle() {
    let yaml = "- amazonEC2:\n    templates:\n      - ami: ami-1\n        labelString: a\n        minimumNumberOfInstances: 2\n        minimumNumberOfSpareInstances: 4\n";
    let out = convert(yaml, &HashMap::new(), false).unwrap();
    let config = parse(&out, &HashMap::new());
    assert_eq!(config.clouds[0].templates[0].retention.min_idle, 4);
    assert!(has_note(
        &out,
        "[0].amazonEC2.templates[0].minimumNumberOfSpareInstances",
        "carried"
    ));
}

#[test]
fn hot_spares_by_label_become_min_idle_and_idle_timeout() {
    let (out, config) = ec2_export();
    let linux = template(&config, "linux-builds");
    assert_eq!(
        linux.retention.min_idle, 2,
        "baseHotSpares of the `linux` rule"
    );
    assert_eq!(
        linux.retention.idle_timeout,
        Some(Duration::from_secs(20 * 60)),
        "the rule's idle timeout wins over the template's 30 minutes"
    );
    let win = template(&config, "production-1");
    assert_eq!(win.retention.min_idle, 0, "the rule's label does not match");
    assert!(has_note(
        &out,
        "[0].amazonEC2.hotSpareConfigsByLabel[0].maxHotSpares",
        "not carried"
    ));
    // A rule's idle timeout defaults to 15 minutes; allowTemplateIdleTimeoutOverride gives the template's back.
    let yaml = "- amazonEC2:\n    hotSpareConfigsByLabel:\n      - label: a\n      - label: b\n        allowTemplateIdleTimeoutOverride: true\n        idleTimeoutMinutes: 3\n    templates:\n      - {ami: ami-1, labelString: a, idleTerminationMinutes: 30}\n      - {ami: ami-2, labelString: b, idleTerminationMinutes: 30, description: two}\n";
    let out = convert(yaml, &HashMap::new(), false).unwrap();
    let config = parse(&out, &HashMap::new());
    let t = &config.clouds[0].templates;
    assert_eq!(
        t[0].retention.idle_timeout,
        Some(Duration::from_secs(15 * 60))
    );
    assert_eq!(
        t[1].retention.idle_timeout,
        Some(Duration::from_secs(30 * 60))
    );
}

#[test]
fn idle_termination_max_uses_and_caps_are_carried() {
    let (out, config) = ec2_export();
    assert_eq!(config.global_cap, Some(40), "cloud instanceCapStr");
    let linux = template(&config, "linux-builds");
    assert_eq!(linux.instance_cap, Some(20));
    assert_eq!(linux.retention.max_uses, Some(25));
    assert_eq!(linux.launch_timeout, Duration::from_secs(600));
    let win = template(&config, "production-1");
    assert_eq!(win.retention.max_uses, None, "-1 is unlimited");
    assert_eq!(
        win.retention.idle_timeout,
        Some(Duration::from_secs(600)),
        "a negative (billing-hour) value as a plain idle timeout"
    );
    assert!(has_note(
        &out,
        "[0].amazonEC2.templates[1].idleTerminationMinutes",
        "billing hour"
    ));
    let yaml = "- amazonEC2:\n    templates:\n      - {ami: ami-1, labelString: a, idleTerminationMinutes: \"0\"}\n";
    let config = parse(
        &convert(yaml, &HashMap::new(), false).unwrap(),
        &HashMap::new(),
    );
    assert_eq!(
        config.clouds[0].templates[0].retention.idle_timeout, None,
        "0 is never"
    );
}

#[test]
fn spot_imds_ebs_tags_network_and_profile_are_carried() {
    let (out, config) = ec2_export();
    let spec = &template(&config, "linux-builds").spec;
    assert_eq!(
        spec["spot"],
        json!({"max_price": "0.08", "fallback_to_on_demand": true})
    );
    assert_eq!(
        spec["metadata"],
        json!({"require_tokens": true, "hop_limit": 2})
    );
    assert_eq!(spec["root_volume"]["encrypted"], true);
    assert_eq!(
        spec["tags"],
        json!({"team": "platform", "cost-center": "ci"})
    );
    assert_eq!(
        spec["subnets"],
        json!(["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]),
        "space-separated"
    );
    assert_eq!(
        spec["security_groups"],
        json!(["sg-0123456789abcdef0", "build-agents"])
    );
    assert_eq!(spec["instance_profile"], "ci-agent");
    assert_eq!(spec["instance_types"], json!(["c6i.xlarge"]));
    assert!(out
        .checklist
        .iter()
        .any(|s| s.contains("build-agents") && s.contains("check")));
}

#[test]
fn windows_ami_types_become_windows_templates() {
    let (out, config) = ec2_export();
    let win = template(&config, "production-1");
    assert_eq!(win.spec["platform"], "windows");
    assert_eq!(win.remote_fs, "C:\\jenkins");
    assert_eq!(win.spec["instance_types"], json!(["m5.large"]));
    assert!(has_note(
        &out,
        "[0].amazonEC2.templates[1].amiType",
        "spec.platform: windows"
    ));
    assert!(out.checklist.iter().any(|s| s.contains("Windows")));
}

// --- amazon-ecs plugin settings -------------------------------------------

fn ecs_export() -> (Imported, Config) {
    let out = convert(&fixture("jcasc-ecs-export.yaml"), &HashMap::new(), false).unwrap();
    let config = parse(&out, &HashMap::new());
    (out, config)
}

#[test]
fn fargate_size_roles_and_logs_are_carried() {
    let (out, config) = ecs_export();
    let dotnet = template(&config, "dotnet");
    assert_eq!(dotnet.spec["cpu"], 2048);
    assert_eq!(
        dotnet.spec["memory"], 4096,
        "memoryReservation with memory 0"
    );
    assert_eq!(
        dotnet.spec["execution_role_arn"],
        "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
    );
    assert_eq!(
        dotnet.spec["task_role_arn"],
        "arn:aws:iam::123456789012:role/windows-agent"
    );
    assert_eq!(
        dotnet.spec["logs"],
        json!({"group": "/ci/windows", "region": "us-east-1"})
    );
    let efs = template(&config, "linux-efs");
    assert_eq!(
        efs.spec["memory"], 2048,
        "the hard limit wins over the reservation"
    );
    assert!(has_note(
        &out,
        "[0].ecs.templates[1].memoryReservation",
        "all of the task `memory`"
    ));
}

#[test]
fn windows_os_family_efs_and_capacity_providers_are_carried() {
    let (out, config) = ecs_export();
    let dotnet = template(&config, "dotnet");
    assert_eq!(dotnet.spec["operating_system"], "WINDOWS_SERVER_2022_CORE");
    assert_eq!(dotnet.spec["cpu_architecture"], "X86_64");
    let efs = template(&config, "linux-efs");
    assert_eq!(
        efs.spec["efs_volumes"],
        json!([{
            "name": "gradle-cache",
            "file_system_id": "fs-0123456789abcdef0",
            "container_path": "/home/jenkins/.gradle",
            "access_point_id": "fsap-0123456789abcdef0",
            "read_only": false,
            "transit_encryption": true
        }])
    );
    assert!(has_note(
        &out,
        "[0].ecs.templates[1].efsMountPoints[0].iam",
        "not carried"
    ));
    assert!(has_note(
        &out,
        "[0].ecs.templates[1].efsMountPoints[0].rootDirectory",
        "access point"
    ));
    assert_eq!(
        efs.spec["capacity_providers"],
        json!([
            {"provider": "FARGATE_SPOT", "weight": 3, "base": 0},
            {"provider": "FARGATE", "weight": 1, "base": 1}
        ])
    );
}

#[test]
fn the_checklist_names_what_is_left_to_do() {
    let (out, _) = ecs_export();
    let all = out.checklist.join("\n");
    for words in [
        "API token",
        "JENKINS_API_TOKEN",
        "owner",
        "jenkins.url",
        "iam-policy",
        "notes",
        "check",
    ] {
        assert!(all.contains(words), "{words}: {all}");
    }
    let without_url = "- ecs:\n    cluster: c\n    templates:\n      - {templateName: a, label: a, image: i, cpu: 512, memory: 1024, subnets: subnet-1, securityGroups: sg-1}\n";
    let out = convert(without_url, &HashMap::new(), false).unwrap();
    assert!(
        out.checklist
            .iter()
            .any(|s| s.starts_with("Set `jenkins.url`")),
        "{:#?}",
        out.checklist
    );
}
