//! [`MemoryHarness`]: the conformance harness of the memory backend.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{MemoryBackend, MemoryCloud, ID_PREFIX};
use crate::backend::{Backend, CloudId, OwnerId};
use crate::error::ErrorClass;
use crate::label::LabelSet;
use crate::template::AgentTemplate;
use crate::testkit::conformance::ConformanceHarness;

/// Runs the conformance suite against [`MemoryBackend`]s over one
/// [`MemoryCloud`]. [`settle`](ConformanceHarness::settle) sleeps in tokio time,
/// so use it under `#[tokio::test(start_paused = true)]`.
///
/// The backends it hands out are kept (one per owner), so tests can reach them
/// with [`MemoryHarness::backend_of`], and `configure` lets a test alter each
/// new backend (e.g. to break it on purpose).
pub struct MemoryHarness {
    cloud: MemoryCloud,
    backends: Mutex<BTreeMap<OwnerId, MemoryBackend>>,
    configure: Box<dyn Fn(MemoryBackend) -> MemoryBackend + Send + Sync>,
}

impl Default for MemoryHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryHarness {
    /// A harness over a fresh cloud with default backends.
    pub fn new() -> Self {
        Self::with_config(|b| b)
    }

    /// A harness whose backends are passed through `configure` when created.
    pub fn with_config(
        configure: impl Fn(MemoryBackend) -> MemoryBackend + Send + Sync + 'static,
    ) -> Self {
        Self {
            cloud: MemoryCloud::new(),
            backends: Mutex::new(BTreeMap::new()),
            configure: Box::new(configure),
        }
    }

    /// The cloud all backends share.
    pub fn cloud(&self) -> &MemoryCloud {
        &self.cloud
    }

    /// Every backend created so far, in owner order.
    pub fn backends(&self) -> Vec<MemoryBackend> {
        let backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        backends.values().cloned().collect()
    }

    /// The backend for `owner` (created on first use).
    pub fn backend_of(&self, owner: &OwnerId) -> MemoryBackend {
        let mut backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        backends
            .entry(owner.clone())
            .or_insert_with(|| {
                (self.configure)(MemoryBackend::on_cloud(self.cloud.clone(), owner.clone()))
            })
            .clone()
    }
}

#[async_trait]
impl ConformanceHarness for MemoryHarness {
    async fn backend(&self, owner: OwnerId) -> Arc<dyn Backend> {
        Arc::new(self.backend_of(&owner))
    }

    fn template(&self) -> AgentTemplate {
        let mut t = AgentTemplate::new("conformance", LabelSet::parse("linux conformance"));
        t.spec = serde_json::json!({ "start_latency_ms": 20_000 });
        t
    }

    fn invalid_template(&self) -> AgentTemplate {
        let mut t = self.template();
        t.spec = serde_json::json!({ "cpu": 256, "start_latency_ms": "soon" });
        t
    }

    /// Whether the configured backends keep a warm pool
    /// ([`MemoryBackend::with_warm_pool`]).
    fn warm_pool(&self) -> bool {
        let probe = OwnerId::new("warm-pool-probe").expect("valid owner");
        (self.configure)(MemoryBackend::on_cloud(self.cloud.clone(), probe))
            .capabilities()
            .stop_resume
    }

    fn unknown_id(&self) -> CloudId {
        CloudId(format!("{ID_PREFIX}99999999"))
    }

    async fn settle(&self) {
        let longest = {
            let backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
            backends
                .values()
                .map(MemoryBackend::max_settle_time)
                .max()
                .unwrap_or_default()
        };
        // The template's own start latency (20 s) is below every default.
        tokio::time::sleep(
            longest.max(std::time::Duration::from_secs(20)) + std::time::Duration::from_secs(1),
        )
        .await;
    }

    async fn inject_launch_failures(&self, owner: &OwnerId, count: usize) -> bool {
        self.backend_of(owner)
            .fail_next_launches(count, ErrorClass::Transient);
        true
    }
}
