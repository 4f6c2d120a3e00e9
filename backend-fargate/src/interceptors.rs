//! SDK interceptors: counting calls per operation (metrics, tests) and adding
//! fixed headers (emulator account selection).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Counts SDK executions per operation name (`RunTask`, `DescribeTasks`…).
/// Retries of one execution count once. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl CallCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `operation` was called.
    pub fn get(&self, operation: &str) -> usize {
        self.counts
            .lock()
            .expect("counter lock")
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Every operation and its count.
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.counts.lock().expect("counter lock").clone()
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        self.counts.lock().expect("counter lock").clear();
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    // Not `read_before_execution`: client interceptors run that before the
    // operation's config (holding its `Metadata`) is applied.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "unknown".into());
        *self
            .counts
            .lock()
            .expect("counter lock")
            .entry(name)
            .or_default() += 1;
        Ok(())
    }
}

/// Adds a fixed header to every request (e.g. `x-moto-account-id` for moto).
#[derive(Debug, Clone)]
pub struct FixedHeader {
    name: &'static str,
    value: String,
}

impl FixedHeader {
    /// A header `name: value` on every request.
    pub fn new(name: &'static str, value: impl Into<String>) -> Self {
        Self {
            name,
            value: value.into(),
        }
    }
}

impl Intercept for FixedHeader {
    fn name(&self) -> &'static str {
        "FixedHeader"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert(self.name, self.value.clone());
        Ok(())
    }
}
