//! A migration end to end through the real binary: an amazon-ecs plugin cloud
//! exported from JCasC, with its cluster and network in variables and a Windows
//! template, goes through `import-jcasc`; the configuration it writes runs a
//! pass against the fake controller and moto, which starts a Windows Fargate
//! task for the queued Windows build (as far as moto shows: the task
//! definition's runtime platform, size and the agent's environment).

mod e2e_support;

use std::time::Duration;

use e2e_support::{World, WorldSpec, TOKEN_VAR};

const JCASC: &str = r#"
- ecs:
    name: "plugin-cloud"
    cluster: ${ECS_AGENT_CLUSTER}
    regionName: us-east-1
    jenkinsUrl: ${JENKINS_URL}
    tunnel: "agents-nlb.example.com:50000"
    retentionTimeout: 5
    templates:
      - templateName: "dotnet"
        label: "windows dotnet"
        image: "mcr.microsoft.com/dotnet/framework/sdk:4.8"
        launchType: "FARGATE"
        operatingSystemFamily: "WINDOWS_SERVER_2022_CORE"
        cpu: 2048
        memory: 0
        memoryReservation: 4096
        remoteFSRoot: "C:\\jenkins"
        subnets: ${SUBNETS}
        securityGroups: ${AGENT_SECURITY_GROUP}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_windows_fargate_template_launches_on_moto() {
    let world = World::new(WorldSpec {
        tag: "e2e-migrate",
        templates: &[("unused", "unused")],
        global_cap: 4,
        build_duration: Duration::from_secs(60),
        template_env: &[],
        template_settings: &[],
        extra_clouds: "",
    })
    .await;
    let net = e2e_support::net().await;
    let dir = world.config.parent().expect("config dir").to_owned();
    let jcasc = dir.join("jenkins.yaml");
    let imported = dir.join("imported.yaml");
    std::fs::write(&jcasc, JCASC).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jenkins-cloud"))
        .arg("import-jcasc")
        .arg(&jcasc)
        .arg("-o")
        .arg(&imported)
        .env("ECS_AGENT_CLUSTER", &world.cluster)
        .env("JENKINS_URL", world.fake.url())
        .env("SUBNETS", &net.subnet)
        .env("AGENT_SECURITY_GROUP", &net.security_group)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("replaced by WebSocket"), "{stderr}");

    // What the checklist asks for: owner, user, token; and, for the test, moto.
    let text = std::fs::read_to_string(&imported).unwrap();
    let moto = jenkins_cloud_core::testkit::moto::moto()
        .await
        .endpoint()
        .to_owned();
    let kind_line = text
        .lines()
        .find(|l| l.trim() == "kind: fargate")
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    let indent = &kind_line[..kind_line.len() - kind_line.trim_start().len()];
    let text = text
        .replace("owner: jenkins-cloud", &format!("owner: {}", world.owner))
        .replace("user: jenkins-cloud", "user: admin")
        .replace(
            "token_env: JENKINS_API_TOKEN",
            &format!("token_env: {TOKEN_VAR}"),
        )
        .replace(
            &format!("{kind_line}\n"),
            &format!("{kind_line}\n{indent}endpoint_url: \"{moto}\"\n"),
        );
    assert!(text.contains("endpoint_url"), "{text}");
    std::fs::write(&world.config, &text).unwrap();

    world.fake.queue_freestyle("dotnet-app", "windows");
    let (ok, stdout, stderr) = world.run(&["run", "--once"]).await;
    assert!(ok, "{stdout}\n{stderr}\n{text}");
    let tasks = world.tasks().await;
    assert_eq!(tasks.len(), 1, "{tasks:#?}\n{stderr}");
    let task = &tasks[0];
    assert_eq!(
        task.tags.get("jenkins-cloud:template").map(String::as_str),
        Some("dotnet")
    );
    assert_eq!(
        task.env.get("JENKINS_WEB_SOCKET").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        task.env.get("JENKINS_TUNNEL"),
        None,
        "the tunnel is not carried"
    );
    assert_eq!(
        task.env.get("JENKINS_AGENT_WORKDIR").map(String::as_str),
        Some("C:\\jenkins")
    );

    let described = world
        .ecs
        .describe_tasks()
        .cluster(&world.cluster)
        .tasks(&task.arn)
        .send()
        .await
        .unwrap();
    let arn = described.tasks()[0]
        .task_definition_arn()
        .unwrap()
        .to_owned();
    let def = world
        .ecs
        .describe_task_definition()
        .task_definition(arn)
        .send()
        .await
        .unwrap();
    let def = def.task_definition().unwrap();
    assert_eq!(
        def.runtime_platform()
            .and_then(|p| p.operating_system_family())
            .map(|f| f.as_str()),
        Some("WINDOWS_SERVER_2022_CORE")
    );
    assert_eq!(def.cpu(), Some("2048"));
    assert_eq!(def.memory(), Some("4096"));
    assert_eq!(
        def.container_definitions()[0].image(),
        Some("mcr.microsoft.com/dotnet/framework/sdk:4.8")
    );
}
