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
        max_response_bytes: jenkins_cloud_core::jenkins::client::DEFAULT_MAX_RESPONSE_BYTES,
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

#[test]
fn urls_are_shown_without_credentials() {
    use super::jenkins::shown_url;
    for (url, shown) in [
        ("https://jenkins.example/", "https://jenkins.example/"),
        ("http://bot:TOKEN@host/", "http://***@host/"),
        ("http://TOKEN@host/", "http://***@host/"),
        // A password holding `/`, `?` or `@` is hidden whole.
        ("http://bot:to/k@en@host/x", "http://***@host/x"),
        ("http://bot:to?k#en@host/", "http://***@host/"),
        ("bot:TOKEN@host", "***@host"),
        ("  http://bot:TOKEN@host/  ", "http://***@host/"),
        ("http://host/\u{1b}[2J", r"http://host/\u{1b}[2J"),
    ] {
        assert_eq!(shown_url(url), shown, "{url}");
    }
}

#[test]
fn token_files_are_bounded_when_read_and_checked_at_load() {
    let dir = std::env::temp_dir().join(format!("jc-token-bound-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big");
    std::fs::write(&big, vec![b'k'; MAX_TOKEN_FILE_BYTES as usize + 1]).unwrap();
    let settings = JenkinsSettings {
        url: "https://j/".into(),
        agent_url: "https://j/".into(),
        tunnel: None,
        user: "u".into(),
        token: TokenSource::File(big.clone()),
        allow_insecure_http: false,
        demand_mode: DemandMode::Auto,
        max_response_bytes: jenkins_cloud_core::jenkins::client::DEFAULT_MAX_RESPONSE_BYTES,
    };
    let e = settings.token().unwrap_err();
    assert!(e.starts_with("jenkins.token_file: "), "{e}");
    assert!(e.contains("more than the 65536"), "{e}");
    assert!(!e.contains("kkkk"));

    let config = |token_file: &Path| {
        let text = format!(
            "owner: ci\njenkins: {{url: \"https://j.example/\", user: u, token_file: \"{}\"}}\nclouds: [{{name: m, kind: memory, templates: [{{name: t}}]}}]\n",
            token_file.display()
        );
        let path = dir.join("config.yaml");
        std::fs::write(&path, &text).unwrap();
        (text, path)
    };
    // `parse` reads no file; `load` checks the token file.
    let (text, path) = config(&big);
    assert!(Config::parse(&text, "c.yaml").is_ok());
    let e = Config::load(&path).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!(e.problems[0].field, "jenkins.token_file");
    assert_eq!(e.problems[0].line, Some(2));
    // One that does not exist (yet) is let through: `run` reports it.
    let (_, path) = config(&dir.join("not-mounted-here"));
    assert!(Config::load(&path).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_template_with_refused_fields_keeps_its_other_problems() {
    let text = r#"owner: ci
jenkins: {url: "https://j.example/", user: u, token_env: T}
clouds:
  - name: mem
    kind: memory
    templates:
      - name: Bad_Name
        executors: two
        mode: EXCLUSIVE
      - name: child
        inherit_from: Bad_Name
        labels: x
"#;
    let err = Config::parse(text, "t.yaml").unwrap_err();
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    // The name, which read well, is still checked. Problems of fields the
    // template does not set (labels, empty in EXCLUSIVE mode) wait until the
    // refused fields are fixed; the child, which reads well, has none.
    assert_eq!(
        fields,
        [
            "clouds[0].templates[0].name",
            "clouds[0].templates[0].executors",
        ],
        "{err}"
    );
    // A field left out because its value was refused is not reported missing.
    let text = "owner: ci\njenkins: {url: \"https://j.example/\", user: [u], token_env: T}\nclouds: [{name: m, kind: memory, templates: [{name: t}]}]\n";
    let err = Config::parse(text, "t.yaml").unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].field, "jenkins.user");
}

#[test]
fn problems_are_shown_with_control_characters_escaped() {
    let err = ConfigError {
        file: "a\u{1b}.yaml".into(),
        problems: vec![Problem {
            field: "clouds[0].x\u{7}".into(),
            line: Some(3),
            message: "first\nsecond \u{1b}[2J".into(),
        }],
    };
    assert_eq!(
        err.to_string(),
        "a\\u{1b}.yaml: 1 problem\n  a\\u{1b}.yaml:3: clouds[0].x\\u{7}: first\n      second \\u{1b}[2J"
    );
}

const WITH_VARIABLES: &str = r#"
owner: ${OWNER:-ci-prod}
jenkins:
  url: https://${JENKINS_HOST}/
  user: jenkins-cloud
  token_env: JC_TEST_TOKEN
clouds:
  - name: mem
    kind: memory
    templates:
      - name: linux
        labels: ${LABELS}
        environment:
          LITERAL: ${KEPT_AS_WRITTEN}
"#;

#[test]
fn variables_are_expanded_from_the_given_environment() {
    let env = |name: &str| match name {
        "JENKINS_HOST" => Some("jenkins.example.com".to_owned()),
        "LABELS" => Some("linux docker".to_owned()),
        _ => None,
    };
    let c = Config::parse_with_env(WITH_VARIABLES, "vars.yaml", &env).unwrap();
    assert_eq!(c.owner.as_str(), "ci-prod");
    assert_eq!(c.jenkins.url.as_str(), "https://jenkins.example.com/");
    let t = &c.clouds[0].templates[0];
    assert!(t.labels.contains("linux") && t.labels.contains("docker"));
    assert_eq!(t.environment["LITERAL"], "${KEPT_AS_WRITTEN}");
}

#[test]
fn an_unset_variable_names_its_field_line_and_name() {
    let env = |name: &str| (name == "LABELS").then(|| "linux".to_owned());
    let err = Config::parse_with_env(WITH_VARIABLES, "vars.yaml", &env).unwrap_err();
    let p = err
        .problems
        .iter()
        .find(|p| p.field == "jenkins.url")
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(p.line, Some(4));
    assert!(
        p.message.contains("`${JENKINS_HOST}` is not set"),
        "{}",
        p.message
    );
    assert!(
        err.problems
            .iter()
            .all(|p| !p.field.contains("environment")),
        "{err}"
    );
}
