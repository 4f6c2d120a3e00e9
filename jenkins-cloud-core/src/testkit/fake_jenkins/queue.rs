//! The fake's scheduler (`Queue.maintain`), `why` texts and JSON renderings of
//! the queue and computers.

use serde_json::{json, Value};

use super::{lock, FakeBuild, FakeItem, FakeNode, Shared, State, TaskKind};

/// Assigns buildable items, in queue order, to idle executors of connected,
/// online nodes that can take them. Returns the builds started.
pub(crate) fn maintain(s: &mut State) -> Vec<FakeBuild> {
    let mut started = Vec::new();
    let mut i = 0;
    while i < s.queue.len() {
        let item = &s.queue[i];
        let node = s
            .nodes
            .values()
            .find(|n| {
                !n.is_offline()
                    && n.can_take(item.label.as_ref())
                    && (s.builds.iter().filter(|b| b.node == n.name).count() as u32) < n.executors
            })
            .map(|n| n.name.clone());
        let Some(node) = node else {
            i += 1;
            continue;
        };
        let item = s.queue.remove(i);
        let number = match item.kind {
            TaskKind::Pipeline { run } => run,
            TaskKind::Freestyle => {
                let n = s.numbers.entry(item.job.clone()).or_insert(0);
                *n += 1;
                *n
            }
        };
        let build = FakeBuild {
            id: s.next_id(),
            queue_id: item.id,
            url: format!("job/{}/{number}/", item.job),
            job: item.job,
            number,
            node,
        };
        s.builds.push(build.clone());
        started.push(build);
    }
    started
}

/// Finishes builds after the configured duration (tokio time).
pub(crate) fn spawn_timers(shared: &Shared, builds: Vec<FakeBuild>) {
    let Some(duration) = lock(shared).config.build_duration else {
        return;
    };
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for b in builds {
        let shared = shared.clone();
        handle.spawn(async move {
            tokio::time::sleep(duration).await;
            finish(&shared, b.id);
        });
    }
}

pub(crate) fn finish(shared: &Shared, build_id: u64) -> bool {
    let started = {
        let mut s = lock(shared);
        let before = s.builds.len();
        s.builds.retain(|b| b.id != build_id);
        if s.builds.len() == before {
            return false;
        }
        maintain(&mut s)
    };
    spawn_timers(shared, started);
    true
}

fn q(s: &str) -> String {
    format!("\u{2018}{s}\u{2019}")
}

/// The `why` of a buildable item, as `Queue.BuildableItem.getCauseOfBlockage`
/// words it (English).
pub(crate) fn why(s: &State, item: &FakeItem) -> String {
    let label = if s.nodes.is_empty() {
        None
    } else {
        item.label.as_ref()
    };
    let Some(label) = label else {
        return "Waiting for next available executor".into();
    };
    let nodes: Vec<&FakeNode> = s
        .nodes
        .values()
        .filter(|n| n.can_take(Some(label)))
        .collect();
    let text = label.to_string();
    if nodes.iter().all(|n| n.is_offline()) {
        match nodes.as_slice() {
            [] => format!("There are no nodes with the label {}", q(&text)),
            [one] => format!("{} is offline", q(&one.name)),
            _ => format!("All nodes of label {} are offline", q(&text)),
        }
    } else {
        match nodes.as_slice() {
            [one] => format!("Waiting for next available executor on {}", q(&one.name)),
            _ => format!("Waiting for next available executor on {}", q(&text)),
        }
    }
}

fn task_json(base: &str, item: &FakeItem, with_tree: bool) -> Value {
    match item.kind {
        TaskKind::Freestyle => json!({
            "_class": "hudson.model.FreeStyleProject",
            "name": item.job,
            "url": format!("{base}job/{}/", item.job),
            "color": "notbuilt",
        }),
        TaskKind::Pipeline { run } if with_tree => json!({
            "_class": "org.jenkinsci.plugins.workflow.support.steps.ExecutorStepExecution$PlaceholderTask",
            "name": item.task_name(),
            "url": format!("{base}job/{}/{run}/", item.job),
        }),
        TaskKind::Pipeline { .. } => json!({
            "_class": "org.jenkinsci.plugins.workflow.support.steps.ExecutorStepExecution$PlaceholderTask",
        }),
    }
}

