//! User data: the script that turns a fresh instance into an inbound agent.
//!
//! A template is plain text with `{{placeholder}}`s. On Linux each expands to
//! one or more single-quoted shell words ([`shell_quote`]); on Windows to one
//! single-quoted PowerShell literal ([`powershell_quote`]), lists to an array
//! `@('a', 'b')`. Either way values with spaces or quotes stay one literal.
//! The default templates are [`DEFAULT_TEMPLATE`] (bash) and
//! [`WINDOWS_TEMPLATE`] (PowerShell); `docs/ec2.md` lists the placeholders
//! ([`PLACEHOLDERS`]).

use std::collections::BTreeMap;

use jenkins_cloud_core::backend::AgentTransport;
use jenkins_cloud_core::secret::Secret;

use crate::error::Ec2Error;
use crate::spec::Platform;

/// The default user data template (bash, systemd).
pub const DEFAULT_TEMPLATE: &str = include_str!("userdata/default.sh");

/// The default user data template for Windows (PowerShell, a scheduled task).
pub const WINDOWS_TEMPLATE: &str = include_str!("userdata/windows.ps1");

/// EC2's limit on user data before base64 encoding.
pub const MAX_USER_DATA: usize = 16 * 1024;

/// Every placeholder a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "jenkins_url",
    "agent_name",
    "work_dir",
    "secret_mode",
    "secret_parameter",
    "secret",
    "region",
    "agent_tag_key",
    "parameter_tag_key",
    "transport_args",
    "web_socket",
    "tunnel",
    "environment",
];

/// The values a template is rendered with.
#[derive(Debug, Clone)]
pub struct UserDataValues<'a> {
    /// Controller URL, ending in `/`.
    pub jenkins_url: &'a str,
    /// The agent (node) name at launch.
    pub agent_name: &'a str,
    /// The agent's work directory (the template's `remote_fs`).
    pub work_dir: &'a str,
    /// WebSocket or tunnel.
    pub transport: &'a AgentTransport,
    /// SSM parameter holding the secret (SSM delivery), or `None`.
    pub secret_parameter: Option<&'a str>,
    /// The secret itself: only for the `user_data` delivery.
    pub inline_secret: Option<&'a Secret>,
    /// The AWS region (for `aws ssm get-parameter`).
    pub region: &'a str,
    /// Extra environment for the agent process.
    pub environment: &'a BTreeMap<String, String>,
    /// Picks the default template and the quoting of every placeholder.
    pub platform: Platform,
}

/// Quotes `value` as one POSIX shell word.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The characters PowerShell takes for a single quote: the apostrophe and
/// U+2018 ‘, U+2019 ’, U+201A ‚, U+201B ‛ ("about_Quoting_Rules",
/// <https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.core/about/about_quoting_rules>;
/// the tokenizer's `IsSingleQuote`).
const POWERSHELL_SINGLE_QUOTES: &[char] = &['\'', '\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'];

/// Quotes `value` as one single-quoted PowerShell string literal: nothing in
/// it is expanded (`$`, backticks and newlines stay literal), and every
/// single-quote character, typographic ones included, is doubled (inside a
/// single-quoted string two quote characters stand for the second one).
pub fn powershell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if POWERSHELL_SINGLE_QUOTES.contains(&c) {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The placeholders used in `template`, in order of appearance.
fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push(after[..end].trim());
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    out
}

