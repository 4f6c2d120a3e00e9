//! Prometheus metrics and `/healthz`, served over HTTP by [`serve`].
//!
//! The daemon updates a [`Metrics`] after every pass; scrapes render the
//! Prometheus text format. Nothing here holds names of secrets or ids beyond
//! template names, states and error classes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use jenkins_cloud_core::layer::{MetricsSnapshot, Op};
use jenkins_cloud_core::reconcile::{Agent, PassReport, TemplateHealth};
use jenkins_cloud_core::ErrorClass;

/// Counters and gauges of the daemon.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    agents: BTreeMap<(String, String), u64>,
    warm_pool: BTreeMap<String, usize>,
    launches: BTreeMap<String, u64>,
    failures: BTreeMap<(String, String), u64>,
    passes_ok: u64,
    passes_failed: u64,
    cloud: Vec<MetricsSnapshot>,
    /// Agents launched by this process and not yet seen online.
    launched_here: BTreeSet<String>,
    /// Launch → online, per template.
    online_latency: BTreeMap<String, Histogram>,
    /// Queue entry of the oldest build served → online, per template.
    provisioning_latency: BTreeMap<String, Histogram>,
    /// Failed launches (refused, or died or timed out before a build), by template and class.
    launch_failures: BTreeMap<(String, String), u64>,
    /// Per template: (healthy, seconds of backoff left).
    health: BTreeMap<String, (bool, u64)>,
    /// Per cloud name: whether its last read succeeded.
    cloud_read_ok: BTreeMap<String, bool>,
}