/// `GET /queue/api/json`: `tree` (any value naming `task[`) exports Pipeline task names.
pub(crate) fn queue_json(s: &State, base: &str, admin: bool, tree: Option<&str>) -> Value {
    let with_tree = tree.is_some_and(|t| t.contains("task["));
    let mut items = Vec::new();
    let mut stubs = Vec::new();
    for item in &s.queue {
        if item.hidden && !admin {
            stubs.push(json!({
                "_class": "hudson.model.Queue$StubItem",
                "task": {"_class": "hudson.model.Queue$StubTask", "name": item.job},
            }));
            continue;
        }
        items.push(json!({
            "_class": "hudson.model.Queue$BuildableItem",
            "actions": [{"_class": "hudson.model.CauseAction"}],
            "blocked": false,
            "buildable": true,
            "id": item.id,
            "inQueueSince": item.in_queue_since_ms,
            "params": "",
            "stuck": false,
            "task": task_json(base, item, with_tree),
            "url": format!("queue/item/{}/", item.id),
            "why": why(s, item),
            "buildableStartMilliseconds": item.in_queue_since_ms,
            "pending": false,
        }));
    }
    json!({"_class": "hudson.model.Queue", "discoverableItems": stubs, "items": items})
}

/// One computer; executor fields only with a `tree` naming `executors[`.
pub(crate) fn computer_json(s: &State, base: &str, n: &FakeNode, tree: Option<&str>) -> Value {
    let with_exec = tree.is_some_and(|t| t.contains("executors["));
    let running: Vec<&FakeBuild> = s.builds.iter().filter(|b| b.node == n.name).collect();
    // A node may claim any `numExecutors` (a broken controller's answer);
    // its list is capped at 64 idle entries beyond the running builds.
    let listed = (n.executors as usize).min(running.len() + 64);
    let executors: Vec<Value> = (0..listed)
        .map(|i| match (with_exec, running.get(i)) {
            (false, _) => json!({}),
            (true, Some(b)) => {
                json!({"idle": false, "currentExecutable": {"url": format!("{base}{}", b.url)}})
            }
            (true, None) => json!({"idle": true, "currentExecutable": null}),
        })
        .collect();
    let mut labels: Vec<Value> = n.labels.iter().map(|l| json!({"name": l})).collect();
    labels.push(json!({"name": n.name}));
    json!({
        "_class": "hudson.slaves.SlaveComputer",
        "actions": [],
        "assignedLabels": labels,
        "description": n.description,
        "displayName": n.name,
        "executors": executors,
        "icon": "symbol-computer",
        "idle": running.is_empty(),
        "jnlpAgent": true,
        "launchSupported": false,
        "manualLaunchAllowed": true,
        "numExecutors": n.executors,
        "offline": n.is_offline(),
        "offlineCause": if n.temporarily_offline { json!({"_class": "hudson.slaves.OfflineCause$UserCause"}) } else { Value::Null },
        "offlineCauseReason": n.offline_reason.clone().unwrap_or_default(),
        "oneOffExecutors": [],
        "temporarilyOffline": n.temporarily_offline,
    })
}

/// `GET /computer/api/json`: the built-in node first, then agents.
pub(crate) fn computers_json(s: &State, base: &str, tree: Option<&str>) -> Value {
    let mut computers = vec![json!({
        "_class": "hudson.model.Hudson$MasterComputer",
        "assignedLabels": [{"name": "built-in"}],
        "description": "the Jenkins controller's built-in node",
        "displayName": "Built-In Node",
        "executors": [],
        "idle": true,
        "numExecutors": 0,
        "offline": false,
        "temporarilyOffline": false,
    })];
    computers.extend(s.nodes.values().map(|n| computer_json(s, base, n, tree)));
    let busy = s.builds.len();
    let total: u32 = s
        .nodes
        .values()
        .filter(|n| !n.is_offline())
        .map(|n| n.executors)
        .sum();
    json!({
        "_class": "hudson.model.ComputerSet",
        "busyExecutors": busy,
        "computer": computers,
        "displayName": "Nodes",
        "totalExecutors": total,
    })
}
