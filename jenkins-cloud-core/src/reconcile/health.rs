//! Template and cloud health: failures after launch count against a
//! template's backoff, a cloud that cannot be read freezes only its own
//! templates, and each change is told once (log, Jenkins, reports).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::backoff::Hold;
use super::Reconciler;
use crate::backend::CloudState;
use crate::error::ErrorClass;
use crate::lifecycle::AgentState;
use crate::template::AgentTemplate;

/// One template's health, as of the last pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateHealth {
    /// Template name.
    pub template: String,
    /// No launch-failure episode and its cloud was read.
    pub healthy: bool,
    /// Failed launches in the current episode (0 when healthy).
    pub failures: u32,
    /// Class of the last failure.
    pub class: Option<ErrorClass>,
    /// The last failure's reason (the cloud's words, or ours for timeouts).
    pub reason: Option<String>,
    /// Seconds until the template may launch again (`None`: not backing off;
    /// 0 with failures: probing, one agent at a time).
    pub backoff_remaining_s: Option<u64>,
    /// Why its cloud could not be read this pass, if it could not.
    pub cloud_unreadable: Option<String>,
}

/// Whether one backend's resources could be listed in the last pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudRead {
    /// The backend's kind ([`crate::backend::Backend::kind`]).
    pub backend: String,
    /// The templates it runs, in configuration order.
    pub templates: Vec<String>,
    /// The error of the last read; `None` when it succeeded (or none was made yet).
    pub error: Option<String>,
}

