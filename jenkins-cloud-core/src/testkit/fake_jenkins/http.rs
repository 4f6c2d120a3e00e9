//! The fake's HTTP surface: one handler that authenticates, applies faults and
//! session rules, and dispatches on method and path like Stapler would.

use std::collections::HashMap;

use axum::extract::{Request, State as AxumState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::queue::{computer_json, computers_json, maintain, queue_json, spawn_timers};
use super::{
    lock, FakeNode, FakeUser, Shared, State, ADMINISTER, AGENT_CONNECT, AGENT_CREATE, AGENT_DELETE,
    AGENT_DISCONNECT,
};
use crate::jenkins::agent_name::check_good_name;
use crate::jenkins::client::SCRIPT_CONSOLE_DEMAND;
use crate::label::LabelSet;
use crate::template::NodeMode;

const SESSION_COOKIE: &str = "JSESSIONID.fake01";

pub(crate) fn router(shared: Shared) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(AxumState(shared): AxumState<Shared>, req: Request) -> Response {
    let mut resp = handle_inner(&shared, req).await;
    let version = lock(&shared).config.version.clone();
    if let Ok(v) = HeaderValue::from_str(&version) {
        resp.headers_mut().insert("x-jenkins", v);
    }
    resp
}

fn page(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html><head><title>Jenkins</title><script src=\"/static/x.js\"></script></head>\
         <body><div id=\"main-panel\"><h1>{status}</h1><p>{text}</p></div></body></html>"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html;charset=utf-8")],
        body,
    )
        .into_response()
}

fn json_resp(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        value.to_string(),
    )
        .into_response()
}

fn redirect(location: String) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn x_error(message: &str) -> Response {
    let mut r = page(StatusCode::BAD_REQUEST, "Error");
    if let Ok(v) = HeaderValue::from_bytes(message.as_bytes()) {
        r.headers_mut().insert("x-error", v);
    }
    r
}

fn forbidden(user: &FakeUser, permission: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        &format!(
            "Access Denied: {} is missing the {permission} permission",
            user.name
        ),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && s.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn authenticate(s: &State, headers: &HeaderMap) -> Result<FakeUser, Response> {
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(page(
            StatusCode::FORBIDDEN,
            "anonymous is missing the Overall/Read permission",
        ));
    };
    let decoded = auth
        .strip_prefix("Basic ")
        .and_then(base64_decode)
        .and_then(|b| String::from_utf8(b).ok());
    let user = decoded.and_then(|d| {
        let (name, token) = d.split_once(':')?;
        s.config
            .users
            .iter()
            .find(|u| u.name == name && u.token == token)
            .cloned()
    });
    user.ok_or_else(|| {
        let mut r = page(StatusCode::UNAUTHORIZED, "Invalid password/token for user");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Jenkins\""),
        );
        r
    })
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == SESSION_COOKIE).then(|| v.to_owned())
    })
}

fn form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

