use super::*;

const GOOD: &str = r#"
owner: ci-prod
jenkins:
  url: https://jenkins.example.com/
  user: jenkins-cloud
  token_env: JC_TEST_TOKEN
caps:
  global: 20
  per_label: [{label: "gpu", max: 2}]
clouds:
  - name: mem
    kind: memory
    templates:
      - name: base
        abstract: true
        executors: 2
      - name: linux
        inherit_from: base
        labels: linux docker
"#;

#[test]
fn a_good_file_resolves_templates_and_defaults() {
    let c = Config::parse(GOOD, "good.yaml").unwrap();
    assert_eq!(c.owner.as_str(), "ci-prod");
    assert_eq!(c.poll_interval, Duration::from_secs(10));
    assert_eq!(c.global_cap, Some(20));
    assert_eq!(c.label_caps.len(), 1);
    let names: Vec<_> = c.templates().map(|(_, t)| t.name.clone()).collect();
    assert_eq!(names, ["linux"]);
    assert_eq!(c.clouds[0].templates[0].executors, 2);
    assert_eq!(c.jenkins.token, TokenSource::Env("JC_TEST_TOKEN".into()));
}

#[test]
fn every_problem_is_listed_with_file_line_and_field() {
    let text = r#"owner: Not_Valid
jenkins:
  url: http://jenkins.example.com/
  user: bot
  token_env: T
colour: blue
poll_interval: soon
clouds:
  - name: mem
    kind: memory
    templates:
      - name: linux
        executors: 0
        labelz: x
      - name: other
        inherit_from: missing
"#;
    let err = Config::parse(text, "bad.yaml").unwrap_err();
    let find = |field: &str| {
        err.problems
            .iter()
            .find(|p| p.field == field)
            .unwrap_or_else(|| panic!("no problem for {field}: {err}"))
    };
    assert_eq!(find("owner").line, Some(1));
    let url = find("jenkins.url");
    assert_eq!(url.line, Some(3));
    assert!(url.message.contains("plain HTTP"), "{}", url.message);
    assert_eq!(find("colour").line, Some(6));
    assert_eq!(find("poll_interval").line, Some(7));
    let unknown = find("clouds[0].templates[0].labelz");
    assert_eq!(unknown.line, Some(14));
    let text_out = err.to_string();
    assert!(text_out.starts_with("bad.yaml: "), "{text_out}");
    assert!(
        text_out.contains("bad.yaml:14: clouds[0].templates[0].labelz:"),
        "{text_out}"
    );
    assert!(err.problems.len() >= 5, "{text_out}");
}

#[test]
fn template_resolution_problems_name_the_template_entry() {
    let text = r#"owner: ci
jenkins: {url: "https://j.example/", user: u, token_env: T}
clouds:
  - name: mem
    kind: memory
    templates:
      - name: a
        executors: 0
      - name: b
        inherit_from: nowhere
"#;
    let err = Config::parse(text, "t.yaml").unwrap_err();
    let a = err
        .problems
        .iter()
        .find(|p| p.field == "clouds[0].templates[0].executors");
    assert_eq!(a.map(|p| p.line), Some(Some(8)), "{err}");
    let b = err
        .problems
        .iter()
        .find(|p| p.field == "clouds[0].templates[1].inherit_from");
    assert_eq!(b.map(|p| p.line), Some(Some(10)), "{err}");
}

#[test]
fn inline_tokens_are_refused_unless_allowed_and_never_printed() {
    let text = "owner: ci\njenkins: {url: \"https://j.example/\", user: u, token: s3cr3t-token}\nclouds: [{name: m, kind: memory, templates: [{name: t}]}]\n";
    let err = Config::parse(text, "t.yaml").unwrap_err();
    assert!(err.problems.iter().any(|p| p.field == "jenkins.token"));
    assert!(!err.to_string().contains("s3cr3t-token"));
    let ok = text.replace("token: s3cr3t", "allow_inline_token: true, token: s3cr3t");
    let c = Config::parse(&ok, "t.yaml").unwrap();
    assert_eq!(c.jenkins.token().unwrap().expose(), "s3cr3t-token");
    assert!(!format!("{c:?}").contains("s3cr3t-token"));
}

#[test]
fn loopback_http_is_allowed_and_insecure_http_can_be_opted_into() {
    let base = "owner: ci\njenkins: {url: \"URL\", user: u, token_env: T EXTRA}\nclouds: [{name: m, kind: memory, templates: [{name: t}]}]\n";
    let make = |url: &str, extra: &str| base.replace("URL", url).replace(" EXTRA", extra);
    assert!(Config::parse(&make("http://127.0.0.1:8080/", ""), "f").is_ok());
    assert!(Config::parse(&make("http://jenkins.internal/", ""), "f").is_err());
    assert!(Config::parse(
        &make("http://jenkins.internal/", ", allow_insecure_http: true"),
        "f"
    )
    .is_ok());
}

#[test]
fn fargate_specs_are_validated_with_defaults_merged() {
    let text = r#"owner: ci
jenkins: {url: "https://j.example/", user: u, token_env: T}
clouds:
  - name: f
    kind: fargate
    clusters: [ci]
    defaults: {cluster: ci, subnets: [subnet-1], security_groups: [sg-1]}
    templates:
      - name: ok
        spec: {cpu: 1024, memory: 2048}
      - name: bad
        spec: {cpu: 256, memory: 8192, cluster: other}
"#;
    let err = Config::parse(text, "f.yaml").unwrap_err();
    assert!(
        err.problems
            .iter()
            .all(|p| p.field.starts_with("clouds[0].templates[1]")),
        "{err}"
    );
    assert!(err.to_string().contains("cluster"), "{err}");
    let fixed = text.replace(
        "{cpu: 256, memory: 8192, cluster: other}",
        "{cpu: 256, memory: 512}",
    );
    let c = Config::parse(&fixed, "f.yaml").unwrap();
    assert_eq!(c.clouds[0].templates[1].spec["subnets"][0], "subnet-1");
}

#[test]
fn token_from_env_or_file() {
    let dir = std::env::temp_dir().join(format!("jc-token-{}", std::process::id()));
    std::fs::write(&dir, "from-file\n").unwrap();
    let settings = |token| JenkinsSettings {
        url: "https://j/".into(),
        agent_url: "https://j/".into(),
        tunnel: None,
        user: "u".into(),
        token,
        allow_insecure_http: false,
        demand_mode: DemandMode::Auto,
    };
    assert_eq!(
        settings(TokenSource::File(dir.clone()))
            .token()
            .unwrap()
            .expose(),
        "from-file"
    );
    let missing = settings(TokenSource::Env("JC_SURELY_UNSET_VAR".into()))
        .token()
        .unwrap_err();
    assert!(missing.contains("JC_SURELY_UNSET_VAR"));
    std::fs::remove_file(dir).ok();
}