/// Upper bounds (seconds) of the launch → online histogram buckets.
pub const LATENCY_BUCKETS: [f64; 11] = [
    5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`].
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

fn render_histogram(
    out: &mut String,
    name: &str,
    help: &str,
    by_template: &BTreeMap<String, Histogram>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (t, h) in by_template {
        let t = esc(t);
        for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
            let _ = writeln!(out, "{name}_bucket{{template=\"{t}\",le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{template=\"{t}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "{name}_sum{{template=\"{t}\"}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{template=\"{t}\"}} {}", h.count);
    }
}

impl Metrics {
    /// Records one pass: agents by template and state, launches and failures.
    pub fn record_pass<'a>(
        &self,
        report: Option<&PassReport>,
        agents: impl Iterator<Item = &'a Agent>,
        cloud: Vec<MetricsSnapshot>,
    ) {
        let mut m = self.inner.lock().expect("metrics lock");
        m.agents.clear();
        let mut alive = BTreeSet::new();
        for a in agents {
            *m.agents
                .entry((a.template.clone(), a.state.as_str().to_owned()))
                .or_default() += 1;
            alive.insert(a.name.clone());
            if a.ever_connected && m.launched_here.remove(&a.name) {
                // `state_since` is when the agent was first seen connected.
                let latency = a.state_since.saturating_duration_since(a.launched_at);
                m.online_latency
                    .entry(a.template.clone())
                    .or_default()
                    .observe(latency.as_secs_f64());
                if let Some(queued) = a.queued_since {
                    let waited = a.state_since.saturating_duration_since(queued);
                    m.provisioning_latency
                        .entry(a.template.clone())
                        .or_default()
                        .observe(waited.as_secs_f64());
                }
            }
        }
        match report {
            Some(r) => {
                m.passes_ok += 1;
                for l in &r.act.launched {
                    *m.launches.entry(l.template.clone()).or_default() += 1;
                    m.launched_here.insert(l.agent.clone());
                }
                for e in &r.act.errors {
                    let key = (e.step.to_owned(), e.class.to_string());
                    *m.failures.entry(key).or_default() += 1;
                }
            }
            None => m.passes_failed += 1,
        }
        if report.is_some() {
            // Agents gone before connecting never count.
            m.launched_here.retain(|n| alive.contains(n));
        }
        m.cloud = cloud;
    }

    /// Records the warm-pool members (stopped instances kept for reuse) per
    /// template, as the last pass observed them; a template whose pool emptied
    /// reads 0 (the series does not vanish).
    pub fn record_warm_pool(&self, warm_pool: &BTreeMap<String, usize>) {
        let mut m = self.inner.lock().expect("metrics lock");
        for n in m.warm_pool.values_mut() {
            *n = 0;
        }
        for (t, n) in warm_pool {
            m.warm_pool.insert(t.clone(), *n);
        }
    }

    /// Records each template's health, the failed launches so far, and per
    /// cloud whether its last read succeeded.
    pub fn record_health(
        &self,
        health: &[TemplateHealth],
        failures: &BTreeMap<(String, ErrorClass), u64>,
        clouds: &[(String, bool)],
    ) {
        let mut m = self.inner.lock().expect("metrics lock");
        m.health = health
            .iter()
            .map(|h| {
                let left = if h.cloud_unreadable.is_some() {
                    0
                } else {
                    h.backoff_remaining_s.unwrap_or(0)
                };
                (h.template.clone(), (h.healthy, left))
            })
            .collect();
        m.launch_failures = failures
            .iter()
            .map(|((t, c), n)| ((t.clone(), c.to_string()), *n))
            .collect();
        for (cloud, ok) in clouds {
            m.cloud_read_ok.insert(cloud.clone(), *ok);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let m = self.inner.lock().expect("metrics lock");
        let mut out = String::new();
        out.push_str("# HELP jenkins_cloud_agents Agents by template and state.\n# TYPE jenkins_cloud_agents gauge\n");
        for ((t, s), n) in &m.agents {
            let _ = writeln!(
                out,
                "jenkins_cloud_agents{{template=\"{}\",state=\"{}\"}} {n}",
                esc(t),
                esc(s)
            );
        }
        out.push_str("# HELP jenkins_cloud_warm_pool_instances Stopped instances kept for reuse (EC2 warm pool), by template.\n# TYPE jenkins_cloud_warm_pool_instances gauge\n");
        for (t, n) in &m.warm_pool {
            let _ = writeln!(
                out,
                "jenkins_cloud_warm_pool_instances{{template=\"{}\"}} {n}",
                esc(t)
            );
        }
        out.push_str("# HELP jenkins_cloud_launches_total Agents launched.\n# TYPE jenkins_cloud_launches_total counter\n");
        for (t, n) in &m.launches {
            let _ = writeln!(
                out,
                "jenkins_cloud_launches_total{{template=\"{}\"}} {n}",
                esc(t)
            );
        }
        render_histogram(
            &mut out,
            "jenkins_cloud_agent_launch_to_online_seconds",
            "Time from launch to the agent first connected, per template (agents launched by this process).",
            &m.online_latency,
        );
        render_histogram(
            &mut out,
            "jenkins_cloud_provisioning_latency_seconds",
            "Time from the queue entry of the oldest build an agent was launched for to the agent online, per template.",
            &m.provisioning_latency,
        );
        out.push_str("# HELP jenkins_cloud_step_failures_total Failed steps by step and error class.\n# TYPE jenkins_cloud_step_failures_total counter\n");
        for ((step, class), n) in &m.failures {
            let _ = writeln!(
                out,
                "jenkins_cloud_step_failures_total{{step=\"{}\",class=\"{}\"}} {n}",
                esc(step),
                esc(class)
            );
        }
        out.push_str("# HELP jenkins_cloud_template_launch_failures_total Failed launches (refused, or died or timed out before running a build) by template and error class.\n# TYPE jenkins_cloud_template_launch_failures_total counter\n");
        for ((t, class), n) in &m.launch_failures {
            let _ = writeln!(
                out,
                "jenkins_cloud_template_launch_failures_total{{template=\"{}\",class=\"{}\"}} {n}",
                esc(t),
                esc(class)
            );
        }
        out.push_str("# HELP jenkins_cloud_template_healthy Whether a template launches normally (1) or is failing or frozen (0).\n# TYPE jenkins_cloud_template_healthy gauge\n");
        for (t, (healthy, _)) in &m.health {
            let _ = writeln!(
                out,
                "jenkins_cloud_template_healthy{{template=\"{}\"}} {}",
                esc(t),
                u8::from(*healthy)
            );
        }
        out.push_str("# HELP jenkins_cloud_template_backoff_seconds Seconds until a failing template may launch again.\n# TYPE jenkins_cloud_template_backoff_seconds gauge\n");
        for (t, (_, left)) in &m.health {
            let _ = writeln!(
                out,
                "jenkins_cloud_template_backoff_seconds{{template=\"{}\"}} {left}",
                esc(t)
            );
        }
        out.push_str("# HELP jenkins_cloud_cloud_read_ok Whether the last read of a cloud's resources succeeded (0: its templates are frozen).\n# TYPE jenkins_cloud_cloud_read_ok gauge\n");
        for (c, ok) in &m.cloud_read_ok {
            let _ = writeln!(
                out,
                "jenkins_cloud_cloud_read_ok{{cloud=\"{}\"}} {}",
                esc(c),
                u8::from(*ok)
            );
        }
        out.push_str("# HELP jenkins_cloud_passes_total Reconcile passes by outcome.\n# TYPE jenkins_cloud_passes_total counter\n");
        let _ = writeln!(
            out,
            "jenkins_cloud_passes_total{{outcome=\"ok\"}} {}",
            m.passes_ok
        );
        let _ = writeln!(
            out,
            "jenkins_cloud_passes_total{{outcome=\"observe_failed\"}} {}",
            m.passes_failed
        );
        out.push_str("# HELP jenkins_cloud_cloud_calls_total Backend calls by backend, operation and outcome.\n# TYPE jenkins_cloud_cloud_calls_total counter\n");
        for snap in &m.cloud {
            for op in Op::ALL {
                let o = snap.op(op);
                let b = esc(&snap.backend);
                let name = op.as_str();
                let _ = writeln!(out, "jenkins_cloud_cloud_calls_total{{backend=\"{b}\",operation=\"{name}\",outcome=\"ok\"}} {}", o.ok);
                for (class, n) in &o.errors {
                    let _ = writeln!(out, "jenkins_cloud_cloud_calls_total{{backend=\"{b}\",operation=\"{name}\",outcome=\"{class}\"}} {n}");
                }
            }
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `/metrics` and `/healthz` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let m = Arc::clone(&metrics);
                async move { m.render() }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics listening");
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jenkins_cloud_core::backend::CloudId;
    use jenkins_cloud_core::lifecycle::AgentState;
    use jenkins_cloud_core::reconcile::{ActReport, Agent, Launched, PassReport, Plan};
    use tokio::time::Instant;

    use super::Metrics;

    fn report(launched: &[&str]) -> PassReport {
        PassReport {
            plan: Plan::default(),
            act: ActReport {
                launched: launched
                    .iter()
                    .map(|a| Launched {
                        agent: (*a).to_owned(),
                        template: "linux".into(),
                        cloud_id: CloudId("i-1".into()),
                        serves: vec![7],
                    })
                    .collect(),
                ..ActReport::default()
            },
        }
    }

    #[test]
    fn warm_pool_members_are_a_gauge_per_template() {
        let m = Metrics::default();
        assert!(!m.render().contains("jenkins_cloud_warm_pool_instances{"));
        let pool = [("docker".to_owned(), 3), ("gpu".to_owned(), 1)]
            .into_iter()
            .collect();
        m.record_warm_pool(&pool);
        let text = m.render();
        assert!(text.contains("# TYPE jenkins_cloud_warm_pool_instances gauge"));
        assert!(
            text.contains("jenkins_cloud_warm_pool_instances{template=\"docker\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("jenkins_cloud_warm_pool_instances{template=\"gpu\"} 1"),
            "{text}"
        );
        // The gpu pool empties: its series reads 0 instead of vanishing.
        m.record_warm_pool(&[("docker".to_owned(), 2)].into_iter().collect());
        let text = m.render();
        assert!(
            text.contains("jenkins_cloud_warm_pool_instances{template=\"docker\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("jenkins_cloud_warm_pool_instances{template=\"gpu\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn launch_to_online_is_observed_once_for_agents_launched_here() {
        let m = Metrics::default();
        let t0 = Instant::now();
        let mut a = Agent::requested("ci-linux-1".into(), "linux".into(), 1, t0);
        a.queued_since = Some(t0 - Duration::from_secs(8));
        m.record_pass(
            Some(&report(&["ci-linux-1"])),
            std::iter::once(&a),
            Vec::new(),
        );
        assert!(!m.render().contains("launch_to_online_seconds_count"));
        a.ever_connected = true;
        a.state = AgentState::Idle;
        a.state_since = t0 + Duration::from_secs(42);
        m.record_pass(Some(&report(&[])), std::iter::once(&a), Vec::new());
        m.record_pass(Some(&report(&[])), std::iter::once(&a), Vec::new());
        let text = m.render();
        assert!(
            text.contains(
                "jenkins_cloud_agent_launch_to_online_seconds_count{template=\"linux\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("jenkins_cloud_agent_launch_to_online_seconds_bucket{template=\"linux\",le=\"30\"} 0"), "{text}");
        assert!(text.contains("jenkins_cloud_agent_launch_to_online_seconds_bucket{template=\"linux\",le=\"45\"} 1"), "{text}");
        assert!(
            text.contains(
                "jenkins_cloud_agent_launch_to_online_seconds_sum{template=\"linux\"} 42"
            ),
            "{text}"
        );

        assert!(
            text.contains("jenkins_cloud_provisioning_latency_seconds_sum{template=\"linux\"} 50"),
            "queue entry 8 s before the launch, online 42 s after: {text}"
        );
        assert!(text.contains(
            "jenkins_cloud_provisioning_latency_seconds_bucket{template=\"linux\",le=\"45\"} 0"
        ));
        assert!(text.contains(
            "jenkins_cloud_provisioning_latency_seconds_bucket{template=\"linux\",le=\"60\"} 1"
        ));

        // An adopted agent (not launched by this process) is not observed.
        let mut b = Agent::requested("ci-linux-2".into(), "linux".into(), 1, t0);
        b.ever_connected = true;
        m.record_pass(Some(&report(&[])), std::iter::once(&b), Vec::new());
        assert!(m
            .render()
            .contains("launch_to_online_seconds_count{template=\"linux\"} 1"));
    }
}
