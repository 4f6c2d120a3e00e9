//! Per-template launch backoff: a template whose launches fail stops hammering
//! the cloud API. Permanent errors are surfaced once per episode.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ErrorClass;

/// Base delays per error class; each consecutive failure doubles the delay up to
/// the class's maximum. A success resets the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// First delay after a capacity error.
    pub capacity: Duration,
    /// First delay after throttling.
    pub throttled: Duration,
    /// First delay after a transient error.
    pub transient: Duration,
    /// First delay after a permanent (configuration) error.
    pub permanent: Duration,
    /// Longest delay for retryable classes.
    pub max_retryable: Duration,
    /// Longest delay after permanent errors.
    pub max_permanent: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            capacity: Duration::from_secs(30),
            throttled: Duration::from_secs(5),
            transient: Duration::from_secs(5),
            permanent: Duration::from_secs(300),
            max_retryable: Duration::from_secs(300),
            max_permanent: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    until: Instant,
}

/// Backoff state of all templates.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    policy: BackoffPolicy,
    entries: BTreeMap<String, Entry>,
}

impl Backoff {
    /// Empty state with `policy`.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            entries: BTreeMap::new(),
        }
    }

    /// Records a failed launch; returns whether this starts a new episode (the
    /// first failure since the last success), so callers can report it once.
    pub fn failed(&mut self, template: &str, class: ErrorClass, now: Instant) -> bool {
        let p = &self.policy;
        let (base, max) = match class {
            ErrorClass::Capacity => (p.capacity, p.max_retryable),
            ErrorClass::Throttled => (p.throttled, p.max_retryable),
            ErrorClass::Transient => (p.transient, p.max_retryable),
            _ => (p.permanent, p.max_permanent),
        };
        let entry = self.entries.entry(template.to_owned()).or_insert(Entry {
            failures: 0,
            until: now,
        });
        let first = entry.failures == 0;
        // Several agents of one batch fail together: count the batch once.
        if entry.until <= now || first {
            entry.failures += 1;
            let delay = base
                .saturating_mul(1 << (entry.failures - 1).min(10))
                .min(max);
            entry.until = now + delay;
        }
        first
    }

    /// Records a successful launch: the template may launch freely again.
    pub fn succeeded(&mut self, template: &str) {
        self.entries.remove(template);
    }

    /// Templates held back, with the time they may launch again.
    pub fn blocked_until(&self) -> BTreeMap<String, Instant> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.until))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn delays_double_per_episode_and_reset_on_success() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert!(b.failed("t", ErrorClass::Permanent, t0));
        assert_eq!(b.blocked_until()["t"], t0 + Duration::from_secs(300));
        assert!(
            !b.failed("t", ErrorClass::Permanent, t0),
            "same batch: counted once"
        );
        assert_eq!(b.blocked_until()["t"], t0 + Duration::from_secs(300));
        let t1 = t0 + Duration::from_secs(301);
        assert!(!b.failed("t", ErrorClass::Permanent, t1));
        assert_eq!(b.blocked_until()["t"], t1 + Duration::from_secs(600));
        b.succeeded("t");
        assert!(b.blocked_until().is_empty());
        assert!(b.failed("t", ErrorClass::Capacity, t1));
        assert_eq!(b.blocked_until()["t"], t1 + Duration::from_secs(30));
    }
}
