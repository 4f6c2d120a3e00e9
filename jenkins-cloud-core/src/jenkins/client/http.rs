//! The HTTP transport: base URL, basic auth, `Accept-Language: en`, the
//! session crumb flow, `X-Jenkins` version tracking and error mapping.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use url::Url;

use super::errors::{
    map_status, map_texts, map_transport, parse_json, redact, scrub, secret_forms, Endpoint,
    NO_VALID_CRUMB,
};
use super::JenkinsVersion;
use crate::jenkins::JenkinsError;
use crate::secret::Secret;

/// A response read in full.
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
}

#[derive(Default)]
struct State {
    version: Option<JenkinsVersion>,
    crumb: Option<(String, Secret)>,
}

/// Body of a request, kept so the request can be replayed after fetching a crumb.
pub(crate) enum Body<'a> {
    None,
    Form(&'a [(&'a str, &'a str)]),
    Xml(String),
}

pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    user: String,
    token: Secret,
    always_crumb: bool,
    max_body: usize,
    state: Mutex<State>,
    /// Every form of every secret in hand (the token, the crumb, agent
    /// secrets fetched), removed by value from every error.
    secrets: Mutex<Vec<String>>,
}

/// Most agent secrets remembered for scrubbing errors (the oldest go first).
const REMEMBERED_SECRETS: usize = 4096;

#[derive(Deserialize)]
struct CrumbJson {
    crumb: String,
    #[serde(rename = "crumbRequestField", default = "default_crumb_field")]
    field: String,
}

fn default_crumb_field() -> String {
    "Jenkins-Crumb".into()
}

