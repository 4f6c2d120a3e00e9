//! Node operations: listing our nodes, creation (XML or form), the inbound
//! secret, draining, deletion, and the placeholder nodes of `why` mode.

use reqwest::Method;
use serde::Deserialize;

use super::errors::{excerpt, Endpoint};
use super::http::Body;
use super::{DemandMode, JenkinsClient, PlaceholderTemplate};
use crate::backend::OwnerId;
use crate::jenkins::agent_name::check_good_name;
use crate::jenkins::{JenkinsError, JenkinsNode, NodeMarker, NodeSpec};
use crate::secret::Secret;
use crate::template::NodeMode;

const COMPUTER_TREE: &str =
    "computer[displayName,description,offline,temporarilyOffline,numExecutors,\
idle,assignedLabels[name],executors[idle,currentExecutable[url]]]";
const ONE_COMPUTER_TREE: &str = "displayName,description,offline,temporarilyOffline,numExecutors,\
idle,assignedLabels[name],executors[idle,currentExecutable[url]]";

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ComputerSetJson {
    pub computer: Vec<ComputerJson>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ComputerJson {
    pub display_name: String,
    pub description: Option<String>,
    pub offline: bool,
    pub temporarily_offline: bool,
    pub num_executors: u32,
    pub assigned_labels: Vec<LabelJson>,
    pub executors: Vec<ExecutorJson>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct LabelJson {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ExecutorJson {
    pub idle: bool,
    pub current_executable: Option<ExecutableJson>,
}

impl Default for ExecutorJson {
    fn default() -> Self {
        Self {
            idle: true,
            current_executable: None,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ExecutableJson {
    pub url: String,
}

/// Most executors one node is taken to have (`numExecutors` beyond it is
/// read as this).
pub const MAX_EXECUTORS: u32 = 1024;

/// The placeholder node name of a template: `<owner>-<template>-placeholder`.
pub fn placeholder_name(owner: &OwnerId, template: &str) -> String {
    format!("{owner}-{template}-placeholder")
}

fn marker_of(c: &ComputerJson) -> Option<NodeMarker> {
    c.description.as_deref().and_then(NodeMarker::parse)
}

impl JenkinsClient {
    /// The template a node name belongs to: a placeholder of ours, or an agent
    /// named `<owner>-<template>-<suffix>` (longest template name wins).
    pub fn template_of_node(&self, node: &str) -> Option<String> {
        let rest = node.strip_prefix(self.owner.as_str())?.strip_prefix('-')?;
        let mut best: Option<&str> = None;
        for t in &self.templates {
            if let Some(suffix) = rest
                .strip_prefix(t.name.as_str())
                .and_then(|r| r.strip_prefix('-'))
            {
                if !suffix.is_empty()
                    && !suffix.contains('-')
                    && best.is_none_or(|b| b.len() < t.name.len())
                {
                    best = Some(&t.name);
                }
            }
        }
        best.map(str::to_owned)
    }

    fn is_placeholder(&self, name: &str) -> bool {
        self.templates
            .iter()
            .any(|t| placeholder_name(&self.owner, &t.name) == name)
            || name.ends_with("-placeholder")
    }

    async fn computer(&self, name: &str) -> Result<ComputerJson, JenkinsError> {
        let url = self.http.url(
            &["computer", name, "api", "json"],
            &[("tree", ONE_COMPUTER_TREE)],
        );
        self.http
            .get_json(Endpoint::Computers, url, &format!("node `{name}`"))
            .await
    }

    /// Refuses (`NotOwned`) a node whose marker does not name our owner, and
    /// placeholders (`BadRequest`), which only [`JenkinsClient::ensure_placeholders`] manages.
    async fn check_owned(&self, name: &str) -> Result<(), JenkinsError> {
        let computer = self.computer(name).await?;
        match marker_of(&computer) {
            Some(m) if m.owner == self.owner => {}
            _ => {
                return Err(JenkinsError::NotOwned {
                    name: name.to_owned(),
                })
            }
        }
        if self.is_placeholder(name) {
            return Err(JenkinsError::BadRequest {
                message: format!("node `{name}` is a jenkins-cloud placeholder; only ensure_placeholders manages it"),
            });
        }
        Ok(())
    }
}

pub(super) async fn list(client: &JenkinsClient) -> Result<Vec<JenkinsNode>, JenkinsError> {
    let url = client
        .http
        .url(&["computer", "api", "json"], &[("tree", COMPUTER_TREE)]);
    let set: ComputerSetJson = client
        .http
        .get_json(Endpoint::Computers, url, "computer list")
        .await?;
    Ok(nodes_from(client, set))
}

/// Our nodes (marker with our owner, placeholders excluded) from a computer list.
pub(crate) fn nodes_from(client: &JenkinsClient, set: ComputerSetJson) -> Vec<JenkinsNode> {
    set.computer
        .into_iter()
        .filter_map(|c| {
            let marker = marker_of(&c)?;
            if marker.owner != client.owner || client.is_placeholder(&c.display_name) {
                return None;
            }
            let busy: Vec<&ExecutorJson> = c.executors.iter().filter(|e| !e.idle).collect();
            Some(JenkinsNode {
                // Bounded where it is read: a broken or hostile answer cannot
                // overflow the planner's counts.
                executors: c.num_executors.min(MAX_EXECUTORS),
                offline: c.offline,
                temporarily_offline: c.temporarily_offline,
                busy_executors: busy.len() as u32,
                current_builds: busy
                    .iter()
                    .filter_map(|e| e.current_executable.as_ref().map(|x| x.url.clone()))
                    .collect(),
                name: c.display_name,
                marker,
            })
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// The `<slave>` document for `POST /computer/createItem`.
pub(crate) fn node_xml(spec: &NodeSpec) -> String {
    format!(
        "<?xml version='1.1' encoding='UTF-8'?>\n<slave>\n  <name>{name}</name>\n  <description>{desc}</description>\n  \
<remoteFS>{fs}</remoteFS>\n  <numExecutors>{n}</numExecutors>\n  <mode>{mode}</mode>\n  \
<retentionStrategy class=\"hudson.slaves.RetentionStrategy$Always\"/>\n  \
<launcher class=\"hudson.slaves.JNLPLauncher\">\n    <workDirSettings>\n      <disabled>false</disabled>\n      \
<internalDir>remoting</internalDir>\n      <failIfWorkDirIsMissing>false</failIfWorkDirIsMissing>\n    </workDirSettings>\n    \
<webSocket>{ws}</webSocket>\n  </launcher>\n  <label>{labels}</label>\n  <nodeProperties/>\n</slave>\n",
        name = xml_escape(&spec.name),
        desc = xml_escape(&spec.marker.to_description()),
        fs = xml_escape(&spec.remote_fs),
        n = spec.executors,
        mode = spec.mode.as_jenkins_str(),
        ws = spec.web_socket,
        labels = xml_escape(&spec.labels.to_string()),
    )
}

/// The `json` form field for `POST /computer/doCreateItem`.
pub(crate) fn node_form_json(spec: &NodeSpec) -> String {
    serde_json::json!({
        "name": spec.name,
        "nodeDescription": spec.marker.to_description(),
        "numExecutors": spec.executors.to_string(),
        "remoteFS": spec.remote_fs,
        "labelString": spec.labels.to_string(),
        "mode": spec.mode.as_jenkins_str(),
        "retentionStrategy": {"stapler-class": "hudson.slaves.RetentionStrategy$Always"},
        "nodeProperties": {"stapler-class-bag": "true"},
        "launcher": {
            "stapler-class": "hudson.slaves.JNLPLauncher",
            "webSocket": spec.web_socket,
            "workDirSettings": {"disabled": false, "workDirPath": "", "internalDir": "remoting", "failIfWorkDirIsMissing": false}
        }
    })
    .to_string()
}

pub(super) async fn create(client: &JenkinsClient, spec: &NodeSpec) -> Result<(), JenkinsError> {
    check_good_name(&spec.name).map_err(|message| JenkinsError::BadRequest {
        message: format!("refused before sending: {message}"),
    })?;
    if spec.executors == 0 {
        return Err(JenkinsError::BadRequest {
            message: format!(
                "refused before sending: node `{}` needs at least one executor",
                spec.name
            ),
        });
    }
    if spec.marker.owner != client.owner {
        return Err(JenkinsError::BadRequest {
            message: format!(
                "refused before sending: node `{}` carries another owner's marker",
                spec.name
            ),
        });
    }
    if client.http.version().is_none() {
        // Any request records `X-Jenkins`; this one is cheap.
        let url = client
            .http
            .url(&["computer", "api", "json"], &[("tree", "busyExecutors")]);
        client
            .http
            .send(
                Endpoint::Computers,
                Method::GET,
                url,
                Body::None,
                "computer list",
            )
            .await?;
    }
    let target = format!("node `{}`", spec.name);
    if client.http.version().is_some_and(|v| v.has_xml_create()) {
        let url = client
            .http
            .url(&["computer", "createItem"], &[("name", &spec.name)]);
        client
            .http
            .send(
                Endpoint::CreateNode,
                Method::POST,
                url,
                Body::Xml(node_xml(spec)),
                &target,
            )
            .await?;
    } else {
        let json = node_form_json(spec);
        let url = client.http.url(&["computer", "doCreateItem"], &[]);
        let form = [
            ("name", spec.name.as_str()),
            ("type", "hudson.slaves.DumbSlave$DescriptorImpl"),
            ("json", json.as_str()),
        ];
        client
            .http
            .send(
                Endpoint::CreateNode,
                Method::POST,
                url,
                Body::Form(&form),
                &target,
            )
            .await?;
    }
    tracing::info!(node = %spec.name, "created Jenkins node");
    Ok(())
}

/// The first `<argument>` of the JNLP file's `<application-desc>`.
pub(crate) fn secret_from_jnlp(jnlp: &str) -> Option<String> {
    let desc = &jnlp[jnlp.find("<application-desc")?..];
    let start = desc.find("<argument>")? + "<argument>".len();
    let end = desc[start..].find("</argument>")?;
    let secret = desc[start..start + end].trim();
    (!secret.is_empty() && !secret.contains('<')).then(|| secret.to_owned())
}

pub(super) async fn secret(client: &JenkinsClient, name: &str) -> Result<Secret, JenkinsError> {
    let url = client
        .http
        .url(&["computer", name, "jenkins-agent.jnlp"], &[]);
    let reply = client
        .http
        .send(
            Endpoint::AgentSecret,
            Method::GET,
            url,
            Body::None,
            &format!("node `{name}`"),
        )
        .await?;
    match secret_from_jnlp(&reply.body) {
        Some(s) => {
            client.http.remember_secret(&s);
            Ok(Secret::new(s))
        }
        None => Err(JenkinsError::BadResponse {
            message: format!(
                "no secret <argument> in the JNLP file of `{name}` (status {}): {}",
                reply.status,
                excerpt(&reply.body)
            ),
        }),
    }
}

pub(super) async fn drain(
    client: &JenkinsClient,
    name: &str,
    reason: &str,
) -> Result<(), JenkinsError> {
    client.check_owned(name).await?;
    let url = client
        .http
        .url(&["computer", name, "changeOfflineCause"], &[]);
    client
        .http
        .send(
            Endpoint::Drain,
            Method::POST,
            url,
            Body::Form(&[("offlineMessage", reason)]),
            &format!("node `{name}`"),
        )
        .await?;
    tracing::info!(node = %name, %reason, "drained Jenkins node");
    Ok(())
}

pub(super) async fn delete(client: &JenkinsClient, name: &str) -> Result<(), JenkinsError> {
    match client.check_owned(name).await {
        Err(JenkinsError::NotFound { .. }) => return Ok(()),
        other => other?,
    }
    delete_unchecked(client, name).await
}

async fn delete_unchecked(client: &JenkinsClient, name: &str) -> Result<(), JenkinsError> {
    let url = client.http.url(&["computer", name, "doDelete"], &[]);
    match client
        .http
        .send(
            Endpoint::Delete,
            Method::POST,
            url,
            Body::None,
            &format!("node `{name}`"),
        )
        .await
    {
        Ok(_) | Err(JenkinsError::NotFound { .. }) => {
            tracing::info!(node = %name, "deleted Jenkins node");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// What [`JenkinsClient::ensure_placeholders`] did, per placeholder name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaceholderReport {
    /// Placeholders created.
    pub created: Vec<String>,
    /// Placeholders recreated because their labels changed.
    pub updated: Vec<String>,
    /// Placeholders already right.
    pub unchanged: Vec<String>,
}

impl JenkinsClient {
    /// Makes sure every template has its placeholder node: `<owner>-<template>-placeholder`,
    /// EXCLUSIVE, one executor, the template's labels, never connected, with our
    /// marker. Recreates one whose labels differ. A node of that name without our
    /// marker is left alone and reported as [`JenkinsError::NotOwned`]. Stops at
    /// the first error; the placeholders handled before it stay in place.
    pub async fn ensure_placeholders(&self) -> Result<PlaceholderReport, JenkinsError> {
        let mut report = PlaceholderReport::default();
        for t in &self.templates {
            let name = placeholder_name(&self.owner, &t.name);
            let spec = self.placeholder_spec(t);
            match self.computer(&name).await {
                Err(JenkinsError::NotFound { .. }) => {
                    create(self, &spec).await?;
                    report.created.push(name);
                }
                Err(e) => return Err(e),
                Ok(c) => {
                    if marker_of(&c).is_none_or(|m| m.owner != self.owner) {
                        return Err(JenkinsError::NotOwned { name });
                    }
                    let mut have: Vec<&str> = c
                        .assigned_labels
                        .iter()
                        .map(|l| l.name.as_str())
                        .filter(|l| *l != name)
                        .collect();
                    have.sort_unstable();
                    let want: Vec<&str> = t.labels.iter().collect();
                    if have == want {
                        report.unchanged.push(name);
                    } else {
                        delete_unchecked(self, &name).await?;
                        create(self, &spec).await?;
                        report.updated.push(name);
                    }
                }
            }
        }
        Ok(report)
    }

    fn placeholder_spec(&self, t: &PlaceholderTemplate) -> NodeSpec {
        NodeSpec {
            name: placeholder_name(&self.owner, &t.name),
            marker: NodeMarker {
                owner: self.owner.clone(),
                template: t.name.clone(),
                created_at_ms: 0,
            },
            labels: t.labels.clone(),
            executors: 1,
            remote_fs: "/nonexistent/jenkins-cloud-placeholder".into(),
            mode: NodeMode::Exclusive,
            web_socket: true,
        }
    }

    /// Shows `problem` as the offline cause of the template's status node (its
    /// placeholder), creating the node if needed; `None` clears it: in `why`
    /// mode the placeholder is brought back online-able (it stays, it names
    /// the label), otherwise the status node is deleted. A template this
    /// client does not know has no status node: `Ok`.
    pub(super) async fn report_problem(
        &self,
        template: &str,
        problem: Option<&str>,
    ) -> Result<(), JenkinsError> {
        let Some(t) = self.templates.iter().find(|t| t.name == template) else {
            return Ok(());
        };
        let name = placeholder_name(&self.owner, template);
        let current = match self.computer(&name).await {
            Ok(c) if marker_of(&c).is_some_and(|m| m.owner == self.owner) => Some(c),
            Ok(_) => return Err(JenkinsError::NotOwned { name }),
            Err(JenkinsError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let why_mode = self.effective_demand_mode() == DemandMode::WhyParsing;
        let what = format!("status node `{name}`");
        match (problem, current) {
            (Some(text), current) => {
                if current.is_none() {
                    create(self, &self.placeholder_spec(t)).await?;
                }
                let url = self
                    .http
                    .url(&["computer", &name, "changeOfflineCause"], &[]);
                self.http
                    .send(
                        Endpoint::Drain,
                        Method::POST,
                        url,
                        Body::Form(&[("offlineMessage", text)]),
                        &what,
                    )
                    .await?;
                Ok(())
            }
            (None, None) => Ok(()),
            (None, Some(c)) if why_mode => {
                if c.temporarily_offline {
                    let url = self.http.url(&["computer", &name, "toggleOffline"], &[]);
                    self.http
                        .send(Endpoint::Drain, Method::POST, url, Body::None, &what)
                        .await?;
                }
                Ok(())
            }
            (None, Some(_)) => delete_unchecked(self, &name).await,
        }
    }

    /// Deletes every placeholder of this client's templates that exists and
    /// carries our marker. Returns the names deleted.
    pub async fn remove_placeholders(&self) -> Result<Vec<String>, JenkinsError> {
        let mut removed = Vec::new();
        for t in &self.templates {
            let name = placeholder_name(&self.owner, &t.name);
            match self.computer(&name).await {
                Err(JenkinsError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
                Ok(c) if marker_of(&c).is_some_and(|m| m.owner == self.owner) => {
                    delete_unchecked(self, &name).await?;
                    removed.push(name);
                }
                Ok(_) => {}
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_agents_are_listed_from_the_fixture() {
        let mut c = super::super::JenkinsClientConfig::new(
            "http://127.0.0.1:1/",
            "bot",
            Secret::new("t0ken"),
            OwnerId::new("ci").unwrap(),
        );
        c.templates = vec![super::super::PlaceholderTemplate {
            name: "linux-small".into(),
            labels: crate::label::LabelSet::parse("linux"),
        }];
        let client = JenkinsClient::new(c).unwrap();
        let set: ComputerSetJson = super::super::errors::parse_json(
            Endpoint::Computers,
            include_str!("../../../tests/fixtures/jenkins/computers.json"),
        )
        .unwrap();
        let nodes = nodes_from(&client, set);
        assert_eq!(nodes.len(), 1, "{nodes:?}");
        let n = &nodes[0];
        assert_eq!(n.name, "ci-linux-small-ab3def");
        assert_eq!((n.executors, n.busy_executors, n.offline), (2, 1, false));
        assert_eq!(n.current_builds, vec!["http://j/job/app/3/".to_string()]);
        assert_eq!(n.marker.template, "linux-small");
        assert_eq!(
            client.template_of_node("ci-linux-small-ab3def").as_deref(),
            Some("linux-small")
        );
        assert_eq!(
            client
                .template_of_node("ci-linux-small-placeholder")
                .as_deref(),
            Some("linux-small")
        );
        assert_eq!(client.template_of_node("other-linux-small-ab3def"), None);
        assert_eq!(client.template_of_node("ci-linux-small"), None);
    }

    #[test]
    fn the_secret_is_the_first_argument() {
        let jnlp = "<jnlp codebase=\"x\"><information/><application-desc main-class=\"hudson.remoting.jnlp.Main\">\
                    <argument>abc123</argument><argument>node-1</argument><argument>-url</argument></application-desc></jnlp>";
        assert_eq!(secret_from_jnlp(jnlp).as_deref(), Some("abc123"));
        for bad in [
            "",
            "<html>login</html>",
            "<application-desc></application-desc>",
            "<application-desc><argument></argument>",
        ] {
            assert_eq!(secret_from_jnlp(bad), None, "{bad}");
        }
    }

    #[test]
    fn xml_values_are_escaped() {
        let spec = NodeSpec {
            name: "a&b".into(),
            marker: NodeMarker {
                owner: OwnerId::new("ci").unwrap(),
                template: "t".into(),
                created_at_ms: 1,
            },
            labels: crate::label::LabelSet::parse("x<y"),
            executors: 2,
            remote_fs: "/home/j".into(),
            mode: NodeMode::Exclusive,
            web_socket: true,
        };
        let xml = node_xml(&spec);
        assert!(xml.contains("<name>a&amp;b</name>") && xml.contains("<label>x&lt;y</label>"));
        assert!(
            xml.contains("<mode>EXCLUSIVE</mode>")
                && xml.contains("<numExecutors>2</numExecutors>")
        );
        let json: serde_json::Value = serde_json::from_str(&node_form_json(&spec)).unwrap();
        assert_eq!(json["launcher"]["webSocket"], true);
        assert_eq!(json["numExecutors"], "2");
    }
}
