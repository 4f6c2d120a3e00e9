//! Agent lifecycle: the states an agent goes through and the transitions allowed.
//!
//! ```text
//! Requested → Launching → Starting → Idle ⇄ Busy → Draining → Terminating → Terminated
//!     └──────────┴───────────┴─────────┴──────┴────────┴─────────────┴──→ Failed(reason)
//! ```
//!
//! * `Requested`: the planner decided to launch; nothing exists yet.
//! * `Launching`: the Jenkins node exists and the cloud launch was sent.
//! * `Starting`: the cloud resource is running; the agent has not connected yet.
//! * `Idle` / `Busy`: connected, with no build / at least one build running.
//! * `Draining`: temporarily offline in Jenkins; running builds finish, no new ones start.
//! * `Terminating`: the cloud resource is being stopped and the node deleted.
//! * `Terminated`: gone from the cloud and from Jenkins.
//! * `Failed`: died or never came up; the reason says why. Failed agents are cleaned
//!   up (→ `Terminating`) like any other.

use std::fmt;

/// The state of one agent, as the reconcile loop tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentState {
    /// Planned; no Jenkins node or cloud resource exists yet.
    Requested,
    /// Jenkins node created, cloud launch sent, resource not running yet.
    Launching,
    /// Cloud resource running, agent not yet connected to Jenkins.
    Starting,
    /// Connected, no build running.
    Idle,
    /// Connected, at least one build running.
    Busy,
    /// Temporarily offline: finishing its builds, taking no new ones.
    Draining,
    /// Cloud resource being stopped and Jenkins node being deleted.
    Terminating,
    /// Gone: no cloud resource, no Jenkins node.
    Terminated,
    /// Died or never came up; carries the reason (for example AWS's stop reason).
    Failed(String),
}

/// A transition that the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent state cannot go from {from} to {to}")]
pub struct InvalidTransition {
    /// The state the agent was in.
    pub from: AgentState,
    /// The state that was asked for.
    pub to: AgentState,
}

impl AgentState {
    /// Short lowercase name, stable for metrics labels and JSON (`failed` without the reason).
    pub fn as_str(&self) -> &'static str {
        match self {
            AgentState::Requested => "requested",
            AgentState::Launching => "launching",
            AgentState::Starting => "starting",
            AgentState::Idle => "idle",
            AgentState::Busy => "busy",
            AgentState::Draining => "draining",
            AgentState::Terminating => "terminating",
            AgentState::Terminated => "terminated",
            AgentState::Failed(_) => "failed",
        }
    }

    /// Whether the agent will (or already can) take a build without a new launch:
    /// it counts as capacity when the planner compares demand with supply.
    pub fn is_prospective_capacity(&self) -> bool {
        matches!(
            self,
            AgentState::Requested | AgentState::Launching | AgentState::Starting | AgentState::Idle
        )
    }

    /// Whether the agent still holds (or may hold) cloud resources, so it counts
    /// against instance caps.
    pub fn counts_against_cap(&self) -> bool {
        !matches!(self, AgentState::Terminated)
    }

    /// Whether the agent has reached an end state.
    pub fn is_final(&self) -> bool {
        matches!(self, AgentState::Terminated)
    }

    /// Whether `self → next` is allowed. Staying in the same state is always allowed.
    pub fn can_transition_to(&self, next: &AgentState) -> bool {
        use AgentState::*;
        if std::mem::discriminant(self) == std::mem::discriminant(next) {
            return true;
        }
        match (self, next) {
            (Terminated, _) => false,
            (_, Failed(_)) => true,
            (Requested, Launching | Terminated) => true,
            (Launching, Starting | Idle | Busy | Terminating) => true,
            (Starting, Idle | Busy | Terminating) => true,
            (Idle, Busy | Draining | Terminating) => true,
            (Busy, Idle | Draining) => true,
            (Draining, Terminating) => true,
            (Terminating, Terminated) => true,
            (Failed(_), Terminating | Terminated) => true,
            _ => false,
        }
    }

    /// Moves to `next` if the lifecycle allows it.
    pub fn transition(&self, next: AgentState) -> Result<AgentState, InvalidTransition> {
        if self.can_transition_to(&next) {
            Ok(next)
        } else {
            Err(InvalidTransition {
                from: self.clone(),
                to: next,
            })
        }
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentState::Failed(reason) => write!(f, "failed ({reason})"),
            other => f.write_str(other.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AgentState::*;
    use super::*;

    fn all() -> Vec<AgentState> {
        vec![
            Requested,
            Launching,
            Starting,
            Idle,
            Busy,
            Draining,
            Terminating,
            Terminated,
            Failed("x".into()),
        ]
    }

    #[test]
    fn happy_path_is_allowed() {
        let path = [
            Requested,
            Launching,
            Starting,
            Idle,
            Busy,
            Idle,
            Draining,
            Terminating,
            Terminated,
        ];
        let mut s = path[0].clone();
        for next in &path[1..] {
            s = s.transition(next.clone()).expect("allowed");
        }
        assert_eq!(s, Terminated);
    }

    #[test]
    fn terminated_is_final() {
        for next in all() {
            if next != Terminated {
                assert!(Terminated.transition(next.clone()).is_err(), "{next}");
            }
        }
    }

    #[test]
    fn every_live_state_can_fail_and_failed_is_cleaned_up() {
        for s in all() {
            if s != Terminated {
                assert!(s.can_transition_to(&Failed("died".into())), "{s}");
            }
        }
        assert!(Failed("x".into()).can_transition_to(&Terminating));
    }

    #[test]
    fn forbidden_transitions_are_refused_with_both_states() {
        let err = Busy.transition(Terminating).unwrap_err();
        assert_eq!(err.from, Busy);
        assert_eq!(err.to, Terminating);
        assert_eq!(
            err.to_string(),
            "agent state cannot go from busy to terminating"
        );
        assert!(Draining.transition(Idle).is_err());
        assert!(Idle.transition(Starting).is_err());
        assert!(Requested.transition(Idle).is_err());
    }

    #[test]
    fn capacity_classification() {
        let cap: Vec<_> = all()
            .into_iter()
            .filter(|s| s.is_prospective_capacity())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(cap, ["requested", "launching", "starting", "idle"]);
        assert!(!Terminated.counts_against_cap());
        assert!(Draining.counts_against_cap());
    }
}