impl Http {
    pub(crate) fn new(
        base: Url,
        user: String,
        token: Secret,
        always_crumb: bool,
        connect_timeout: Duration,
        request_timeout: Duration,
        max_body: usize,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .user_agent(concat!("jenkins-cloud/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let secrets = Mutex::new(secret_forms(token.expose(), Some(&user)));
        Ok(Self {
            client,
            base,
            user,
            token,
            always_crumb,
            max_body,
            state: Mutex::new(State::default()),
            secrets,
        })
    }

    /// Remembers `secret` so that it is removed from every later error.
    pub(crate) fn remember_secret(&self, secret: &str) {
        let mut known = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= REMEMBERED_SECRETS {
            // Keep the token's forms (first) and drop the oldest agent secrets.
            let keep = secret_forms(self.token.expose(), Some(&self.user)).len();
            known.drain(keep..keep + REMEMBERED_SECRETS / 4);
        }
        known.extend(secret_forms(secret, None));
    }

    /// `error` without any secret in hand, by value, and without anything
    /// that looks like one.
    pub(crate) fn scrubbed(&self, error: JenkinsError) -> JenkinsError {
        let known = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        map_texts(error, |text| redact(&scrub(text, &known)))
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// The base URL plus path segments (each percent-encoded) and query pairs.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The last `X-Jenkins` version seen.
    pub(crate) fn version(&self) -> Option<JenkinsVersion> {
        self.state.lock().expect("http state").version.clone()
    }

    fn crumb(&self) -> Option<(String, Secret)> {
        self.state.lock().expect("http state").crumb.clone()
    }

    /// Sends a request; on a 403 "no valid crumb" for a POST, fetches a crumb
    /// (keeping the `JSESSIONID` cookie) and replays it once.
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
        body: Body<'_>,
        target: &str,
    ) -> Result<Reply, JenkinsError> {
        self.send_unscrubbed(endpoint, method, url, body, target)
            .await
            .map_err(|e| self.scrubbed(e))
    }

    async fn send_unscrubbed(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
        body: Body<'_>,
        target: &str,
    ) -> Result<Reply, JenkinsError> {
        let post = method == Method::POST;
        if post && self.always_crumb && self.crumb().is_none() {
            self.fetch_crumb().await?;
        }
        let mut retried = false;
        loop {
            let mut req = self.request(method.clone(), url.clone());
            if post {
                if let Some((field, value)) = self.crumb() {
                    req = req.header(field, value.expose());
                }
            }
            req = match &body {
                Body::None => req,
                Body::Form(fields) => req.form(fields),
                Body::Xml(xml) => req
                    .header(reqwest::header::CONTENT_TYPE, "application/xml")
                    .body(xml.clone()),
            };
            let (status, x_error, location, text) = self.execute(endpoint, req).await?;
            if post && status == 403 && text.contains(NO_VALID_CRUMB) && !retried {
                retried = true;
                tracing::debug!("Jenkins asked for a crumb; fetching one for this session");
                self.fetch_crumb().await?;
                continue;
            }
            map_status(endpoint, target, status, x_error.as_deref(), &text)?;
            return Ok(Reply {
                status,
                body: text,
                location,
            });
        }
    }

    /// GET and parse JSON.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: Url,
        target: &str,
    ) -> Result<T, JenkinsError> {
        let path = url.path().to_owned();
        let reply = self
            .send(endpoint, Method::GET, url, Body::None, target)
            .await?;
        if (300..400).contains(&reply.status) {
            // A reverse proxy's http→https or login redirect: `url` is not the
            // controller's own address.
            let to = reply
                .location
                .as_deref()
                .map(|l| format!(" (to `{}`)", without_userinfo(l)))
                .unwrap_or_default();
            return Err(self.scrubbed(JenkinsError::BadResponse {
                message: format!(
                    "Jenkins answered {} to GET {path}{to}: set `jenkins.url` to the address Jenkins itself uses",
                    reply.status
                ),
            }));
        }
        parse_json(endpoint, &reply.body).map_err(|e| self.scrubbed(e))
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client
            .request(method, url)
            .basic_auth(&self.user, Some(self.token.expose()))
            .header(reqwest::header::ACCEPT_LANGUAGE, "en")
    }

    async fn execute(
        &self,
        endpoint: Endpoint,
        req: RequestBuilder,
    ) -> Result<(u16, Option<String>, Option<String>, String), JenkinsError> {
        let mut resp = req.send().await.map_err(|e| map_transport(endpoint, &e))?;
        if let Some(v) = resp
            .headers()
            .get("x-jenkins")
            .and_then(|v| v.to_str().ok())
            .and_then(JenkinsVersion::parse)
        {
            self.state.lock().expect("http state").version = Some(v);
        }
        let status = resp.status().as_u16();
        let x_error = resp
            .headers()
            .get("x-error")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let too_big = || JenkinsError::BadResponse {
            message: format!(
                "the answer from {} is larger than {} bytes (jenkins.max_response_bytes)",
                endpoint.describe(),
                self.max_body
            ),
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| map_transport(endpoint, &e))?
        {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        Ok((status, x_error, location, text))
    }

    async fn fetch_crumb(&self) -> Result<(), JenkinsError> {
        let url = self.url(&["crumbIssuer", "api", "json"], &[]);
        let req = self.request(Method::GET, url);
        let (status, x_error, _, text) = self
            .execute(Endpoint::Crumb, req)
            .await
            .map_err(|e| self.scrubbed(e))?;
        map_status(
            Endpoint::Crumb,
            "crumbIssuer",
            status,
            x_error.as_deref(),
            &text,
        )
        .map_err(|e| self.scrubbed(e))?;
        let crumb: CrumbJson = parse_json(Endpoint::Crumb, &text).map_err(|e| self.scrubbed(e))?;
        self.remember_secret(&crumb.crumb);
        self.state.lock().expect("http state").crumb =
            Some((crumb.field, Secret::new(crumb.crumb)));
        Ok(())
    }
}

/// `url` without `user:password@`, for messages (left as is when it does not parse).
pub(crate) fn without_userinfo(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => match url.split_once('@') {
            Some((head, tail)) if head.contains("://") => {
                let scheme = head.split("://").next().unwrap_or_default();
                format!("{scheme}://{tail}")
            }
            _ => url.to_owned(),
        },
    }
}
