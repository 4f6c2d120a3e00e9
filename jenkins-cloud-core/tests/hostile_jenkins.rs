//! A hostile or broken Jenkins on loopback: endless bodies, redirects, pages
//! that reflect the token in any form. The client stays bounded and never
//! prints a secret.

use std::time::Duration;

use jenkins_cloud_core::backend::OwnerId;
use jenkins_cloud_core::jenkins::client::{JenkinsClient, JenkinsClientConfig};
use jenkins_cloud_core::jenkins::{JenkinsApi, JenkinsError};
use jenkins_cloud_core::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Not hex, not shaped like a secret: only removal by value catches it.
const TOKEN: &str = "correct-horse-battery-staple";

/// Serves every connection with `respond(request text)`'s bytes; an endless
/// body is written while the client reads.
async fn serve(respond: fn(&str) -> Response) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                match respond(&request) {
                    Response::Fixed(bytes) => {
                        let _ = sock.write_all(&bytes).await;
                    }
                    Response::Endless => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "[".repeat(64 * 1024));
                        // Bounded: at most 1 GiB, far beyond any limit.
                        for _ in 0..16 * 1024 {
                            if sock.write_all(chunk.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}/")
}

enum Response {
    Fixed(Vec<u8>),
    Endless,
}

fn reply(status: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.push_str(body);
    Response::Fixed(out.into_bytes())
}

fn client(url: &str, max_body: usize) -> JenkinsClient {
    let mut c =
        JenkinsClientConfig::new(url, "bot", Secret::new(TOKEN), OwnerId::new("ci").unwrap());
    c.request_timeout = Duration::from_secs(20);
    c.max_response_bytes = max_body;
    JenkinsClient::new(c).unwrap()
}

fn base64_basic() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("bot:{TOKEN}"))
}

#[tokio::test]
async fn an_endless_body_fails_at_the_limit_instead_of_filling_memory() {
    let url = serve(|_| Response::Endless).await;
    let err = client(&url, 1 << 20).nodes().await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, JenkinsError::BadResponse { .. })
            && text.contains("larger than 1048576 bytes"),
        "{text}"
    );
    assert!(
        text.contains("max_response_bytes"),
        "names the setting: {text}"
    );
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_read() {
    let url = serve(|_| {
        Response::Fixed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n{".to_vec(),
        )
    })
    .await;
    let err = client(&url, 1 << 20).nodes().await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn a_redirect_is_named_as_such_not_as_broken_json() {
    let url = serve(|_| {
        reply(
            "302 Found",
            &[(
                "Location",
                "https://user:pw@sso.example/login?from=%2Fcomputer",
            )],
            "",
        )
    })
    .await;
    let err = client(&url, 1 << 20).nodes().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Jenkins answered 302 to GET /computer/api/json"),
        "{text}"
    );
    assert!(text.contains("sso.example/login"), "says where to: {text}");
    assert!(!text.contains("EOF"), "{text}");
    assert!(!text.contains("pw@"), "no userinfo of the Location: {text}");
}

#[tokio::test]
async fn the_token_is_removed_by_value_from_every_error_whatever_its_form() {
    // Error bodies, X-Error headers and JSON type errors that reflect the
    // token raw, percent-encoded and inside the basic-auth header value.
    let url = serve(|request| {
        let auth = request
            .lines()
            .find_map(|l| l.strip_prefix("authorization: Basic "))
            .unwrap_or("")
            .trim()
            .to_owned();
        if request.starts_with("GET /computer/api/json") {
            let body = format!(
                "<html><body>Oops for {TOKEN} / correct-horse-battery-staple%21 / Basic {auth}</body></html>"
            );
            reply("500 Server Error", &[], Box::leak(body.into_boxed_str()))
        } else if request.starts_with("GET /queue") {
            let body = format!("{{\"items\": \"{TOKEN}\"}}");
            reply("200 OK", &[("Content-Type", "application/json")], Box::leak(body.into_boxed_str()))
        } else {
            let header = format!("no such node, token {TOKEN}");
            reply("400 Bad Request", &[("X-Error", Box::leak(header.into_boxed_str()))], "")
        }
    })
    .await;
    let mut c =
        JenkinsClientConfig::new(&url, "bot", Secret::new(TOKEN), OwnerId::new("ci").unwrap());
    c.demand_mode = jenkins_cloud_core::jenkins::client::DemandMode::WhyParsing;
    c.read_only = true;
    let client = JenkinsClient::new(c).unwrap();
    let mut texts = Vec::new();
    texts.push(client.nodes().await.unwrap_err().to_string());
    texts.push(client.demand().await.unwrap_err().to_string());
    texts.push(client.agent_secret("x").await.unwrap_err().to_string());
    let basic = base64_basic();
    for text in &texts {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(!text.contains("correct-horse"), "token leaked: {text}");
        assert!(!text.contains(&basic), "basic-auth value leaked: {text}");
    }
    assert!(texts[0].contains("Oops for ***"), "{}", texts[0]);
    assert!(texts[1].contains("invalid JSON"), "{}", texts[1]);
    assert!(texts[2].contains("no such node, token ***"), "{}", texts[2]);
}

#[test]
fn a_url_with_credentials_is_refused_without_echoing_them() {
    for url in [
        "http://bot:s3cretpw@jenkins.example/",
        "https://bot:s3cretpw@jenkins.example/",
    ] {
        let c =
            JenkinsClientConfig::new(url, "bot", Secret::new(TOKEN), OwnerId::new("ci").unwrap());
        let err = JenkinsClient::new(c).unwrap_err().to_string();
        assert!(err.contains("credentials in the URL"), "{err}");
        assert!(!err.contains("s3cretpw"), "{err}");
    }
}

#[tokio::test]
async fn a_read_only_client_writes_nothing() {
    let url = serve(|_| reply("500 Server Error", &[], "should not be called")).await;
    let mut c =
        JenkinsClientConfig::new(&url, "bot", Secret::new(TOKEN), OwnerId::new("ci").unwrap());
    c.read_only = true;
    let client = JenkinsClient::new(c).unwrap();
    let err = client.delete_node("x").await.unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = client.drain_node("x", "why").await.unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    client
        .report_template_problem("linux", Some("broken"))
        .await
        .expect("a read-only client shows nothing and says so quietly");
}
