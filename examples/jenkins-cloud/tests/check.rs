//! `check` against the fake Jenkins controller and moto, and EC2 template
//! validation at load time.

use jenkins_cloud_cli::commands::aws::{self, AwsHooks};
use jenkins_cloud_cli::commands::check::{check, check_jenkins, CheckReport, Level};
use jenkins_cloud_cli::config::{CloudKind, CloudSettings, Config};
use jenkins_cloud_core::testkit::fake_jenkins::{FakeJenkins, FakeJenkinsConfig, FakeUser};
use jenkins_cloud_core::testkit::moto::{moto, ACCOUNT_HEADER};

const ADMIN_TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";
const AGENTS_TOKEN: &str = "22bb33cc44dd55ee66ff77889900aa11bb";

fn jenkins_only(url: &str, user: &str, token_var: &str, extra: &str) -> Config {
    let text = format!(
        r#"owner: ci-check
jenkins: {{url: "{url}", user: {user}, token_env: {token_var}{extra}}}
clouds:
  - name: mem
    kind: memory
    templates:
      - name: linux
        labels: linux
"#
    );
    Config::parse(&text, "check.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn levels(report: &[jenkins_cloud_cli::commands::check::Finding], subject: &str) -> Vec<Level> {
    report
        .iter()
        .filter(|f| f.subject.starts_with(subject))
        .map(|f| f.level)
        .collect()
}

#[tokio::test]
async fn admin_user_gets_script_console_mode_and_version() {
    std::env::set_var("JC_CHECK_ADMIN", ADMIN_TOKEN);
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let config = jenkins_only(fake.url(), "admin", "JC_CHECK_ADMIN", "");
    let found = check_jenkins(&config).await;
    assert_eq!(
        levels(&found, "jenkins: reachable"),
        [Level::Ok],
        "{found:#?}"
    );
    let version = found
        .iter()
        .find(|f| f.subject == "jenkins: version")
        .unwrap();
    assert_eq!(version.level, Level::Ok);
    assert!(version.message.contains("2.541.1"), "{version:?}");
    let mode = found
        .iter()
        .find(|f| f.subject == "jenkins: demand mode")
        .unwrap();
    assert_eq!(mode.level, Level::Ok);
    assert!(mode.message.starts_with("script console"), "{mode:?}");
    assert!(found.iter().all(|f| f.level != Level::Fail), "{found:#?}");
    assert!(fake.nodes().is_empty(), "check created nodes");
}

#[tokio::test]
async fn wrong_token_fails_with_check_user_token() {
    std::env::set_var("JC_CHECK_WRONG", "99ff99ff99ff99ff99ff99ff99ff99ff99");
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let config = jenkins_only(fake.url(), "admin", "JC_CHECK_WRONG", "");
    let found = check_jenkins(&config).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].level, Level::Fail);
    assert!(found[0].message.contains("401"), "{found:?}");
    assert!(found[0]
        .fix
        .as_deref()
        .unwrap()
        .contains("check user/token"));
    let text = format!("{found:?}");
    assert!(!text.contains("99ff99ff"), "the token leaked: {text}");
}

#[tokio::test]
async fn unreachable_jenkins_fails() {
    std::env::set_var("JC_CHECK_ADMIN2", ADMIN_TOKEN);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = jenkins_only(
        &format!("http://127.0.0.1:{port}/"),
        "admin",
        "JC_CHECK_ADMIN2",
        "",
    );
    let found = check_jenkins(&config).await;
    assert_eq!(found[0].subject, "jenkins: reachable");
    assert_eq!(found[0].level, Level::Fail);
}

#[tokio::test]
async fn non_admin_user_falls_back_to_why_parsing_and_reports_placeholders() {
    std::env::set_var("JC_CHECK_AGENTS", AGENTS_TOKEN);
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    fake.add_user(FakeUser::agent_manager("bot", AGENTS_TOKEN));
    let config = jenkins_only(fake.url(), "bot", "JC_CHECK_AGENTS", "");
    let found = check_jenkins(&config).await;
    let mode = found
        .iter()
        .find(|f| f.subject == "jenkins: demand mode")
        .unwrap();
    assert_eq!(mode.level, Level::Warn, "{mode:?}");
    assert!(mode.message.starts_with("why-parsing"), "{mode:?}");
    let placeholder = found
        .iter()
        .find(|f| f.subject == "jenkins: placeholder ci-check-linux-placeholder")
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(placeholder.level, Level::Warn);
    assert!(placeholder.message.starts_with("missing"));
    assert!(
        fake.nodes().is_empty(),
        "check must not create placeholders"
    );

    // The same user with `demand_mode: script_console` is a FAIL.
    let config = jenkins_only(
        fake.url(),
        "bot",
        "JC_CHECK_AGENTS",
        ", demand_mode: script_console",
    );
    let found = check_jenkins(&config).await;
    let mode = found
        .iter()
        .find(|f| f.subject == "jenkins: demand mode")
        .unwrap();
    assert_eq!(mode.level, Level::Fail, "{mode:?}");
}

