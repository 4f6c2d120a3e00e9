//! `import-jcasc`: plugin JCasC fixtures convert into a configuration that
//! `Config::parse` accepts, and every field not carried over is reported.

use std::time::Duration;

use jenkins_cloud_cli::commands::import_jcasc::import;
use jenkins_cloud_cli::config::{CloudKind, Config};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn has_note(notes: &[String], path: &str, words: &str) -> bool {
    notes
        .iter()
        .any(|n| n.starts_with(path) && n.contains(words))
}

#[test]
fn ecs_plugin_cloud_converts_to_a_fargate_cloud() {
    let out = import(&fixture("jcasc-ecs.yaml"), "jcasc-ecs.yaml").unwrap();
    let config = Config::parse(&out.yaml, "imported.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.jenkins.url, "https://jenkins.example.com/");
    assert_eq!(
        config.jenkins.tunnel, None,
        "the tunnel is replaced by WebSocket"
    );
    assert_eq!(config.clouds.len(), 1);
    let cloud = &config.clouds[0];
    assert_eq!(cloud.kind, CloudKind::Fargate);
    assert_eq!(cloud.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        cloud.clusters,
        ["arn:aws:ecs:eu-west-1:123456789012:cluster/ci-agents"]
    );
    let base = cloud
        .templates
        .iter()
        .find(|t| t.name == "base-agent")
        .unwrap();
    assert!(base.labels.contains("linux") && base.labels.contains("java"));
    assert_eq!(base.remote_fs, "/home/jenkins");
    assert_eq!(base.spec["cpu"], 1024);
    assert_eq!(base.spec["memory"], 2048);
    assert_eq!(
        base.spec["subnets"],
        serde_json::json!(["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"])
    );
    assert_eq!(base.spec["security_groups"][0], "sg-0a1b2c3d4e5f60001");
    assert_eq!(
        base.spec["execution_role_arn"],
        "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
    );
    assert_eq!(
        base.spec["task_role_arn"],
        "arn:aws:iam::123456789012:role/jenkins-agent"
    );
    assert_eq!(base.spec["logs"]["group"], "/ci/agents");
    assert_eq!(base.spec["tags"]["team"], "platform");
    assert_eq!(
        base.environment.get("GRADLE_OPTS").map(String::as_str),
        Some("-Dorg.gradle.daemon=false")
    );
    assert_eq!(base.retention.idle_timeout, Some(Duration::from_secs(600)));
    // inheritFrom resolved: the child has the parent's network and its own size.
    let big = cloud.templates.iter().find(|t| t.name == "big").unwrap();
    assert_eq!(big.spec["cpu"], 4096);
    assert_eq!(big.spec["subnets"], base.spec["subnets"]);
    assert_eq!(
        big.spec["capacity_providers"][0]["provider"],
        "FARGATE_SPOT"
    );
    assert!(big.labels.contains("large"));

    let n = &out.notes;
    assert!(
        has_note(n, "jenkins.clouds[0].ecs.credentialsId", "not carried"),
        "{n:#?}"
    );
    assert!(has_note(
        n,
        "jenkins.clouds[0].ecs.tunnel",
        "replaced by WebSocket"
    ));
    assert!(
        out.checklist
            .iter()
            .any(|s| s.contains("jenkins-agents.example.com:50000") && s.contains("WebSocket")),
        "{:#?}",
        out.checklist
    );
    assert!(has_note(
        n,
        "jenkins.clouds[0].ecs.templates[0].memoryReservation",
        "not carried"
    ));
    assert!(has_note(
        n,
        "jenkins.clouds[0].ecs.templates[0].uniqueRemoteFSRoot",
        "not carried"
    ));
    assert!(has_note(
        n,
        "jenkins.clouds[0].ecs.templates[0].templateName",
        "renamed `base-agent`"
    ));
    assert!(has_note(
        n,
        "jenkins.clouds[0].ecs.templates[1].portMappings",
        "not carried"
    ));
}

#[test]
fn ec2_plugin_cloud_converts_to_an_ec2_cloud() {
    let out = import(&fixture("jcasc-ec2.yaml"), "jcasc-ec2.yaml").unwrap();
    let config = Config::parse(&out.yaml, "imported.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.global_cap,
        Some(20),
        "cloud instanceCapStr → caps.global"
    );
    assert_eq!(config.clouds.len(), 1, "the kubernetes cloud is skipped");
    let cloud = &config.clouds[0];
    assert_eq!(cloud.kind, CloudKind::Ec2);
    assert_eq!(cloud.name, "production");
    assert_eq!(cloud.region.as_deref(), Some("eu-central-1"));
    let docker = &cloud.templates[0];
    assert_eq!(docker.name, "linux-docker-agents");
    assert_eq!(docker.executors, 2);
    assert_eq!(docker.instance_cap, Some(5));
    assert_eq!(docker.retention.max_uses, Some(10));
    assert_eq!(docker.retention.min_idle, 1);
    assert_eq!(
        docker.retention.idle_timeout,
        Some(Duration::from_secs(1800))
    );
    assert_eq!(docker.spec["ami"]["id"], "ami-0123456789abcdef0");
    assert_eq!(docker.spec["instance_types"][0], "t3.large");
    assert_eq!(docker.spec["subnets"].as_array().unwrap().len(), 2);
    assert_eq!(
        docker.spec["security_groups"],
        serde_json::json!(["sg-0123456789abcdef0", "build-agents"]),
        "names are carried and resolved at launch"
    );
    assert_eq!(docker.spec["instance_profile"], "jenkins-agent");
    assert_eq!(docker.spec["spot"]["max_price"], "0.05");
    assert_eq!(docker.spec["spot"]["fallback_to_on_demand"], true);
    assert_eq!(docker.spec["metadata"]["hop_limit"], 2);
    assert_eq!(docker.spec["metadata"]["require_tokens"], true);
    let windows = &cloud.templates[1];
    assert_eq!(
        windows.spec["instance_types"][0], "m5.large",
        "enum spelling converted"
    );
    assert_eq!(windows.retention.idle_timeout, None);

    let n = &out.notes;
    let t0 = "jenkins.clouds[0].amazonEC2.templates[0]";
    assert!(has_note(
        n,
        &format!("{t0}.amiType"),
        "SSH settings are not used"
    ));
    for field in ["ebsOptimized", "userData", "remoteAdmin"] {
        assert!(
            has_note(n, &format!("{t0}.{field}"), "not carried"),
            "{field}: {n:#?}"
        );
    }
    assert!(has_note(
        n,
        &format!("{t0}.securityGroups"),
        "build-agents given by name"
    ));
    assert!(has_note(
        n,
        "jenkins.clouds[0].amazonEC2.sshKeysCredentialsId",
        "not carried"
    ));
    assert!(has_note(
        n,
        "jenkins.clouds[0].amazonEC2.noDelayProvisioning",
        "not carried"
    ));
    assert!(has_note(n, "jenkins.clouds[1].kubernetes", "skipped"));
}

#[test]
fn a_file_without_convertible_clouds_is_a_clear_error() {
    let err = import("jenkins:\n  systemMessage: hi\n", "j.yaml").unwrap_err();
    assert!(
        err.0.contains("jenkins.clouds") && err.0.contains("top-level list"),
        "{err}"
    );
    let err = import(
        "jenkins:\n  clouds:\n    - kubernetes: {name: k}\n",
        "j.yaml",
    )
    .unwrap_err();
    assert!(err.0.contains("kubernetes"), "{err}");
    let err = import("jenkins: [unclosed", "j.yaml").unwrap_err();
    assert!(err.0.contains("not valid YAML"), "{err}");
}

#[test]
fn the_command_writes_the_file_and_notes_on_stderr() {
    let dir = std::env::temp_dir().join(format!("jc-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("out.yaml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_jenkins-cloud"))
        .arg("import-jcasc")
        .arg(format!(
            "{}/tests/fixtures/jcasc-ec2.yaml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ebsOptimized: not carried"), "{stderr}");
    assert!(stderr.contains("Before the first run:\n  1. "), "{stderr}");
    assert!(stderr.contains("JENKINS_API_TOKEN"), "{stderr}");
    Config::load(&out_path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(&dir).ok();
}