impl CloudRead {
    /// Whether the last read succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The text shown in Jenkins for a template in a failure episode: the
/// problem itself, and the countdown shown after it (left out when comparing
/// with what was shown, so a waiting template is not rewritten every pass).
fn problem_text(template: &str, hold: &Hold, now: Instant) -> (String, String) {
    let problem = format!(
        "jenkins-cloud: agents of template `{template}` fail to start: {} ({}; {} failed launch{}",
        hold.reason,
        hold.class,
        hold.failures,
        if hold.failures == 1 { "" } else { "es" },
    );
    let countdown = format!(
        "; next attempt after {})",
        human(hold.until.saturating_duration_since(now))
    );
    (problem, countdown)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

impl Reconciler {
    /// Each template's health as of the last pass, in configuration order.
    pub fn health(&self) -> Vec<TemplateHealth> {
        let holds = self.backoff.holds();
        let now = Instant::now();
        self.templates
            .iter()
            .map(|t| {
                let hold = holds.get(&t.name);
                let frozen = self.frozen.get(&t.name).cloned();
                TemplateHealth {
                    template: t.name.clone(),
                    healthy: hold.is_none() && frozen.is_none(),
                    failures: hold.map_or(0, |h| h.failures),
                    class: hold.map(|h| h.class),
                    reason: hold.map(|h| h.reason.clone()),
                    backoff_remaining_s: hold
                        .map(|h| h.until.saturating_duration_since(now).as_secs()),
                    cloud_unreadable: frozen,
                }
            })
            .collect()
    }

    /// Per backend, whether the last pass could list its resources.
    pub fn cloud_reads(&self) -> Vec<CloudRead> {
        self.backends
            .iter()
            .enumerate()
            .map(|(i, b)| CloudRead {
                backend: b.kind().to_owned(),
                templates: self
                    .templates
                    .iter()
                    .filter(|t| self.template_backend.get(&t.name) == Some(&i))
                    .map(|t| t.name.clone())
                    .collect(),
                error: self.cloud_errors[i].clone(),
            })
            .collect()
    }

    /// Failed launches per template and class since start (for metrics).
    pub fn failure_totals(&self) -> &BTreeMap<(String, ErrorClass), u64> {
        self.backoff.failure_totals()
    }

    /// Records the outcome of one backend's read, logging changes only.
    pub(super) fn note_cloud_read(&mut self, index: usize, error: Option<String>) {
        if self.cloud_errors[index] != error {
            let backend = self.backends[index].kind();
            match &error {
                Some(e) => tracing::warn!(
                    backend,
                    error = %e,
                    "cloud cannot be read: its templates are frozen (no launch, no retirement); the others go on"
                ),
                None => tracing::info!(backend, "cloud can be read again"),
            }
        }
        self.cloud_errors[index] = error;
    }

    /// After an observation: agents that timed out become `Failed`; agents
    /// that failed before running a build count as failed launches of their
    /// template; a template whose agent connected for the first time is
    /// healthy again. `unconnected` are the agents that had never connected
    /// before this observation.
    pub(super) fn account_failures(&mut self, unconnected: &BTreeSet<String>, now: Instant) {
        let mut recovered = BTreeSet::new();
        let mut failures = Vec::new();
        let templates: BTreeMap<&str, &AgentTemplate> = self
            .templates
            .iter()
            .map(|t| (t.name.as_str(), t.as_ref()))
            .collect();
        for agent in self.agents.values_mut() {
            if self.frozen.contains_key(&agent.template) {
                continue;
            }
            if agent.ever_connected && unconnected.contains(&agent.name) {
                recovered.insert(agent.template.clone());
            }
            let Some(template) = templates.get(agent.template.as_str()) else {
                continue;
            };
            let timed_out = match agent.state {
                AgentState::Launching
                    if now.duration_since(agent.launched_at) >= template.launch_timeout =>
                {
                    Some(format!(
                        "launch timed out after {}s",
                        template.launch_timeout.as_secs()
                    ))
                }
                AgentState::Starting
                    if now.duration_since(agent.state_since) >= template.connect_timeout =>
                {
                    Some(format!(
                        "agent did not connect within {}s of starting",
                        template.connect_timeout.as_secs()
                    ))
                }
                _ => None,
            };
            let timed_out = timed_out.is_some_and(|reason| {
                agent.set_state(AgentState::Failed(reason), now);
                true
            });
            if agent.failure_counted || agent.builds_started() > 0 {
                continue;
            }
            let AgentState::Failed(reason) = &agent.state else {
                continue;
            };
            let class = match &agent.cloud_state {
                Some(CloudState::Failed(cloud_reason)) => {
                    let backend = self.template_backend.get(&agent.template);
                    Some(backend.map_or(ErrorClass::Transient, |&i| {
                        self.backends[i].classify_failure(cloud_reason)
                    }))
                }
                _ if agent.ever_connected => None,
                _ if timed_out || reason.starts_with("cloud resource stopped before") => {
                    Some(ErrorClass::Transient)
                }
                // Orphans and nodes deleted by hand are no fault of the template.
                _ => None,
            };
            if let Some(class) = class {
                agent.failure_counted = true;
                failures.push((agent.template.clone(), class, reason.clone()));
            }
        }
        for template in recovered {
            if self.backoff.succeeded(&template) {
                tracing::info!(template = %template, "template healthy again: an agent connected");
            }
        }
        for (template, class, reason) in failures {
            self.launch_failed(&template, class, &reason, now);
        }
    }

    /// Counts one failed launch of `template`; logs when what is shown changes.
    pub(super) fn launch_failed(
        &mut self,
        template: &str,
        class: ErrorClass,
        reason: &str,
        now: Instant,
    ) {
        let (_, changed) = self.backoff.record(template, class, reason, now);
        if changed {
            let hold = &self.backoff.holds()[template];
            tracing::warn!(
                template,
                class = %class,
                reason,
                failures = hold.failures,
                retry_in_s = hold.until.saturating_duration_since(now).as_secs(),
                "template failing: its launches back off"
            );
        }
    }

    /// Shows each template's problem in Jenkins (or clears it) when it changed
    /// since it was last shown; a failed call is retried at the next pass.
    pub(super) async fn report_problems(&mut self) {
        let holds = self.backoff.holds();
        let now = Instant::now();
        for t in &self.templates {
            let wanted = match (self.frozen.get(&t.name), holds.get(&t.name)) {
                (Some(why), _) => Some((
                    format!(
                        "jenkins-cloud: the cloud of template `{}` cannot be read: {why}",
                        t.name
                    ),
                    String::new(),
                )),
                (None, Some(hold)) => Some(problem_text(&t.name, hold, now)),
                (None, None) => None,
            };
            let key = wanted.as_ref().map(|(problem, _)| problem.clone());
            if self.reported.get(&t.name) == Some(&key) {
                continue;
            }
            let shown = wanted.map(|(problem, countdown)| problem + &countdown);
            match self
                .jenkins
                .report_template_problem(&t.name, shown.as_deref())
                .await
            {
                Ok(()) => {
                    self.reported.insert(t.name.clone(), key);
                }
                Err(e) => {
                    tracing::warn!(template = %t.name, error = %e, "could not show the template's status in Jenkins");
                }
            }
        }
    }
}
