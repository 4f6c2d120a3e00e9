//! Prometheus metrics and `/healthz`, served over HTTP by [`serve`].
//!
//! The daemon updates a [`Metrics`] after every pass; scrapes render the
//! Prometheus text format. Nothing here holds names of secrets or ids beyond
//! template names, states and error classes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use jenkins_cloud_core::layer::{MetricsSnapshot, Op};
use jenkins_cloud_core::reconcile::{Agent, PassReport};

/// Counters and gauges of the daemon.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    agents: BTreeMap<(String, String), u64>,
    launches: BTreeMap<String, u64>,
    failures: BTreeMap<(String, String), u64>,
    passes_ok: u64,
    passes_failed: u64,
    cloud: Vec<MetricsSnapshot>,
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
        for a in agents {
            *m.agents
                .entry((a.template.clone(), format!("{:?}", a.state).to_lowercase()))
                .or_default() += 1;
        }
        match report {
            Some(r) => {
                m.passes_ok += 1;
                for l in &r.act.launched {
                    *m.launches.entry(l.template.clone()).or_default() += 1;
                }
                for e in &r.act.errors {
                    let key = (e.step.to_owned(), e.class.to_string());
                    *m.failures.entry(key).or_default() += 1;
                }
            }
            None => m.passes_failed += 1,
        }
        m.cloud = cloud;
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
        out.push_str("# HELP jenkins_cloud_launches_total Agents launched.\n# TYPE jenkins_cloud_launches_total counter\n");
        for (t, n) in &m.launches {
            let _ = writeln!(
                out,
                "jenkins_cloud_launches_total{{template=\"{}\"}} {n}",
                esc(t)
            );
        }
        out.push_str("# HELP jenkins_cloud_step_failures_total Failed steps by step and error class.\n# TYPE jenkins_cloud_step_failures_total counter\n");
        for ((step, class), n) in &m.failures {
            let _ = writeln!(
                out,
                "jenkins_cloud_step_failures_total{{step=\"{}\",class=\"{}\"}} {n}",
                esc(step),
                esc(class)
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
