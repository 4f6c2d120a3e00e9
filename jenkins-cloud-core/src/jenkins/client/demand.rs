//! Demand sources: the script console (exact labels) and `why` parsing with
//! placeholder nodes (no admin rights needed).

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::errors::{excerpt, parse_json, Endpoint};
use super::http::Body;
use super::why::{self, WhyReason};
use super::{JenkinsClient, PlaceholderTemplate};
use crate::backend::OwnerId;
use crate::jenkins::{Demand, JenkinsError, QueueItem, Requirement, UnattributedItem};
use crate::label::LabelExpr;

/// Reads demand from the controller.
///
/// Implementations return every buildable, non-pending queue item either as a
/// [`QueueItem`] with what it needs or, when that cannot be told for sure, as an
/// [`UnattributedItem`] with the reason: never a guess. Errors are those of the
/// HTTP calls; a 403 means the source lacks its permission.
#[async_trait]
pub trait DemandSource: Send + Sync + fmt::Debug {
    /// Reads the queue through `client`.
    async fn read(&self, client: &JenkinsClient) -> Result<Demand, JenkinsError>;
}

/// The Groovy script posted to `/scriptText`. It prints one `JCLOUD {json}` line
/// per buildable, non-pending item, `JCLOUD-ERROR {json}` for an item it could
/// not read, and `JCLOUD-END` last (a missing end line means the script failed).
pub const SCRIPT_CONSOLE_DEMAND: &str = r#"import groovy.json.JsonOutput
def controller = jenkins.model.Jenkins.get()
for (def item : controller.queue.items) {
  try {
    if (!(item instanceof hudson.model.Queue.BuildableItem) || item.isPending()) continue
    def label = item.assignedLabel
    println('JCLOUD ' + JsonOutput.toJson([id: item.id, label: label == null ? null : label.expression, inQueueSince: item.inQueueSince, task: item.task.fullDisplayName]))
  } catch (Throwable e) {
    println('JCLOUD-ERROR ' + JsonOutput.toJson([id: item.id, error: e.class.name]))
  }
}
println('JCLOUD-END')
"#;

/// Demand from the script console: exact label expressions. Needs Overall/Administer.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScriptConsoleDemand;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScriptLine {
    id: u64,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    in_queue_since: u64,
    #[serde(default)]
    task: String,
}

#[derive(Deserialize)]
struct ScriptError {
    id: u64,
    #[serde(default)]
    error: String,
}

/// Parses the script's output into demand.
pub(crate) fn parse_script_output(text: &str) -> Result<Demand, JenkinsError> {
    let mut demand = Demand::default();
    let mut ended = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line == "JCLOUD-END" {
            ended = true;
        } else if let Some(json) = line.strip_prefix("JCLOUD-ERROR ") {
            let e: ScriptError = parse_json(Endpoint::ScriptConsole, json)?;
            demand.unattributed.push(UnattributedItem {
                id: e.id,
                task: String::new(),
                why: format!("the script could not read the item: {}", e.error),
            });
        } else if let Some(json) = line.strip_prefix("JCLOUD ") {
            let item: ScriptLine =
                parse_json(Endpoint::ScriptConsole, json).map_err(|e| match e {
                    JenkinsError::BadResponse { message } => JenkinsError::BadResponse {
                        message: format!("script output line {}: {message}", n + 1),
                    },
                    other => other,
                })?;
            match LabelExpr::parse_optional(item.label.as_deref().unwrap_or("")) {
                Ok(label) => demand.items.push(QueueItem {
                    id: item.id,
                    task: item.task,
                    requirement: label.map_or(Requirement::AnyNode, Requirement::Label),
                    in_queue_since_ms: item.in_queue_since,
                }),
                Err(e) => demand.unattributed.push(UnattributedItem {
                    id: item.id,
                    task: item.task,
                    why: format!("label expression not understood: {e}"),
                }),
            }
        }
    }
    if !ended {
        return Err(JenkinsError::BadResponse {
            message: format!("the demand script did not finish: {}", excerpt(text)),
        });
    }
    Ok(demand)
}

#[async_trait]
impl DemandSource for ScriptConsoleDemand {
    async fn read(&self, client: &JenkinsClient) -> Result<Demand, JenkinsError> {
        let url = client.http.url(&["scriptText"], &[]);
        let reply = client
            .http
            .send(
                Endpoint::ScriptConsole,
                Method::POST,
                url,
                Body::Form(&[("script", SCRIPT_CONSOLE_DEMAND)]),
                "scriptText",
            )
            .await?;
        parse_script_output(&reply.body)
    }
}