/// Checks a user template: unknown placeholders are named in the error.
pub fn check_template(template: &str) -> Result<(), String> {
    let unknown: Vec<&str> = placeholders(template)
        .into_iter()
        .filter(|p| !PLACEHOLDERS.contains(p))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unknown placeholder(s) {}; known: {}",
            unknown
                .iter()
                .map(|p| format!("{{{{{p}}}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            PLACEHOLDERS.join(", ")
        ))
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Renders `template` (or the default) with `values`.
///
/// Errors name unknown placeholders, bad environment names, or user data over
/// EC2's 16 KiB limit. The secret is only substituted for `{{secret}}`, and only
/// when `values.inline_secret` is set.
pub fn render(template: Option<&str>, values: &UserDataValues<'_>) -> Result<String, Ec2Error> {
    let template = template.unwrap_or(match values.platform {
        Platform::Linux => DEFAULT_TEMPLATE,
        Platform::Windows => WINDOWS_TEMPLATE,
    });
    let quote: fn(&str) -> String = match values.platform {
        Platform::Linux => shell_quote,
        Platform::Windows => powershell_quote,
    };
    check_template(template).map_err(Ec2Error::UserData)?;
    if let Some(bad) = values.environment.keys().find(|k| !is_env_name(k)) {
        return Err(Ec2Error::UserData(format!(
            "environment variable name `{bad}` is not a valid shell name"
        )));
    }
    let (web_socket, tunnel, transport_args) = match values.transport {
        AgentTransport::WebSocket => ("true", "", vec!["-webSocket".to_owned()]),
        AgentTransport::Tunnel(addr) => (
            "false",
            addr.as_str(),
            vec!["-tunnel".to_owned(), addr.clone()],
        ),
    };
    let words = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
        match values.platform {
            Platform::Linux => quoted.join(" "),
            Platform::Windows => format!("@({})", quoted.join(", ")),
        }
    };
    let env: Vec<String> = values
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mode = if values.inline_secret.is_some() {
        "user_data"
    } else {
        "ssm"
    };

    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let value = match after[..end].trim() {
            "jenkins_url" => quote(values.jenkins_url),
            "agent_name" => quote(values.agent_name),
            "work_dir" => quote(values.work_dir),
            "secret_mode" => quote(mode),
            "secret_parameter" => quote(values.secret_parameter.unwrap_or("")),
            "secret" => quote(values.inline_secret.map(Secret::expose).unwrap_or("")),
            "region" => quote(values.region),
            "agent_tag_key" => quote(jenkins_cloud_core::backend::tags::AGENT),
            "parameter_tag_key" => quote(crate::SECRET_PARAMETER_TAG),
            "transport_args" => words(&transport_args),
            "web_socket" => quote(web_socket),
            "tunnel" => quote(tunnel),
            "environment" => words(&env),
            other => {
                return Err(Ec2Error::UserData(format!(
                    "unknown placeholder {{{{{other}}}}}"
                )))
            }
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if out.len() > MAX_USER_DATA {
        return Err(Ec2Error::UserData(format!(
            "rendered user data is {} bytes, EC2 allows {MAX_USER_DATA}",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    const SECRET: &str = "0f3c9a1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    fn values<'a>(
        env: &'a BTreeMap<String, String>,
        transport: &'a AgentTransport,
        secret: Option<&'a Secret>,
    ) -> UserDataValues<'a> {
        UserDataValues {
            jenkins_url: "https://ci.example.com/jenkins/",
            agent_name: "ci-linux-abc123",
            work_dir: "/home/jenkins/agent dir",
            transport,
            secret_parameter: secret
                .is_none()
                .then_some("/jenkins-cloud/ci/ci-linux-abc123"),
            inline_secret: secret,
            region: "us-east-1",
            environment: env,
            platform: Platform::Linux,
        }
    }

    fn syntax_check(shell: &str, script: &str) {
        let mut child = Command::new(shell)
            .arg("-n")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {shell}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{shell} -n failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn default_template_renders_to_valid_bash_without_the_secret_in_ssm_mode() {
        let env = BTreeMap::from([("JAVA_OPTS".to_owned(), "-Xmx2g -Dx='y'".to_owned())]);
        let transport = AgentTransport::WebSocket;
        let script = render(None, &values(&env, &transport, None)).unwrap();
        syntax_check("bash", &script);
        assert!(!script.contains(SECRET));
        assert!(!script.contains("{{"), "placeholder left: {script}");
        assert!(script.contains("'/jenkins-cloud/ci/ci-linux-abc123'"));
        assert!(script.contains("'-webSocket'"));
        assert!(script.contains("inline_secret=''"));
        assert!(script.contains("jnlpJars/agent.jar"));
        assert!(script.contains("Restart=always"));
        assert!(
            script.contains("'JAVA_OPTS=-Xmx2g -Dx='\\''y'\\'''"),
            "{script}"
        );
    }

    #[test]
    fn inline_mode_carries_the_secret_and_tunnel() {
        let env = BTreeMap::new();
        let transport = AgentTransport::Tunnel("jenkins.internal:50000".into());
        let secret = Secret::new(SECRET);
        let script = render(None, &values(&env, &transport, Some(&secret))).unwrap();
        syntax_check("bash", &script);
        assert!(script.contains(&format!("inline_secret='{SECRET}'")));
        assert!(script.contains("'-tunnel' 'jenkins.internal:50000'"));
    }

    #[test]
    fn hostile_values_stay_one_word() {
        let env = BTreeMap::new();
        let transport = AgentTransport::WebSocket;
        let mut v = values(&env, &transport, None);
        v.agent_name = "x'; rm -rf / #";
        let script = render(
            Some("#!/bin/sh\nname={{agent_name}}\nprintf '%s' \"$name\"\n"),
            &v,
        )
        .unwrap();
        syntax_check("sh", &script);
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "x'; rm -rf / #");
    }

    #[test]
    fn unknown_placeholders_and_bad_env_names_are_named() {
        let err = check_template("a {{agent_name}} {{ foo }} {{bar}}").unwrap_err();
        assert!(
            err.contains("{{foo}}") && err.contains("{{bar}}") && !err.contains("{{agent_name}},"),
            "{err}"
        );
        let env = BTreeMap::from([("BAD-NAME".to_owned(), "1".to_owned())]);
        let transport = AgentTransport::WebSocket;
        let err = render(None, &values(&env, &transport, None)).unwrap_err();
        assert!(err.to_string().contains("BAD-NAME"));
    }

    #[test]
    fn oversized_user_data_is_refused() {
        let env = BTreeMap::new();
        let transport = AgentTransport::WebSocket;
        let big = "#".repeat(MAX_USER_DATA + 1);
        let err = render(Some(&big), &values(&env, &transport, None)).unwrap_err();
        assert!(err.to_string().contains("16384"));
    }

    /// Reads the single-quoted PowerShell literal at the start of `text` as
    /// PowerShell's tokenizer does (a quote character ends it unless another
    /// one follows, which then stands for itself); returns it and the rest.
    fn powershell_literal(text: &str) -> (String, &str) {
        let mut chars = text.char_indices().peekable();
        let (_, open) = chars.next().expect("a literal");
        assert!(POWERSHELL_SINGLE_QUOTES.contains(&open), "no quote: {text}");
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            if POWERSHELL_SINGLE_QUOTES.contains(&c) {
                match chars.peek() {
                    Some(&(_, next)) if POWERSHELL_SINGLE_QUOTES.contains(&next) => {
                        value.push(next);
                        chars.next();
                    }
                    _ => return (value, &text[i + c.len_utf8()..]),
                }
            } else {
                value.push(c);
            }
        }
        panic!("unterminated literal: {text}");
    }

    fn windows<'a>(v: UserDataValues<'a>) -> UserDataValues<'a> {
        UserDataValues {
            platform: Platform::Windows,
            ..v
        }
    }

    #[test]
    fn powershell_quote_doubles_every_single_quote() {
        assert_eq!(powershell_quote("plain"), "'plain'");
        assert_eq!(powershell_quote("it's"), "'it''s'");
        assert_eq!(
            powershell_quote("\u{2018}x\u{2019}"),
            "'\u{2018}\u{2018}x\u{2019}\u{2019}'"
        );
        assert_eq!(
            powershell_quote("\u{201A}\u{201B}"),
            "'\u{201A}\u{201A}\u{201B}\u{201B}'"
        );
        assert_eq!(powershell_quote(""), "''");
    }

    #[test]
    fn windows_template_is_powershell_with_every_placeholder_and_no_secret_in_ssm_mode() {
        let env = BTreeMap::from([("JAVA_OPTS".to_owned(), "-Xmx2g".to_owned())]);
        let transport = AgentTransport::WebSocket;
        let script = render(None, &windows(values(&env, &transport, None))).unwrap();
        assert!(script.starts_with("<powershell>\n"), "{script}");
        assert!(script.trim_end().ends_with("</powershell>"), "{script}");
        // Tags EC2Launch reads appear once, around the whole script.
        assert_eq!(script.matches("<powershell>").count(), 1);
        assert_eq!(script.matches("</powershell>").count(), 1);
        assert!(!script.contains("<persist>"));
        assert!(!script.contains("{{"), "placeholder left: {script}");
        assert!(!script.contains(SECRET));
        for line in [
            "  JenkinsUrl      = 'https://ci.example.com/jenkins/'",
            "  AgentName       = 'ci-linux-abc123'",
            "  WorkDir         = '/home/jenkins/agent dir'",
            "  SecretMode      = 'ssm'",
            "  SecretParameter = '/jenkins-cloud/ci/ci-linux-abc123'",
            "  Region          = 'us-east-1'",
            "  AgentTagKey     = 'jenkins-cloud:agent'",
            "  ParameterTagKey = 'jenkins-cloud:secret-parameter'",
            "  TransportArgs   = @('-webSocket')",
            "  Environment     = @('JAVA_OPTS=-Xmx2g')",
            "$InlineSecret = ''",
        ] {
            assert!(
                script.lines().any(|l| l == line),
                "missing {line:?} in:\n{script}"
            );
        }
        for needle in [
            "Register-ScheduledTask -TaskName 'jenkins-cloud-agent'",
            "New-ScheduledTaskTrigger -AtStartup",
            "-UserId 'SYSTEM'",
            "Start-ScheduledTask -TaskName 'jenkins-cloud-agent'",
            "http://169.254.169.254/latest/api/token",
            "latest/meta-data/tags/instance/$Key",
            "Get-InstanceTag $Conf.AgentTagKey",
            "Get-InstanceTag $Conf.ParameterTagKey",
            "Get-SSMParameter -Name $Name -WithDecryption $true",
            "aws ssm get-parameter --region $Region --with-decryption",
            "jnlpJars/agent.jar",
            "'-secret', \"@$SecretFile\"",
            "java is not on PATH",
            "*S-1-5-18:F' '*S-1-5-32-544:F'",
            "while ($true)",
        ] {
            assert!(script.contains(needle), "missing {needle:?}");
        }
    }

    #[test]
    fn windows_inline_mode_carries_the_secret_and_tunnel() {
        let env = BTreeMap::new();
        let transport = AgentTransport::Tunnel("jenkins.internal:50000".into());
        let secret = Secret::new(SECRET);
        let script = render(None, &windows(values(&env, &transport, Some(&secret)))).unwrap();
        assert!(script.contains(&format!("\n$InlineSecret = '{SECRET}'\n")));
        assert!(script.contains("TransportArgs   = @('-tunnel', 'jenkins.internal:50000')"));
        assert!(script.contains("SecretMode      = 'user_data'"));
        assert!(script.contains("Environment     = @()"));
    }

    #[test]
    fn hostile_values_stay_one_powershell_literal_in_custom_templates() {
        let env = BTreeMap::new();
        let transport = AgentTransport::WebSocket;
        for hostile in [
            "x'; Remove-Item -Recurse C:\\ #",
            "a\u{2018}b\u{2019}c\u{201A}d\u{201B}e''f",
            "$(Stop-Computer) ${env:PATH} `n `\"",
            "line one\nline two\r\n'@\n\"@",
            "'",
            "\u{2019}",
        ] {
            let mut v = windows(values(&env, &transport, None));
            v.agent_name = hostile;
            let script =
                render(Some("<powershell>\n$n = {{agent_name}}\n</powershell>"), &v).unwrap();
            let rest = script.strip_prefix("<powershell>\n$n = ").unwrap();
            let (value, after) = powershell_literal(rest);
            assert_eq!(value, hostile, "{script}");
            assert_eq!(after, "\n</powershell>", "{script}");
        }
        // The same custom template on Linux keeps POSIX quoting.
        let mut v = values(&env, &transport, None);
        v.agent_name = "a'b";
        assert_eq!(render(Some("n={{agent_name}}"), &v).unwrap(), "n='a'\\''b'");
        let v = windows(UserDataValues {
            agent_name: "a'b",
            ..v
        });
        assert_eq!(render(Some("n={{agent_name}}"), &v).unwrap(), "n='a''b'");
    }

    #[test]
    fn oversized_windows_user_data_is_refused() {
        let env = BTreeMap::from([("BIG".to_owned(), "x".repeat(MAX_USER_DATA))]);
        let transport = AgentTransport::WebSocket;
        let err = render(None, &windows(values(&env, &transport, None))).unwrap_err();
        assert!(err.to_string().contains("16384"), "{err}");
        let empty = BTreeMap::new();
        let script = render(None, &windows(values(&empty, &transport, None))).unwrap();
        assert!(script.len() < MAX_USER_DATA / 2, "{} bytes", script.len());
    }
}