async fn handle_inner(shared: &Shared, req: Request) -> Response {
    let (delay, fault_503) = {
        let mut s = lock(shared);
        s.requests += 1;
        let f = &mut s.faults;
        let fault_503 = f.html_503_next > 0;
        if fault_503 {
            f.html_503_next -= 1;
        }
        (f.delay, fault_503)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if fault_503 {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Jenkins is going to restart. Please wait.",
        );
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    let query = form(parts.uri.query().unwrap_or("").as_bytes());
    let segments: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let base = format!(
        "http://{}/",
        parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );

    let mut s = lock(shared);
    let user = match authenticate(&s, &parts.headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let session = session_of(&parts.headers);
    if parts.method == Method::POST && s.config.session_mode {
        let crumb = parts
            .headers
            .get("jenkins-crumb")
            .and_then(|v| v.to_str().ok());
        let valid = session
            .as_ref()
            .and_then(|id| s.sessions.get(id))
            .is_some_and(|c| Some(c.as_str()) == crumb);
        if !valid {
            return page(
                StatusCode::FORBIDDEN,
                "HTTP ERROR 403 No valid crumb was included in the request",
            );
        }
    }
    let is_json = segs.last() == Some(&"json");
    if is_json && parts.method == Method::GET && s.faults.invalid_json_next > 0 {
        s.faults.invalid_json_next -= 1;
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"_class\":\"hudson.model.Queue\",\"items\":[{\"id\":",
        )
            .into_response();
    }
    let tree = query.get("tree").map(String::as_str);
    let post = parts.method == Method::POST;
    let get = parts.method == Method::GET;
    let response = match segs.as_slice() {
        ["api", "json"] if get => json_resp(json!({
            "_class": "hudson.model.Hudson", "mode": "NORMAL", "numExecutors": 0,
            "nodeDescription": "the Jenkins controller's built-in node", "useCrumbs": true, "useSecurity": true,
        })),
        ["crumbIssuer", "api", "json"] if get => {
            let id = session
                .clone()
                .filter(|id| s.sessions.contains_key(id))
                .unwrap_or_else(|| format!("node0{:016x}", fastrand::u64(..)));
            let crumb = s
                .sessions
                .entry(id.clone())
                .or_insert_with(|| format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)))
                .clone();
            let mut r = json_resp(json!({
                "_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": crumb, "crumbRequestField": "Jenkins-Crumb",
            }));
            if let Ok(v) =
                HeaderValue::from_str(&format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly"))
            {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        ["scriptText"] if post => {
            if !user.has(ADMINISTER) {
                return forbidden(&user, ADMINISTER);
            }
            let script = form(&body).remove("script").unwrap_or_default();
            let text = if script == SCRIPT_CONSOLE_DEMAND {
                let mut out = String::new();
                for item in &s.queue {
                    let line = json!({
                        "id": item.id,
                        "label": item.label.as_ref().map(ToString::to_string),
                        "inQueueSince": item.in_queue_since_ms,
                        "task": item.task_name(),
                    });
                    out.push_str(&format!("JCLOUD {line}\n"));
                }
                out.push_str("JCLOUD-END\n");
                out
            } else {
                "groovy.lang.MissingPropertyException: the fake controller only runs the jenkins-cloud demand script\n".into()
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
                text,
            )
                .into_response()
        }
        ["queue", "api", "json"] if get => {
            json_resp(queue_json(&s, &base, user.has(ADMINISTER), tree))
        }
        ["computer", "api", "json"] if get => json_resp(computers_json(&s, &base, tree)),
        ["computer", "doCreateItem"] if post => {
            if !user.has(AGENT_CREATE) {
                return forbidden(&user, AGENT_CREATE);
            }
            let f = form(&body);
            let name = f
                .get("name")
                .map(|n| n.trim().to_owned())
                .unwrap_or_default();
            if let Err(e) = check_good_name(&name) {
                return x_error(&e);
            }
            if s.nodes.contains_key(&name) {
                return x_error(&format!(
                    "Agent called \u{2018}{name}\u{2019} already exists"
                ));
            }
            let Some(spec) = f
                .get("json")
                .and_then(|j| serde_json::from_str::<Value>(j).ok())
            else {
                return x_error("Missing or invalid json form field");
            };
            let executors = match &spec["numExecutors"] {
                Value::String(n) => n.parse::<u32>().ok(),
                Value::Number(n) => n.as_u64().map(|n| n as u32),
                _ => None,
            };
            let Some(executors) = executors.filter(|n| *n > 0) else {
                return x_error(&format!(
                    "Invalid agent configuration for {name}. Invalid # of executors."
                ));
            };
            let node = FakeNode {
                name: name.clone(),
                description: spec["nodeDescription"].as_str().unwrap_or("").into(),
                labels: LabelSet::parse(spec["labelString"].as_str().unwrap_or("")),
                executors,
                mode: if spec["mode"] == "EXCLUSIVE" {
                    NodeMode::Exclusive
                } else {
                    NodeMode::Normal
                },
                remote_fs: spec["remoteFS"].as_str().unwrap_or("").into(),
                web_socket: spec["launcher"]["webSocket"].as_bool().unwrap_or(false),
                created_via: "form",
                ..FakeNode::new(&name, "")
            };
            s.nodes.insert(name, node);
            redirect(format!("{base}computer/"))
        }
        ["computer", "createItem"] if post => {
            let has_xml = crate::jenkins::client::JenkinsVersion::parse(&s.config.version)
                .is_some_and(|v| v.has_xml_create());
            if !has_xml {
                return page(StatusCode::NOT_FOUND, "Not Found");
            }
            if !user.has(AGENT_CREATE) {
                return forbidden(&user, AGENT_CREATE);
            }
            let name = query.get("name").cloned().unwrap_or_default();
            if name.trim().is_empty() {
                return x_error("Query parameter 'name' is required");
            }
            if s.nodes.contains_key(&name) {
                return x_error(&format!(
                    "Agent called \u{2018}{name}\u{2019} already exists"
                ));
            }
            let xml = String::from_utf8_lossy(&body).into_owned();
            let executors = xml_tag(&xml, "numExecutors")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0);
            let Some(executors) = executors else {
                return x_error("Invalid <numExecutors> in the node XML");
            };
            let node = FakeNode {
                name: name.clone(),
                description: xml_tag(&xml, "description").unwrap_or_default(),
                labels: LabelSet::parse(&xml_tag(&xml, "label").unwrap_or_default()),
                executors,
                mode: if xml_tag(&xml, "mode").as_deref() == Some("EXCLUSIVE") {
                    NodeMode::Exclusive
                } else {
                    NodeMode::Normal
                },
                remote_fs: xml_tag(&xml, "remoteFS").unwrap_or_default(),
                web_socket: xml_tag(&xml, "webSocket").as_deref() == Some("true"),
                created_via: "xml",
                ..FakeNode::new(&name, "")
            };
            s.nodes.insert(name, node);
            StatusCode::OK.into_response()
        }
        ["computer", name, rest @ ..] => {
            let name = name.to_string();
            if !s.nodes.contains_key(&name) {
                return page(StatusCode::NOT_FOUND, "Not Found");
            }
            match (rest, post) {
                (["api", "json"], false) if get => {
                    json_resp(computer_json(&s, &base, &s.nodes[&name], tree))
                }
                (["jenkins-agent.jnlp"] | ["slave-agent.jnlp"], false) if get => {
                    if !user.has(AGENT_CONNECT) {
                        return forbidden(&user, AGENT_CONNECT);
                    }
                    let secret = s.secret_for(&name);
                    let ws = if s.nodes[&name].web_socket {
                        "<argument>-webSocket</argument>"
                    } else {
                        ""
                    };
                    let body = format!(
                        "<jnlp codebase=\"{base}computer/{name}/\" spec=\"1.0+\"><information><title>Agent for {name}</title>\
                         <vendor>Jenkins project</vendor></information><security><all-permissions/></security>\
                         <resources><j2se version=\"1.8+\"/><jar href=\"{base}jnlpJars/remoting.jar\"/></resources>\
                         <application-desc main-class=\"hudson.remoting.jnlp.Main\"><argument>{secret}</argument>\
                         <argument>{name}</argument><argument>-url</argument><argument>{base}</argument>{ws}</application-desc></jnlp>"
                    );
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "application/x-java-jnlp-file")],
                        body,
                    )
                        .into_response()
                }
                (["changeOfflineCause"], true) | (["toggleOffline"], true) => {
                    if !user.has(AGENT_DISCONNECT) {
                        return forbidden(&user, AGENT_DISCONNECT);
                    }
                    let toggle = rest == ["toggleOffline"];
                    let message = query
                        .get("offlineMessage")
                        .cloned()
                        .or_else(|| form(&body).remove("offlineMessage"));
                    let node = s.nodes.get_mut(&name).expect("checked above");
                    node.temporarily_offline = if toggle {
                        !node.temporarily_offline
                    } else {
                        true
                    };
                    node.offline_reason = if node.temporarily_offline {
                        message
                    } else {
                        None
                    };
                    let started = maintain(&mut s);
                    drop(s);
                    spawn_timers(shared, started);
                    return redirect(format!("{base}computer/{name}/"));
                }
                (["doDelete"], true) => {
                    if !user.has(AGENT_DELETE) {
                        return forbidden(&user, AGENT_DELETE);
                    }
                    s.nodes.remove(&name);
                    s.builds.retain(|b| b.node != name);
                    let started = maintain(&mut s);
                    drop(s);
                    spawn_timers(shared, started);
                    return redirect(format!("{base}computer/"));
                }
                _ => page(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        _ => page(StatusCode::NOT_FOUND, "Not Found"),
    };
    response
}

/// The unescaped text of the first `<tag>…</tag>`.
fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..start + end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_work() {
        assert_eq!(base64_decode("YWRtaW46c2VjcmV0").unwrap(), b"admin:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("!!"), None);
        assert_eq!(percent_decode("a%20b%23c"), "a b#c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(
            xml_tag("<a><b>x&amp;y</b></a>", "b").as_deref(),
            Some("x&y")
        );
    }
}