struct Aws {
    hooks: AwsHooks,
    endpoint: String,
    subnet: String,
    sg: String,
    ami: String,
}

async fn aws_fixture() -> Aws {
    let server = moto().await;
    let hooks = AwsHooks::emulator(ACCOUNT_HEADER, server.fresh_account_id());
    let cloud = CloudSettings {
        name: "setup".into(),
        kind: CloudKind::Ec2,
        region: Some("us-east-1".into()),
        endpoint_url: Some(server.endpoint().to_owned()),
        account_id: None,
        clusters: Vec::new(),
        family_prefix: "jenkins-cloud".into(),
        templates: Vec::new(),
    };
    let clients = aws::clients(&cloud, &hooks).await;
    clients
        .ecs
        .create_cluster()
        .cluster_name("ci")
        .send()
        .await
        .unwrap();
    let subnets = clients.ec2.describe_subnets().send().await.unwrap();
    let subnet = subnets.subnets()[0].subnet_id().unwrap().to_owned();
    let vpc = subnets.subnets()[0].vpc_id().unwrap().to_owned();
    let sg = clients
        .ec2
        .create_security_group()
        .group_name("agents")
        .description("agents")
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    let images = clients
        .ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .unwrap();
    let ami = images.images()[0].image_id().unwrap().to_owned();
    Aws {
        hooks,
        endpoint: server.endpoint().to_owned(),
        subnet,
        sg,
        ami,
    }
}

#[tokio::test]
async fn clouds_are_probed_in_moto() {
    std::env::set_var("JC_CHECK_CLOUDS", ADMIN_TOKEN);
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let a = aws_fixture().await;
    let text = format!(
        r#"owner: ci-check
jenkins: {{url: "{url}", user: admin, token_env: JC_CHECK_CLOUDS}}
clouds:
  - name: fg
    kind: fargate
    region: us-east-1
    endpoint_url: "{ep}"
    clusters: [ci, gone]
    defaults: {{cluster: ci, subnets: ["{subnet}"], security_groups: ["{sg}"]}}
    templates:
      - name: linux
        labels: linux
        spec:
          image: "jenkins/inbound-agent:latest-jdk21"
          cpu: 256
          memory: 512
          execution_role_arn: "arn:aws:iam::123456789012:role/agent-exec"
      - name: untagged
        labels: untagged
        spec: {{image: "jenkins/inbound-agent", cpu: 256, memory: 512, subnets: [subnet-0000000000000dead]}}
  - name: vm
    kind: ec2
    region: us-east-1
    endpoint_url: "{ep}"
    templates:
      - name: vm-good
        labels: vm
        spec: {{ami: {{id: "{ami}"}}, instance_types: [t3.micro], subnets: ["{subnet}"], security_groups: ["{sg}"]}}
      - name: vm-bad
        labels: vm2
        spec: {{ami: {{id: ami-0000000000000dead}}, instance_types: [t3.micro], security_groups: [sg-0000000000000dead]}}
      - name: vm-filter
        labels: vm3
        spec: {{ami: {{name: "no-such-image-*", owners: [self]}}, instance_types: [t3.micro]}}
      - name: vm-names
        labels: vm4
        spec: {{ami: {{id: "{ami}"}}, instance_types: [t3.micro], subnets: ["{subnet}"], security_groups: [agents, no-such-group]}}
"#,
        url = fake.url(),
        ep = a.endpoint,
        subnet = a.subnet,
        sg = a.sg,
        ami = a.ami,
    );
    let config = Config::parse(&text, "check.yaml").unwrap_or_else(|e| panic!("{e}"));
    let report: CheckReport = check(&config, &a.hooks).await;
    let f = &report.findings;
    let level = |subject: &str| {
        f.iter()
            .find(|x| x.subject == subject)
            .unwrap_or_else(|| panic!("no finding `{subject}` in\n{}", report.render_text()))
            .level
    };
    assert_eq!(level("clouds[0] fg: cluster ci"), Level::Ok);
    assert_eq!(level("clouds[0] fg: cluster gone"), Level::Fail);
    assert_eq!(
        level(&format!("clouds[0] fg: subnet {}", a.subnet)),
        Level::Ok
    );
    assert_eq!(
        level("clouds[0] fg: subnet subnet-0000000000000dead"),
        Level::Fail
    );
    assert_eq!(
        level(&format!("clouds[0] fg: security group {}", a.sg)),
        Level::Ok
    );
    assert_eq!(level("clouds[0] fg: templates[0] linux: image"), Level::Ok);
    assert_eq!(
        level("clouds[0] fg: templates[1] untagged: image"),
        Level::Warn
    );
    let role = f
        .iter()
        .find(|x| x.subject.starts_with("clouds[0] fg: role "))
        .unwrap();
    assert_eq!(role.level, Level::Warn);
    assert!(role.message.contains("not checked: needs iam:GetRole"));
    assert_eq!(level("clouds[1] vm: templates[0] vm-good: ami"), Level::Ok);
    assert_eq!(level("clouds[1] vm: templates[1] vm-bad: ami"), Level::Fail);
    assert_eq!(
        level("clouds[1] vm: templates[2] vm-filter: ami"),
        Level::Fail
    );
    assert_eq!(
        level("clouds[1] vm: security group sg-0000000000000dead"),
        Level::Fail
    );
    // Group names: each with the id it resolves to, or a FAIL naming it.
    let named = f
        .iter()
        .find(|x| x.subject == "clouds[1] vm: templates[3] vm-names: security group `agents`")
        .unwrap_or_else(|| panic!("no finding for `agents` in\n{}", report.render_text()));
    assert_eq!(named.level, Level::Ok);
    assert!(named.message.contains(&a.sg), "{named:?}");
    assert_eq!(
        level("clouds[1] vm: templates[3] vm-names: security group `no-such-group`"),
        Level::Fail
    );
    assert!(report.has_failures());
    assert!(report.render_text().contains("failure(s)"));
}