/// The queue fields `why` mode reads (names of Pipeline tasks need the tree).
pub(crate) const QUEUE_TREE: &str = "discoverableItems[id,task[name,url]],\
items[id,why,buildable,blocked,stuck,pending,inQueueSince,task[name,url]]";

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct QueueJson {
    pub items: Vec<QueueItemJson>,
    pub discoverable_items: Vec<QueueItemJson>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct QueueItemJson {
    pub id: u64,
    pub why: Option<String>,
    pub buildable: bool,
    pub blocked: bool,
    pub pending: bool,
    pub in_queue_since: u64,
    pub task: TaskJson,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct TaskJson {
    pub name: Option<String>,
    pub url: Option<String>,
}

/// Demand from `why` messages, with one placeholder node per template so that
/// Jenkins names a label (or our placeholder) even when no agent exists.
/// Needs Overall/Read, plus Agent/Create and Agent/Delete for the placeholders.
pub struct WhyDemand {
    owner: OwnerId,
    templates: Vec<PlaceholderTemplate>,
    placeholders_ready: Mutex<bool>,
}

impl fmt::Debug for WhyDemand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhyDemand")
            .field("owner", &self.owner)
            .field("templates", &self.templates.len())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Attribution {
    Any,
    Label(String),
    Template(String),
}

impl WhyDemand {
    /// A `why` source for `owner` with these templates; `read_only` never
    /// creates the placeholders (demand is read with those that exist).
    pub fn new(owner: OwnerId, templates: Vec<PlaceholderTemplate>, read_only: bool) -> Self {
        Self {
            owner,
            templates,
            // Read-only: never create them; attribute with those that exist.
            placeholders_ready: Mutex::new(read_only),
        }
    }

    /// Attributes one item from its `why`; `Err` carries the reason it cannot be.
    fn attribute(client: &JenkinsClient, why: &str) -> Result<Requirement, String> {
        let reasons = why::parse(why);
        let single = reasons.len() == 1;
        let mut found = BTreeSet::new();
        for r in &reasons {
            match r {
                WhyReason::WaitingForExecutor | WhyReason::NodeReserved(_) => {
                    found.insert(Attribution::Any);
                }
                WhyReason::WaitingOn(x) => {
                    found.insert(match client.template_of_node(x) {
                        Some(t) => Attribution::Template(t),
                        None => Attribution::Label(x.clone()),
                    });
                }
                WhyReason::NoNodesWithLabel(l) | WhyReason::AllNodesOffline(l) => {
                    found.insert(Attribution::Label(l.clone()));
                }
                WhyReason::NodeLacksLabel { label, .. } => {
                    found.insert(Attribution::Label(label.clone()));
                }
                WhyReason::NodeOffline(n) | WhyReason::NodeNotAccepting(n) if single => {
                    match client.template_of_node(n) {
                        Some(t) => found.insert(Attribution::Template(t)),
                        None => return Err(format!("only node `{n}` fits it and it is not ours")),
                    };
                }
                WhyReason::NodeOffline(_) | WhyReason::NodeNotAccepting(_) => {}
                WhyReason::NotWaitingForNode(t) | WhyReason::Other(t) if single => {
                    return Err(format!("not waiting for a node: {t}"));
                }
                WhyReason::NotWaitingForNode(_) | WhyReason::Other(_) => {}
            }
        }
        let mut it = found.into_iter();
        match (it.next(), it.next()) {
            (Some(a), None) => Ok(match a {
                Attribution::Any => Requirement::AnyNode,
                Attribution::Template(t) => Requirement::Template(t),
                Attribution::Label(l) => Requirement::Label(
                    l.parse()
                        .map_err(|e| format!("label not understood: {e}"))?,
                ),
            }),
            (None, _) => Err("no label or node named".into()),
            (Some(_), Some(_)) => Err("the reasons name different labels or nodes".into()),
        }
    }
}

#[async_trait]
impl DemandSource for WhyDemand {
    async fn read(&self, client: &JenkinsClient) -> Result<Demand, JenkinsError> {
        {
            let mut ready = self.placeholders_ready.lock().await;
            if !*ready {
                client.ensure_placeholders().await?;
                *ready = true;
            }
        }
        let url = client
            .http
            .url(&["queue", "api", "json"], &[("tree", QUEUE_TREE)]);
        let queue: QueueJson = client.http.get_json(Endpoint::Queue, url, "queue").await?;
        Ok(demand_from_queue(client, queue))
    }
}

/// Demand from a parsed queue: buildable, non-pending, non-blocked items are
/// attributed from their `why`; `discoverableItems` stubs are reported.
pub(crate) fn demand_from_queue(client: &JenkinsClient, queue: QueueJson) -> Demand {
    let mut demand = Demand::default();
    for item in queue.items {
        if !item.buildable || item.pending || item.blocked {
            continue;
        }
        let task = item.task.name.clone().unwrap_or_default();
        let why = item.why.unwrap_or_default();
        match WhyDemand::attribute(client, &why) {
            Ok(requirement) => demand.items.push(QueueItem {
                id: item.id,
                task,
                requirement,
                in_queue_since_ms: item.in_queue_since,
            }),
            Err(reason) => demand.unattributed.push(UnattributedItem {
                id: item.id,
                task,
                why: format!("{reason} (why: {why})"),
            }),
        }
    }
    for stub in queue.discoverable_items {
        demand.unattributed.push(UnattributedItem {
            id: stub.id,
            task: stub.task.name.unwrap_or_default(),
            why: "the user may not read this item (listed in discoverableItems)".into(),
        });
    }
    demand
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> JenkinsClient {
        let mut c = crate::jenkins::client::JenkinsClientConfig::new(
            "http://127.0.0.1:1/",
            "bot",
            crate::secret::Secret::new("t0ken"),
            OwnerId::new("ci").unwrap(),
        );
        c.templates = vec![
            PlaceholderTemplate {
                name: "linux".into(),
                labels: crate::label::LabelSet::parse("linux"),
            },
            PlaceholderTemplate {
                name: "linux-small".into(),
                labels: crate::label::LabelSet::parse("linux small"),
            },
        ];
        JenkinsClient::new(c).unwrap()
    }

    #[test]
    fn the_why_fixture_is_attributed_without_guessing() {
        let queue: QueueJson = parse_json(
            Endpoint::Queue,
            include_str!("../../../tests/fixtures/jenkins/queue_why.json"),
        )
        .unwrap();
        let d = demand_from_queue(&client(), queue);
        let got: Vec<(u64, Requirement)> = d
            .items
            .iter()
            .map(|i| (i.id, i.requirement.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (12, Requirement::Template("linux-small".into())),
                (13, Requirement::Label("linux&&docker".parse().unwrap())),
                (14, Requirement::AnyNode),
                (16, Requirement::Label("gpu".parse().unwrap())),
            ]
        );
        assert_eq!(d.items[1].task, "part of pipe #4");
        assert_eq!(d.items[0].in_queue_since_ms, 1_764_000_000_002);
        let un: Vec<u64> = d.unattributed.iter().map(|u| u.id).collect();
        assert_eq!(un, vec![17, 18, 0], "{:?}", d.unattributed);
        assert!(d.unattributed[0].why.contains("build-server-1"));
        assert_eq!(d.unattributed[2].task, "secret-job");
    }

    #[test]
    fn default_depth_pipeline_tasks_have_no_name() {
        let queue: QueueJson = parse_json(
            Endpoint::Queue,
            include_str!("../../../tests/fixtures/jenkins/queue_default_depth.json"),
        )
        .unwrap();
        assert_eq!(queue.items[0].task.name, None);
        let d = demand_from_queue(&client(), queue);
        assert_eq!(d.items[0].task, "");
        assert_eq!(
            d.items[0].requirement,
            Requirement::Label("linux".parse().unwrap())
        );
    }

    #[test]
    fn script_output_is_parsed_and_checked() {
        let out = "JCLOUD {\"id\":4,\"label\":\"linux&&docker\",\"inQueueSince\":17,\"task\":\"app\"}\n\
                   JCLOUD {\"id\":5,\"label\":null,\"inQueueSince\":18,\"task\":\"part of p #1\"}\n\
                   JCLOUD {\"id\":6,\"label\":\"a&&\",\"inQueueSince\":19,\"task\":\"bad\"}\n\
                   JCLOUD-ERROR {\"id\":7,\"error\":\"java.lang.NullPointerException\"}\nJCLOUD-END\n";
        let d = parse_script_output(out).unwrap();
        assert_eq!(d.items.len(), 2);
        assert_eq!(
            d.items[0].requirement,
            Requirement::Label("linux&&docker".parse().unwrap())
        );
        assert_eq!(d.items[1].requirement, Requirement::AnyNode);
        assert_eq!(
            d.unattributed.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![6, 7]
        );
        assert!(matches!(
            parse_script_output("groovy.lang.MissingPropertyException: x"),
            Err(JenkinsError::BadResponse { .. })
        ));
        assert!(matches!(
            parse_script_output("JCLOUD {oops\nJCLOUD-END"),
            Err(JenkinsError::BadResponse { .. })
        ));
    }
}
