//! Mapping of HTTP outcomes (status, `X-Error`, body, transport failures) to
//! [`JenkinsError`], with redaction of anything that could be a secret.

use crate::jenkins::JenkinsError;

/// Which Jenkins endpoint a request went to: decides the permission named in a
/// 403 and the wording of errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET /queue/api/json`.
    Queue,
    /// `GET /computer/api/json`, `GET /computer/{name}/api/json`.
    Computers,
    /// `POST /computer/doCreateItem` or `/computer/createItem`.
    CreateNode,
    /// `GET /computer/{name}/jenkins-agent.jnlp`.
    AgentSecret,
    /// `POST /computer/{name}/changeOfflineCause`.
    Drain,
    /// `POST /computer/{name}/doDelete`.
    Delete,
    /// `POST /scriptText`.
    ScriptConsole,
    /// `GET /crumbIssuer/api/json`.
    Crumb,
}

impl Endpoint {
    /// The permission Jenkins checks on this endpoint.
    pub(crate) fn permission(self) -> &'static str {
        match self {
            Endpoint::Queue | Endpoint::Computers | Endpoint::Crumb => "Overall/Read",
            Endpoint::CreateNode => "Agent/Create",
            Endpoint::AgentSecret => "Agent/Connect",
            Endpoint::Drain => "Agent/Disconnect",
            Endpoint::Delete => "Agent/Delete",
            Endpoint::ScriptConsole => "Overall/Administer",
        }
    }

    /// A short description for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Endpoint::Queue => "the build queue",
            Endpoint::Computers => "the node list",
            Endpoint::CreateNode => "node creation",
            Endpoint::AgentSecret => "the agent's JNLP file",
            Endpoint::Drain => "marking the node offline",
            Endpoint::Delete => "node deletion",
            Endpoint::ScriptConsole => "the script console",
            Endpoint::Crumb => "the crumb issuer",
        }
    }
}

/// The body text Jenkins sends with a 403 when a session request lacks a crumb.
pub(crate) const NO_VALID_CRUMB: &str = "No valid crumb was included in the request";

/// Maps a response that arrived to `Ok` (2xx, 3xx) or the matching error.
/// `target` names what was asked for (a node name, a path) for 404s.
pub(crate) fn map_status(
    endpoint: Endpoint,
    target: &str,
    status: u16,
    x_error: Option<&str>,
    body: &str,
) -> Result<(), JenkinsError> {
    match status {
        200..=399 => Ok(()),
        401 => Err(JenkinsError::Unauthorized),
        403 => {
            let permission = if body.contains(NO_VALID_CRUMB) {
                "a valid CSRF crumb (session authentication)".to_owned()
            } else {
                missing_permission(body).unwrap_or_else(|| endpoint.permission().to_owned())
            };
            Err(JenkinsError::Forbidden { permission })
        }
        404 => Err(JenkinsError::NotFound {
            what: target.to_owned(),
        }),
        400 => {
            let message = x_error
                .map(redact)
                .unwrap_or_else(|| format!("400 from {}: {}", endpoint.describe(), excerpt(body)));
            if message.contains("already exists") {
                Err(JenkinsError::Conflict { message })
            } else {
                Err(JenkinsError::BadRequest { message })
            }
        }
        429 | 500..=599 => Err(JenkinsError::Server {
            status,
            message: format!("{}: {}", endpoint.describe(), excerpt(body)),
        }),
        _ => Err(JenkinsError::BadRequest {
            message: format!(
                "status {status} from {}: {}",
                endpoint.describe(),
                excerpt(body)
            ),
        }),
    }
}

/// `… is missing the Overall/Administer permission` in Jenkins' 403 page.
fn missing_permission(body: &str) -> Option<String> {
    let start = body.find("is missing the ")? + "is missing the ".len();
    let rest = &body[start..];
    let end = rest.find(" permission")?;
    let perm = rest[..end].trim();
    (!perm.is_empty() && perm.len() < 64 && !perm.contains('<')).then(|| perm.to_owned())
}

/// Parses a JSON body, mapping HTML pages and invalid JSON to `BadResponse`.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    endpoint: Endpoint,
    body: &str,
) -> Result<T, JenkinsError> {
    serde_json::from_str(body).map_err(|e| {
        let message = if body.trim_start().starts_with('<') {
            format!(
                "expected JSON from {}, got an HTML page: {}",
                endpoint.describe(),
                excerpt(body)
            )
        } else {
            redact(&format!("invalid JSON from {}: {e}", endpoint.describe()))
        };
        JenkinsError::BadResponse { message }
    })
}

/// Maps a transport-level failure (no HTTP response) to `Timeout` or `Transport`.
pub(crate) fn map_transport(endpoint: Endpoint, err: &reqwest::Error) -> JenkinsError {
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    let message = redact(&format!("{}: {}", endpoint.describe(), chain.join(": ")));
    if err.is_timeout() {
        JenkinsError::Timeout { message }
    } else if err.is_decode() || err.is_body() {
        JenkinsError::BadResponse { message }
    } else {
        JenkinsError::Transport { message }
    }
}