#[tokio::test]
async fn the_command_exits_non_zero_on_failure() {
    let dir = std::env::temp_dir().join(format!("jc-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.yaml");
    std::fs::write(
        &path,
        "owner: x\njenkins: {url: \"http://127.0.0.1:9/\", user: a, token_env: JC_CHECK_CMD}\nclouds:\n  - {name: m, kind: memory, templates: [{name: t, labels: l}]}\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_jenkins-cloud"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .env("JC_CHECK_CMD", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("FAIL jenkins: reachable"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ec2_template_problems_are_reported_at_load_with_field_and_line() {
    let text = r#"owner: ci
jenkins: {url: "https://j.example.com/", user: a, token_env: T}
clouds:
  - name: vm
    kind: ec2
    templates:
      - name: bad
        labels: vm
        spec:
          ami: {id: "not-an-ami"}
          instance_types: [large]
"#;
    let err = Config::parse(text, "ec2.yaml").unwrap_err();
    let ami = err
        .problems
        .iter()
        .find(|p| p.field == "clouds[0].templates[0].spec.ami.id")
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(ami.line, Some(10), "{err}");
    let types = err
        .problems
        .iter()
        .find(|p| {
            p.field
                .starts_with("clouds[0].templates[0].spec.instance_types")
        })
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(types.line, Some(11), "{err}");
}

#[tokio::test]
async fn an_ec2_cloud_plans_and_launches_through_the_program_setup() {
    use jenkins_cloud_cli::commands::{self, plan, run};
    use jenkins_cloud_cli::metrics::Metrics;
    std::env::set_var("JC_CHECK_EC2RUN", ADMIN_TOKEN);
    let fake = FakeJenkins::start(FakeJenkinsConfig::default()).await;
    let a = aws_fixture().await;
    let text = format!(
        r#"owner: ci-ec2run
jenkins: {{url: "{url}", user: admin, token_env: JC_CHECK_EC2RUN}}
clouds:
  - name: vm
    kind: ec2
    region: us-east-1
    endpoint_url: "{ep}"
    templates:
      - name: vm
        labels: vm
        spec: {{ami: {{id: "{ami}"}}, instance_types: [t3.micro], subnets: ["{subnet}"], security_groups: ["{sg}"]}}
"#,
        url = fake.url(),
        ep = a.endpoint,
        subnet = a.subnet,
        sg = a.sg,
        ami = a.ami,
    );
    let config = Config::parse(&text, "ec2run.yaml").unwrap_or_else(|e| panic!("{e}"));
    let item = fake.queue_freestyle("build-vm", "vm");
    let backend = commands::open_backend_with(&config, 0, &a.hooks)
        .await
        .unwrap();
    let jenkins = commands::open_jenkins(&config).unwrap();
    let mut setup = commands::setup_with(&config, jenkins, vec![backend.clone()]);
    let planned = plan::plan(&mut setup).await.unwrap();
    assert_eq!(planned.actions.len(), 1, "{planned:?}");
    let report = run::once(&mut setup, &Metrics::default()).await.unwrap();
    assert_eq!(report.act.launched.len(), 1, "{:?}", report.act);
    assert_eq!(report.act.launched[0].serves, [item]);
    let owned = backend.list_owned().await.unwrap();
    assert_eq!(owned.len(), 1, "one EC2 instance in moto");
    assert!(owned[0].id.0.starts_with("i-"));
}

#[tokio::test]
async fn run_start_up_empties_the_pools_of_templates_that_keep_none() {
    use jenkins_cloud_cli::commands::{self, run};
    use jenkins_cloud_core::backend::{AgentLaunch, Backend, CloudId, CloudState, LaunchBatch};
    use jenkins_cloud_core::Secret;
    std::env::set_var("JC_CHECK_PRUNE", ADMIN_TOKEN);
    let a = aws_fixture().await;
    let config = |templates: &[(&str, bool)]| {
        let templates: String = templates
            .iter()
            .map(|(name, pool)| {
                format!(
                    r#"
      - name: {name}
        labels: {name}
        spec: {{ami: {{id: "{ami}"}}, instance_types: [t3.micro], subnets: ["{subnet}"], security_groups: ["{sg}"], warm_pool: {pool}}}"#,
                    ami = a.ami,
                    subnet = a.subnet,
                    sg = a.sg,
                )
            })
            .collect();
        let text = format!(
            r#"owner: ci-prune
jenkins: {{url: "https://ci.example.com/", user: admin, token_env: JC_CHECK_PRUNE}}
clouds:
  - name: vm
    kind: ec2
    region: us-east-1
    endpoint_url: "{ep}"
    templates:{templates}
"#,
            ep = a.endpoint,
        );
        Config::parse(&text, "prune.yaml").unwrap_or_else(|e| panic!("{e}"))
    };

    // Yesterday's configuration: three templates, each with a pool member;
    // an agent of `removed` is still busy.
    let before = config(&[("keep", true), ("nopool", true), ("removed", true)]);
    let backend = commands::open_backend_with(&before, 0, &a.hooks)
        .await
        .unwrap();
    let jenkins = before.jenkins.endpoint();
    let launch_one = |template, n: u32| {
        let backend = backend.clone();
        let jenkins = jenkins.clone();
        async move {
            let template: &jenkins_cloud_core::AgentTemplate = template;
            let agent = AgentLaunch {
                agent_name: format!("ci-prune-{}-{n}", template.name),
                secret: Secret::new("0123456789abcdef0123456789abcdef"),
                client_token: format!("token-{}-{n}", template.name),
            };
            let out = backend
                .launch(LaunchBatch {
                    template,
                    jenkins: &jenkins,
                    agents: std::slice::from_ref(&agent),
                })
                .await;
            out[0].result.clone().unwrap()
        }
    };
    let mut members = Vec::new();
    let mut busy = None;
    for (_, template) in before.templates() {
        let id = launch_one(template, 1).await;
        if template.name == "removed" {
            // Launched before the other retires, so it does not reuse it.
            busy = Some(launch_one(template, 2).await);
        }
        assert!(
            backend.terminate(std::slice::from_ref(&id), "idle").await[0]
                .result
                .is_ok()
        );
        members.push(id);
    }
    let busy = busy.unwrap();
    members.push(busy.clone());
    let states = || async {
        let mut by_id = std::collections::BTreeMap::new();
        for i in backend.describe(&members).await.unwrap() {
            by_id.insert(i.id.0.clone(), i.state);
        }
        members
            .iter()
            .map(|m| by_id.get(&m.0).cloned().unwrap_or(CloudState::Terminated))
            .collect::<Vec<_>>()
    };
    use CloudState::{Running, Stopped, Terminated};
    assert_eq!(states().await, [Stopped, Stopped, Stopped, Running]);

    // Today's, in a new process: `nopool` keeps no pool, `removed` was removed.
    let after = config(&[("keep", true), ("nopool", false)]);
    let today = std::sync::Arc::new(commands::open_ec2(&after, 0, &a.hooks).await);
    let mut pruned: Vec<CloudId> = run::prune_pools(&after, std::slice::from_ref(&today)).await;
    pruned.sort_by(|x, y| x.0.cmp(&y.0));
    let mut expected = vec![members[1].clone(), members[2].clone()];
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(pruned, expected);
    assert_eq!(states().await, [Stopped, Terminated, Terminated, Running]);
    // The busy agent retires through the same backend: for good, not into a pool.
    assert!(
        today.terminate(std::slice::from_ref(&busy), "idle").await[0]
            .result
            .is_ok()
    );
    assert_eq!(
        states().await,
        [Stopped, Terminated, Terminated, Terminated]
    );
    assert!(
        run::prune_pools(&after, &[today]).await.is_empty(),
        "a second start finds nothing to prune"
    );
}
