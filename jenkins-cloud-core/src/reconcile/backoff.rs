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
    class: ErrorClass,
    reason: String,
}

/// Why a template is held back, as [`Backoff::holds`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The template may launch again from this time on; until one of its
    /// agents connects it launches one probe agent at a time.
    pub until: Instant,
    /// Failed launches in this episode (a batch that fails together counts once).
    pub failures: u32,
    /// The class of the last failure.
    pub class: ErrorClass,
    /// The last failure's reason (the cloud's words, or ours for timeouts).
    pub reason: String,
}

/// Backoff state of all templates.
///
/// An episode starts with a template's first failed launch (refused by the
/// cloud, or a resource that died or never connected before its agent ran a
/// build) and ends when one of its agents connects ([`Backoff::succeeded`]).
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    policy: BackoffPolicy,
    entries: BTreeMap<String, Entry>,
    totals: BTreeMap<(String, ErrorClass), u64>,
}

impl Backoff {
    /// Empty state with `policy`.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            entries: BTreeMap::new(),
            totals: BTreeMap::new(),
        }
    }

    /// Records a failed launch; returns whether this starts a new episode (the
    /// first failure since the last success), so callers can report it once.
    pub fn failed(&mut self, template: &str, class: ErrorClass, now: Instant) -> bool {
        self.record(template, class, "", now).0
    }

    /// Records a failed launch with its reason. Returns `(new_episode,
    /// changed)`: whether this is the episode's first failure, and whether the
    /// visible status (class or reason) changed, so that callers report each
    /// change once rather than once per failure.
    pub fn record(
        &mut self,
        template: &str,
        class: ErrorClass,
        reason: &str,
        now: Instant,
    ) -> (bool, bool) {
        *self.totals.entry((template.to_owned(), class)).or_default() += 1;
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
            class,
            reason: String::new(),
        });
        let first = entry.failures == 0;
        // Several agents of one batch fail together: count the batch once.
        if entry.until <= now || first {
            entry.failures = entry.failures.saturating_add(1);
            let delay = base
                .saturating_mul(1 << (entry.failures - 1).min(10))
                .min(max);
            entry.until = now + delay;
        }
        let changed =
            first || entry.class != class || (!reason.is_empty() && entry.reason != reason);
        entry.class = class;
        if !reason.is_empty() {
            entry.reason = reason.to_owned();
        }
        (first, changed)
    }

    /// Ends the template's episode (one of its agents connected): it may launch
    /// freely again. Returns whether there was an episode to end.
    pub fn succeeded(&mut self, template: &str) -> bool {
        self.entries.remove(template).is_some()
    }

    /// Templates held back, with the time they may launch again.
    pub fn blocked_until(&self) -> BTreeMap<String, Instant> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.until))
            .collect()
    }

    /// Templates in a failure episode, with why.
    pub fn holds(&self) -> BTreeMap<String, Hold> {
        self.entries
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    Hold {
                        until: e.until,
                        failures: e.failures,
                        class: e.class,
                        reason: e.reason.clone(),
                    },
                )
            })
            .collect()
    }

    /// Every failed launch so far, by template and class (for metrics).
    pub fn failure_totals(&self) -> &BTreeMap<(String, ErrorClass), u64> {
        &self.totals
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
