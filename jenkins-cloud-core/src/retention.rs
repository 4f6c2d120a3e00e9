//! When agents retire, and how many stay warm.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Retention rules of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Retire an agent idle this long (`None`: never for idleness).
    pub idle_timeout: Option<Duration>,
    /// Retire an agent after its first build (it is drained as soon as the build
    /// starts, so it never takes a second one).
    pub one_shot: bool,
    /// Retire an agent after this many builds (drained when the last one starts).
    pub max_uses: Option<u32>,
    /// Retire an agent this long after launch, once it is idle (drained first).
    pub max_lifetime: Option<Duration>,
    /// Idle agents kept warm at all times.
    pub min_idle: u32,
    /// Extra warm agents during time windows (the largest matching window wins
    /// over `min_idle`).
    pub min_idle_windows: Vec<MinIdleWindow>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            one_shot: false,
            max_uses: None,
            max_lifetime: None,
            min_idle: 0,
            min_idle_windows: Vec::new(),
        }
    }
}

/// Default idle timeout: 5 minutes. Fargate and EC2 bill per second after the
/// first minute, so a short timeout costs little latency and saves idle hours.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

pub use crate::schedule::MinIdleWindow;

/// Why an agent should retire now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetireReason {
    /// Idle longer than the idle timeout.
    IdleTimeout,
    /// One-shot agent that ran its build.
    OneShot,
    /// Ran its maximum number of builds.
    MaxUses,
    /// Older than its maximum lifetime.
    MaxLifetime,
}

impl RetireReason {
    /// Text used as Jenkins' offline message and the cloud stop reason.
    pub fn describe(self) -> &'static str {
        match self {
            RetireReason::IdleTimeout => "jenkins-cloud: idle timeout",
            RetireReason::OneShot => "jenkins-cloud: one-shot agent finished its build",
            RetireReason::MaxUses => "jenkins-cloud: maximum number of builds reached",
            RetireReason::MaxLifetime => "jenkins-cloud: maximum lifetime reached",
        }
    }
}

/// What retention needs to know about one connected agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentUsage {
    /// Time since launch.
    pub age: Duration,
    /// Time idle (zero while busy).
    pub idle_for: Duration,
    /// Builds started on it so far (including running ones).
    pub builds_started: u32,
    /// Whether a build is running now.
    pub busy: bool,
}

impl RetentionPolicy {
    /// Whether the agent must take no new builds: drain it now, even if busy, so
    /// that Jenkins cannot give it one more build than allowed.
    pub fn stop_accepting(&self, usage: &AgentUsage) -> Option<RetireReason> {
        if self.one_shot && usage.builds_started >= 1 {
            return Some(RetireReason::OneShot);
        }
        if matches!(self.max_uses, Some(max) if usage.builds_started >= max) {
            return Some(RetireReason::MaxUses);
        }
        None
    }

    /// Whether an idle agent should retire now. `keep_warm` says the agent is
    /// one of the warm agents the minimum-idle rule keeps: it is then spared the
    /// idle timeout (but not max uses or lifetime).
    pub fn retire_idle(&self, usage: &AgentUsage, keep_warm: bool) -> Option<RetireReason> {
        if usage.busy {
            return None;
        }
        if let Some(reason) = self.stop_accepting(usage) {
            return Some(reason);
        }
        if matches!(self.max_lifetime, Some(max) if usage.age >= max) {
            return Some(RetireReason::MaxLifetime);
        }
        if !keep_warm && matches!(self.idle_timeout, Some(t) if usage.idle_for >= t) {
            return Some(RetireReason::IdleTimeout);
        }
        None
    }

    /// Warm agents wanted at `at` (seconds since the Unix epoch, UTC).
    pub fn min_idle_at(&self, at_unix_secs: u64) -> u32 {
        self.min_idle_windows
            .iter()
            .filter(|w| w.contains(at_unix_secs))
            .map(|w| w.count)
            .fold(self.min_idle, u32::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(age_s: u64, idle_s: u64, builds: u32, busy: bool) -> AgentUsage {
        AgentUsage {
            age: Duration::from_secs(age_s),
            idle_for: Duration::from_secs(idle_s),
            builds_started: builds,
            busy,
        }
    }

    #[test]
    fn idle_timeout_retires_only_idle_agents_not_kept_warm() {
        let p = RetentionPolicy::default();
        assert_eq!(p.retire_idle(&usage(600, 299, 1, false), false), None);
        assert_eq!(
            p.retire_idle(&usage(600, 300, 1, false), false),
            Some(RetireReason::IdleTimeout)
        );
        assert_eq!(
            p.retire_idle(&usage(600, 300, 1, false), true),
            None,
            "kept warm"
        );
        assert_eq!(
            p.retire_idle(&usage(600, 900, 1, true), false),
            None,
            "busy"
        );
        let never = RetentionPolicy {
            idle_timeout: None,
            ..p
        };
        assert_eq!(
            never.retire_idle(&usage(86_400, 86_400, 1, false), false),
            None
        );
    }

    #[test]
    fn one_shot_and_max_uses_stop_accepting_when_the_last_build_starts() {
        let one_shot = RetentionPolicy {
            one_shot: true,
            ..Default::default()
        };
        assert_eq!(one_shot.stop_accepting(&usage(60, 0, 0, false)), None);
        assert_eq!(
            one_shot.stop_accepting(&usage(60, 0, 1, true)),
            Some(RetireReason::OneShot),
            "drained while its only build runs"
        );
        let three = RetentionPolicy {
            max_uses: Some(3),
            ..Default::default()
        };
        assert_eq!(three.stop_accepting(&usage(60, 0, 2, true)), None);
        assert_eq!(
            three.stop_accepting(&usage(60, 0, 3, true)),
            Some(RetireReason::MaxUses)
        );
        assert_eq!(
            three.retire_idle(&usage(60, 0, 3, false), true),
            Some(RetireReason::MaxUses),
            "warm agents still retire when used up"
        );
    }

    #[test]
    fn max_lifetime_retires_idle_agents_even_when_warm() {
        let p = RetentionPolicy {
            max_lifetime: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        assert_eq!(p.retire_idle(&usage(3599, 10, 5, false), true), None);
        assert_eq!(
            p.retire_idle(&usage(3600, 10, 5, false), true),
            Some(RetireReason::MaxLifetime)
        );
        assert_eq!(
            p.retire_idle(&usage(7200, 0, 5, true), true),
            None,
            "never while busy"
        );
    }

    #[test]
    fn warm_windows_raise_the_minimum() {
        let p = RetentionPolicy {
            min_idle: 1,
            min_idle_windows: vec![MinIdleWindow {
                window: "Mon-Fri 08:00-18:00".parse().unwrap(),
                count: 4,
            }],
            ..Default::default()
        };
        let monday_0900 = 1_795_996_800 + 9 * 3600;
        let saturday_0900 = monday_0900 + 5 * 86_400;
        assert_eq!(p.min_idle_at(monday_0900), 4);
        assert_eq!(p.min_idle_at(saturday_0900), 1);
    }
}
