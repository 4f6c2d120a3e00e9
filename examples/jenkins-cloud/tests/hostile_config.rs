//! Hostile configurations through the real binary (`jenkins-cloud --config
//! FILE validate`): unbounded counts, token files that are devices or huge,
//! credentials in URLs, many errors in one template, control characters in
//! names, backend spec errors, and very large files. Each case checks the exit
//! code and what stderr says (and does not say). `validate` talks to neither
//! AWS nor Jenkins.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of the binary gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("jc-hostile-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `jenkins-cloud --config <config> validate`. A run still going after
/// `HANG` is killed and the test fails: that is a hang, not slowness (the
/// cases here take well under a second each).
fn validate(config: &Path) -> Run {
    const HANG: Duration = Duration::from_secs(300);
    let mut child = Command::new(env!("CARGO_BIN_EXE_jenkins-cloud"))
        .arg("--config")
        .arg(config)
        .arg("validate")
        .env_remove("JC_HOSTILE_UNSET_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`validate {}` hung", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// A run that must fail: exit code 1 and nothing on stdout.
fn refused(config: &Path) -> String {
    let run = validate(config);
    assert_eq!(
        run.code,
        Some(1),
        "should be refused\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert_no_raw_control(&run.stderr);
    run.stderr
}

/// A run that must succeed, returning stdout.
fn accepted(config: &Path) -> String {
    let run = validate(config);
    assert_eq!(
        run.code,
        Some(0),
        "should be accepted\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    run.stdout
}

/// No control character reaches the terminal but the newlines between lines.
fn assert_no_raw_control(text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(bad.is_empty(), "raw control characters {bad:?} in:\n{text}");
}

/// The line of stderr about `field`, which must be there once at least.
fn line_for<'a>(stderr: &'a str, field: &str) -> &'a str {
    let needle = format!(" {field}: ");
    stderr
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no problem for `{field}` in:\n{stderr}"))
}

const HEAD: &str = r#"owner: ci
jenkins: {url: "https://jenkins.example/", user: bot, token_env: JC_HOSTILE_UNSET_TOKEN}
"#;

fn memory_cloud(templates: &str) -> String {
    format!("{HEAD}clouds:\n  - name: mem\n    kind: memory\n    templates:\n{templates}")
}

#[test]
fn counts_beyond_their_maxima_are_refused_naming_the_field() {
    let dir = Scratch::new("counts");
    let text = r#"owner: ci
jenkins: {url: "https://jenkins.example/", user: bot, token_env: JC_HOSTILE_UNSET_TOKEN}
caps:
  global: 4294967295
  per_label: [{label: gpu, max: 100001}]
clouds:
  - name: mem
    kind: memory
    templates:
      - name: a
        min_idle: 4294967295
      - name: b
        executors: 64
        min_idle: 70000000
      - name: c
        min_idle_windows: [{window: "Mon-Fri 08:00-18:00", count: 4294967295}]
      - name: d
        instance_cap: 4294967295
      - name: e
        max_uses: 4294967295
      - name: f
        executors: 257
"#;
    let err = refused(&dir.write("counts.yaml", text));
    for (field, max) in [
        ("caps.global", "100000"),
        ("caps.per_label[0].max", "100000"),
        ("clouds[0].templates[0].min_idle", "1000"),
        ("clouds[0].templates[1].min_idle", "1000"),
        ("clouds[0].templates[2].min_idle_windows[0].count", "1000"),
        ("clouds[0].templates[3].instance_cap", "100000"),
        ("clouds[0].templates[4].max_uses", "100000"),
        ("clouds[0].templates[5].executors", "64"),
    ] {
        let line = line_for(&err, field);
        assert!(
            line.contains(&format!("must be at most {max}, found ")),
            "{line}"
        );
        assert!(line.starts_with("  "), "{line}");
        assert!(line.contains("counts.yaml:"), "file and line: {line}");
    }

    // The maxima themselves are accepted.
    let at_max = memory_cloud(
        r#"      - name: a
        executors: 64
        instance_cap: 100000
        min_idle: 1000
        max_uses: 100000
        min_idle_windows: [{window: "Mon-Fri 08:00-18:00", count: 1000}]
"#,
    )
    .replace(
        "clouds:",
        "caps: {global: 100000, per_label: [{label: gpu, max: 100000}]}\nclouds:",
    );
    let out = accepted(&dir.write("at-max.yaml", at_max));
    assert!(out.contains("ok (1 template(s))"), "{out}");
}

#[test]
fn token_files_must_be_small_regular_readable_files() {
    let dir = Scratch::new("token");
    let with_token_file = |path: &str| {
        format!(
            "owner: ci\njenkins: {{url: \"https://jenkins.example/\", user: bot, token_file: \"{path}\"}}\nclouds: [{{name: m, kind: memory, templates: [{{name: t}}]}}]\n"
        )
    };

    // A device that never ends: refused at once, before any read.
    let err = refused(&dir.write("zero.yaml", with_token_file("/dev/zero")));
    let line = line_for(&err, "jenkins.token_file");
    assert!(line.contains("not a regular file"), "{line}");
    assert!(line.contains(":2:"), "line of token_file: {line}");

    // A directory.
    let sub = dir.0.join("a-directory");
    std::fs::create_dir(&sub).unwrap();
    let err = refused(&dir.write("dir.yaml", with_token_file(sub.to_str().unwrap())));
    assert!(
        line_for(&err, "jenkins.token_file").contains("not a regular file"),
        "{err}"
    );

    // Larger than 64 KiB.
    let big = dir.write("big-token", vec![b'x'; 64 * 1024 + 1]);
    let err = refused(&dir.write("big.yaml", with_token_file(big.to_str().unwrap())));
    let line = line_for(&err, "jenkins.token_file");
    assert!(line.contains("more than the 65536"), "{line}");
    assert!(!err.contains("xxxx"), "the content is never shown: {err}");

    // Empty (run would refuse it too).
    let empty = dir.write("empty-token", " \n");
    let err = refused(&dir.write("empty.yaml", with_token_file(empty.to_str().unwrap())));
    assert!(
        line_for(&err, "jenkins.token_file").contains("empty"),
        "{err}"
    );

    // At the limit it is read, and never printed.
    let mut token = vec![b'k'; 64 * 1024 - 1];
    token.push(b'\n');
    let good = dir.write("good-token", token);
    let config = dir.write("good.yaml", with_token_file(good.to_str().unwrap()));
    let run = validate(&config);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stdout.contains("kkkk") && !run.stderr.contains("kkkk"));
}

#[test]
fn the_configuration_file_itself_must_be_a_small_regular_file() {
    let dir = Scratch::new("config-file");
    let err = refused(Path::new("/dev/zero"));
    assert!(err.contains("not a regular file"), "{err}");

    // A file of 16 MiB + 1 byte (a comment): refused for its size, not parsed.
    let mut big = b"# ".to_vec();
    big.resize(16 * 1024 * 1024 + 1, b'x');
    let err = refused(&dir.write("big.yaml", big));
    assert!(err.contains("more than the 16777216"), "{err}");
}

#[test]
fn urls_are_never_printed_with_credentials_and_query_or_fragment_is_refused() {
    let dir = Scratch::new("urls");
    let with_url = |url: &str, extra: &str| {
        format!(
            "owner: ci\njenkins: {{url: \"{url}\", user: bot, token_env: JC_HOSTILE_UNSET_TOKEN{extra}}}\nclouds: [{{name: m, kind: memory, templates: [{{name: t}}]}}]\n"
        )
    };
    for (k, (url, extra)) in [
        ("http://bot:s3cr3tPW@jenkins.example/", ""),
        (
            "http://bot:s3cr3tPW@jenkins.example/",
            ", allow_insecure_http: true",
        ),
        ("https://bot:s3cr3tPW@jenkins.example/", ""),
        ("https://s3cr3tPW@jenkins.example/", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let err = refused(&dir.write(&format!("cred{k}.yaml"), with_url(url, extra)));
        assert!(!err.contains("s3cr3tPW"), "the password is shown:\n{err}");
        let line = line_for(&err, "jenkins.url");
        assert!(line.contains("***@jenkins.example"), "{line}");
        assert!(
            err.contains("credentials (`user:password@`) in the URL are not allowed"),
            "{err}"
        );
    }

    // URLs that do not parse are not echoed with their credentials either.
    for (k, url) in [
        "http://bot:s3cr3t/PW@jenkins.example:port/",
        "bot:s3cr3tPW@jenkins.example",
        "http://bot:s3cr3tPW@jenkins exa mple/",
    ]
    .into_iter()
    .enumerate()
    {
        let err = refused(&dir.write(&format!("bad{k}.yaml"), with_url(url, "")));
        assert!(
            !err.contains("s3cr3t"),
            "the password is shown for {url}:\n{err}"
        );
        line_for(&err, "jenkins.url");
    }

    // The agent URL too.
    let err = refused(&dir.write(
        "agent.yaml",
        with_url(
            "https://jenkins.example/",
            ", agent_url: \"http://a:s3cr3tPW@internal/\"",
        ),
    ));
    assert!(!err.contains("s3cr3tPW"), "{err}");
    line_for(&err, "jenkins.agent_url");

    // Query and fragment: `run` refuses them, so `validate` does.
    for (k, url) in [
        "https://jenkins.example/?x=1#frag",
        "https://jenkins.example/?x=1",
        "https://jenkins.example/#frag",
    ]
    .into_iter()
    .enumerate()
    {
        let err = refused(&dir.write(&format!("query{k}.yaml"), with_url(url, "")));
        let line = line_for(&err, "jenkins.url");
        assert!(line.contains("must not have a query"), "{line}");
    }
}

#[test]
fn every_error_of_one_template_is_listed_with_line_and_field() {
    let dir = Scratch::new("all-errors");
    let text = memory_cloud(
        r#"      - name: t
        executors: "two"
        idle_timeout: -1m
        mode: weird
        colour: blue
      - name: fine
"#,
    );
    let err = refused(&dir.write("four.yaml", text));
    for (field, line, needle) in [
        ("clouds[0].templates[0].executors", 8, "invalid type"),
        ("clouds[0].templates[0].idle_timeout", 9, "-1m"),
        ("clouds[0].templates[0].mode", 10, "unknown variant `weird`"),
        (
            "clouds[0].templates[0].colour",
            11,
            "unknown field `colour`",
        ),
    ] {
        let shown = line_for(&err, field);
        assert!(
            shown.starts_with(&format!(
                "  {}:{line}: {field}: ",
                dir.0.join("four.yaml").display()
            )),
            "{shown}"
        );
        assert!(shown.contains(needle), "{shown}");
    }
    assert!(
        err.starts_with(&format!(
            "{}: 4 problems",
            dir.0.join("four.yaml").display()
        )),
        "{err}"
    );

    // Other sections are read field by field too.
    let text = r#"owner: ci
jenkins: {url: "https://jenkins.example/", user: [bot], token_env: 7, allow_insecure_http: maybe}
caps: {global: lots, per_label: [{label: gpu, max: -1}]}
clouds:
  - name: mem
    kind: memory
    region: [eu]
    templates: [{name: t}]
"#;
    let err = refused(&dir.write("sections.yaml", text));
    for field in [
        "jenkins.user",
        "jenkins.token_env",
        "jenkins.allow_insecure_http",
        "caps.global",
        "caps.per_label[0].max",
        "clouds[0].region",
    ] {
        line_for(&err, field);
    }
}

#[test]
fn names_with_control_characters_are_refused_and_shown_escaped() {
    let dir = Scratch::new("names");
    // YAML double-quoted escapes put the raw characters in the values.
    let text = r#"owner: "ci\e[2J"
jenkins: {url: "https://jenkins.example/", user: "bot\r\nX-Injected: 1", token_env: JC_HOSTILE_UNSET_TOKEN}
caps: {per_label: [{label: "gpu\e[31m", max: 2}]}
clouds:
  - name: "mem\e[31m\nFAKE: ok"
    kind: memory
    templates:
      - name: "bad\0name"
      - name: "t\e]0;title\a"
        labels: "linux\e[2Jdocker"
      - name: "line\nbreak"
        executors: "many"
"#;
    let err = refused(&dir.write("names.yaml", text));
    assert!(
        err.lines().skip(1).all(|l| l.starts_with("  ")),
        "a name must not start a line of its own:\n{err}"
    );
    assert!(!err.contains("FAKE: ok\n"), "{err}");
    assert!(line_for(&err, "owner").contains(r"ci\u{1b}[2J"), "{err}");
    assert!(
        line_for(&err, "jenkins.user").contains(r"bot\r\nX-Injected: 1"),
        "{err}"
    );
    assert!(
        line_for(&err, "caps.per_label[0].label").contains(r"gpu\u{1b}[31m"),
        "{err}"
    );
    assert!(
        line_for(&err, "clouds[0].name").contains(r"mem\u{1b}[31m\nFAKE: ok"),
        "{err}"
    );
    assert!(
        line_for(&err, "clouds[0].templates[0].name").contains(r"bad\u{0}name"),
        "{err}"
    );
    assert!(
        line_for(&err, "clouds[0].templates[1].name").contains(r"t\u{1b}]0;title\u{7}"),
        "{err}"
    );
    assert!(
        line_for(&err, "clouds[0].templates[1].labels").contains(r"linux\u{1b}[2Jdocker"),
        "{err}"
    );
    // A template with a refused field still has its name checked.
    assert!(
        line_for(&err, "clouds[0].templates[2].name").contains(r"line\nbreak"),
        "{err}"
    );
    line_for(&err, "clouds[0].templates[2].executors");
}

#[test]
fn a_bracket_in_a_name_does_not_shift_the_field_path() {
    let dir = Scratch::new("brackets");
    let text = memory_cloud(
        r#"      - name: fine
      - name: "x].executors: oops [y"
        executors: 0
      - name: child
        inherit_from: "x].executors: oops [y"
"#,
    );
    let err = refused(&dir.write("brackets.yaml", text));
    let name = line_for(&err, "clouds[0].templates[1].name");
    assert!(name.contains("brackets.yaml:8:"), "{name}");
    let executors = line_for(&err, "clouds[0].templates[1].executors");
    assert!(executors.contains("must be at least 1"), "{executors}");
    assert!(executors.contains("brackets.yaml:9:"), "{executors}");
    // The child inherits the same problem, placed at its own index.
    let child = line_for(&err, "clouds[0].templates[2].executors");
    assert!(child.contains("template `child`"), "{child}");
    // Every problem sits at a path built from indices only.
    for line in err.lines().skip(1) {
        let field = line.split(": ").nth(1).unwrap_or("");
        assert!(
            !field.contains("oops") && !field.contains("[y"),
            "a name leaked into the path: {line}"
        );
    }
}

#[test]
fn fargate_spec_errors_name_the_spec_field() {
    let dir = Scratch::new("fargate");
    let text = format!(
        r#"{HEAD}clouds:
  - name: f
    kind: fargate
    clusters: [ci]
    defaults: {{cluster: ci, subnets: [subnet-1], security_groups: [sg-1]}}
    templates:
      - name: neg
        spec: {{cpu: 256, memory: -1, assign_public_ip: "sometimes", cpus: 2}}
"#
    );
    let err = refused(&dir.write("fargate.yaml", text));
    let memory = line_for(&err, "clouds[0].templates[0].spec.memory");
    assert!(memory.contains("-1"), "{memory}");
    line_for(&err, "clouds[0].templates[0].spec.assign_public_ip");
    assert!(
        line_for(&err, "clouds[0].templates[0].spec.cpus").contains("unknown field `cpus`"),
        "{err}"
    );
    assert!(
        !err.contains("templates[0].spec: "),
        "every spec problem names its field:\n{err}"
    );
}

#[test]
fn deep_inheritance_and_many_templates_validate() {
    let dir = Scratch::new("scale");
    // A 2000-deep chain: t1999 inherits from t1998 … from t0.
    let mut chain = String::from("      - {name: t0, executors: 2, labels: root}\n");
    for i in 1..2000 {
        chain.push_str(&format!(
            "      - {{name: t{i}, inherit_from: t{}}}\n",
            i - 1
        ));
    }
    let out = accepted(&dir.write("chain.yaml", memory_cloud(&chain)));
    assert!(out.contains("ok (2000 template(s))"), "{out}");

    // The same chain with a broken root: one problem per template, each at its index.
    let broken = chain.replace("executors: 2", "executors: 0");
    let err = refused(&dir.write("chain-bad.yaml", memory_cloud(&broken)));
    assert!(
        err.starts_with(&format!(
            "{}: 2000 problems",
            dir.0.join("chain-bad.yaml").display()
        )),
        "{}",
        &err[..200.min(err.len())]
    );
    line_for(&err, "clouds[0].templates[1999].executors");

    // 20000 templates side by side.
    let mut flat = String::new();
    for i in 0..20_000 {
        flat.push_str(&format!("      - {{name: t{i}, labels: l{i}}}\n"));
    }
    let out = accepted(&dir.write("flat.yaml", memory_cloud(&flat)));
    assert!(out.contains("ok (20000 template(s))"), "{out}");
}