/// A short, tag-free, secret-free excerpt of a response body.
pub(crate) fn excerpt(body: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    let lower = body.to_ascii_lowercase();
    let skip_to = lower.find("<body").unwrap_or(0);
    for c in body[skip_to..].chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if in_tag => {}
            _ => text.push(c),
        }
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = collapsed.chars().take(160).collect();
    if collapsed.chars().count() > 160 {
        short.push('…');
    }
    if short.is_empty() {
        short = "(empty body)".into();
    }
    redact(&short)
}

/// `error` with `f` applied to every text it carries (messages, names, what
/// was not found), for removing secrets by value.
pub(crate) fn map_texts(error: JenkinsError, f: impl Fn(&str) -> String) -> JenkinsError {
    use JenkinsError as E;
    match error {
        E::Unauthorized => E::Unauthorized,
        E::Forbidden { permission } => E::Forbidden {
            permission: f(&permission),
        },
        E::NotFound { what } => E::NotFound { what: f(&what) },
        E::Conflict { message } => E::Conflict {
            message: f(&message),
        },
        E::BadRequest { message } => E::BadRequest {
            message: f(&message),
        },
        E::NotOwned { name } => E::NotOwned { name: f(&name) },
        E::BadResponse { message } => E::BadResponse {
            message: f(&message),
        },
        E::Server { status, message } => E::Server {
            status,
            message: f(&message),
        },
        E::Timeout { message } => E::Timeout {
            message: f(&message),
        },
        E::Transport { message } => E::Transport {
            message: f(&message),
        },
    }
}

/// Every form in which `secret` could come back in a response we print: as
/// is, percent-encoded, and (for the API token) inside the basic-auth header
/// value `base64(user:token)` a proxy or error page may echo.
pub(crate) fn secret_forms(secret: &str, user: Option<&str>) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    if encoded != secret {
        forms.push(encoded);
    }
    if let Some(user) = user {
        use base64::Engine as _;
        forms.push(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")));
    }
    forms.retain(|f| f.len() >= 4);
    forms
}

/// Replaces each of `forms` in `text` with `***`.
pub(crate) fn scrub(text: &str, forms: &[String]) -> String {
    let mut out = text.to_owned();
    for form in forms {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), "***");
        }
    }
    out
}

/// Replaces runs of 32 or more hex digits (agent secrets are 64, API tokens 34)
/// with `***`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 32 {
            out.push_str("***");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_errors() {
        let ep = Endpoint::CreateNode;
        assert_eq!(map_status(ep, "n", 302, None, ""), Ok(()));
        assert_eq!(
            map_status(ep, "n", 401, None, ""),
            Err(JenkinsError::Unauthorized)
        );
        assert_eq!(
            map_status(ep, "n", 403, None, "<html>denied</html>"),
            Err(JenkinsError::Forbidden {
                permission: "Agent/Create".into()
            })
        );
        assert_eq!(
            map_status(
                ep,
                "n",
                403,
                None,
                "bob is missing the Overall/Administer permission"
            ),
            Err(JenkinsError::Forbidden {
                permission: "Overall/Administer".into()
            })
        );
        assert!(matches!(
            map_status(ep, "n", 400, Some("Agent called ‘n’ already exists"), ""),
            Err(JenkinsError::Conflict { .. })
        ));
        assert!(matches!(
            map_status(ep, "n", 400, Some("‘?’ is an unsafe character"), ""),
            Err(JenkinsError::BadRequest { .. })
        ));
        assert!(matches!(
            map_status(ep, "n", 503, None, ""),
            Err(JenkinsError::Server { status: 503, .. })
        ));
        assert!(matches!(
            map_status(ep, "n", 404, None, ""),
            Err(JenkinsError::NotFound { .. })
        ));
    }

    #[test]
    fn excerpts_strip_markup_and_secrets() {
        let page = "<html><head><title>x</title></head><body><h1>Oops</h1> secret \
                    0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef</body></html>";
        let e = excerpt(page);
        assert!(e.contains("Oops"), "{e}");
        assert!(!e.contains("0123456789abcdef0123"), "{e}");
        assert!(e.contains("***"));
    }

    #[test]
    fn html_instead_of_json_is_a_bad_response() {
        let err =
            parse_json::<serde_json::Value>(Endpoint::Queue, "<html><body>Login</body></html>")
                .unwrap_err();
        assert!(matches!(&err, JenkinsError::BadResponse { message } if message.contains("HTML")));
        let err = parse_json::<serde_json::Value>(Endpoint::Queue, "{\"items\": [").unwrap_err();
        assert!(
            matches!(&err, JenkinsError::BadResponse { message } if message.contains("invalid JSON"))
        );
    }
}
