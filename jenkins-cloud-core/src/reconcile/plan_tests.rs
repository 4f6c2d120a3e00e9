use std::time::Duration;

use super::*;
use crate::backend::CloudState;
use crate::jenkins::QueueItem;
use crate::label::LabelSet;
use crate::strategy::NoDelay;
use crate::template::NodeMode;

struct World {
    templates: Vec<Arc<AgentTemplate>>,
    agents: BTreeMap<String, Agent>,
    demand: Demand,
    caps: Caps,
    blocked: BTreeMap<String, Instant>,
    frozen: BTreeMap<String, String>,
    now: Instant,
}

impl World {
    fn new(templates: Vec<AgentTemplate>) -> Self {
        Self {
            templates: templates.into_iter().map(Arc::new).collect(),
            agents: BTreeMap::new(),
            demand: Demand::default(),
            caps: Caps::default(),
            blocked: BTreeMap::new(),
            frozen: BTreeMap::new(),
            now: Instant::now(),
        }
    }

    fn queue(&mut self, n: u64, label: Option<&str>) {
        for _ in 0..n {
            let id = self.demand.items.len() as u64 + 1;
            self.demand.items.push(QueueItem {
                id,
                task: format!("job-{id}"),
                requirement: match label {
                    None => Requirement::AnyNode,
                    Some(l) => Requirement::Label(l.parse().unwrap()),
                },
                in_queue_since_ms: 1_000 + id,
            });
        }
    }

    fn agent(&mut self, name: &str, template: &str, state: AgentState) -> &mut Agent {
        let mut a = Agent::requested(name.into(), template.into(), 1, self.now);
        a.state = state.clone();
        a.node_exists = true;
        a.cloud_id = Some(CloudId(format!("id-{name}")));
        a.cloud_state = Some(match state {
            AgentState::Launching => CloudState::Pending,
            _ => CloudState::Running,
        });
        if matches!(state, AgentState::Idle) {
            a.idle_since = Some(self.now);
            a.ever_connected = true;
        }
        if matches!(state, AgentState::Busy) {
            a.busy_executors = 1;
            a.ever_connected = true;
            a.builds_seen.insert(format!("job/x/{name}/"));
        }
        self.agents.insert(name.into(), a);
        self.agents.get_mut(name).unwrap()
    }

    fn plan_at(&self, after: Duration) -> Plan {
        let input = PlanInput {
            templates: &self.templates,
            agents: &self.agents,
            demand: &self.demand,
            caps: &self.caps,
            blocked_until: &self.blocked,
            frozen: &self.frozen,
            now: self.now + after,
            wall_secs: 1_795_996_800, // a Monday, 00:00 UTC
            terminate_retry: Duration::from_secs(60),
        };
        plan(&input, &mut NoDelay)
    }

    fn plan(&self) -> Plan {
        self.plan_at(Duration::ZERO)
    }
}

fn template(name: &str, labels: &str) -> AgentTemplate {
    AgentTemplate::new(name, LabelSet::parse(labels))
}

fn launches(plan: &Plan) -> Vec<(String, u32, usize)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Launch {
                template,
                count,
                serves,
            } => Some((template.clone(), *count, serves.len())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn fifty_queued_builds_give_exactly_fifty_launches() {
    let mut w = World::new(vec![template("linux", "linux")]);
    w.queue(50, Some("linux"));
    let plan = w.plan();
    assert_eq!(launches(&plan), vec![("linux".into(), 50, 50)]);
    assert_eq!(plan.demand[0].items.len(), 50);
}

#[tokio::test(start_paused = true)]
async fn every_kind_of_coming_capacity_counts_once() {
    let mut w = World::new(vec![template("linux", "linux")]);
    w.queue(10, Some("linux"));
    for i in 0..3 {
        w.agent(&format!("l{i}"), "linux", AgentState::Launching);
    }
    w.agent("s0", "linux", AgentState::Starting);
    w.agent("s1", "linux", AgentState::Starting);
    w.agent("i0", "linux", AgentState::Idle);
    w.agent("b0", "linux", AgentState::Busy);
    let plan = w.plan();
    assert_eq!(launches(&plan), vec![("linux".into(), 4, 4)]);
    // The items served by the new agents are the ones not covered, the newest.
    let Action::Launch { serves, .. } = &plan.actions[0] else {
        panic!()
    };
    assert_eq!(serves, &vec![7, 8, 9, 10]);
}

#[tokio::test(start_paused = true)]
async fn labels_pick_the_first_template_that_can_take_the_item() {
    let mut exclusive = template("docker", "linux docker");
    exclusive.mode = NodeMode::Exclusive;
    let mut w = World::new(vec![exclusive, template("small", "linux small")]);
    w.queue(2, Some("linux&&docker"));
    w.queue(3, Some("linux"));
    w.queue(1, None);
    w.queue(1, Some("windows"));
    let plan = w.plan();
    assert_eq!(
        launches(&plan),
        vec![("docker".into(), 5, 5), ("small".into(), 1, 1)],
        "`linux` items go to the first template carrying linux; unlabelled ones skip EXCLUSIVE"
    );
    assert_eq!(plan.unmatched, vec![7]);
}

#[tokio::test(start_paused = true)]
async fn caps_hold_per_template_globally_and_per_label() {
    let mut capped = template("a", "linux gpu");
    capped.instance_cap = Some(5);
    let mut w = World::new(vec![capped, template("b", "windows")]);
    w.agent("a-1", "a", AgentState::Busy);
    w.agent("a-2", "a", AgentState::Busy);
    w.queue(10, Some("gpu"));
    w.queue(10, Some("windows"));
    let plan = w.plan();
    assert_eq!(
        launches(&plan),
        vec![("a".into(), 3, 3), ("b".into(), 10, 10)]
    );
    assert!(plan
        .held_back
        .iter()
        .any(|(t, why)| t == "a" && why.contains("instance cap 5")));

    w.caps.global = Some(8);
    let plan = w.plan();
    assert_eq!(
        launches(&plan),
        vec![("a".into(), 3, 3), ("b".into(), 3, 3)]
    );

    w.caps.global = None;
    w.caps.per_label = vec![("gpu||windows".parse().unwrap(), 4)];
    let plan = w.plan();
    assert_eq!(launches(&plan), vec![("a".into(), 2, 2)]);
    assert!(plan
        .held_back
        .iter()
        .any(|(t, why)| t == "b" && why.contains("gpu||windows")));
}

#[tokio::test(start_paused = true)]
async fn idle_agents_drain_after_the_timeout_then_terminate() {
    let mut w = World::new(vec![template("linux", "linux")]);
    w.agent("i0", "linux", AgentState::Idle);
    assert!(w.plan_at(Duration::from_secs(299)).actions.is_empty());
    let plan = w.plan_at(Duration::from_secs(300));
    assert_eq!(
        plan.actions,
        vec![Action::Drain {
            agent: "i0".into(),
            reason: "jenkins-cloud: idle timeout".into()
        }]
    );
    w.agents.get_mut("i0").unwrap().state = AgentState::Draining;
    let plan = w.plan_at(Duration::from_secs(310));
    assert_eq!(
        plan.actions,
        vec![Action::Terminate {
            agent: "i0".into(),
            cloud_id: Some(CloudId("id-i0".into())),
            reason: "drained and idle".into()
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn idle_agents_wait_while_their_template_has_demand() {
    let mut w = World::new(vec![template("linux", "linux")]);
    w.agent("i0", "linux", AgentState::Idle);
    w.queue(1, Some("linux"));
    let plan = w.plan_at(Duration::from_secs(3600));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
}

#[tokio::test(start_paused = true)]
async fn one_shot_agents_drain_as_soon_as_their_build_starts_and_are_not_capacity() {
    let mut t = template("once", "linux");
    t.retention.one_shot = true;
    let mut w = World::new(vec![t]);
    w.agent("b0", "once", AgentState::Busy);
    w.queue(1, Some("linux"));
    let plan = w.plan();
    assert_eq!(
        plan.actions,
        vec![
            Action::Drain {
                agent: "b0".into(),
                reason: "jenkins-cloud: one-shot agent finished its build".into()
            },
            Action::Launch {
                template: "once".into(),
                count: 1,
                serves: vec![1]
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn warm_agents_are_kept_and_launched() {
    let mut t = template("warm", "linux");
    t.retention.min_idle = 2;
    let mut w = World::new(vec![t]);
    w.agent("i0", "warm", AgentState::Idle);
    let plan = w.plan_at(Duration::from_secs(3600));
    assert_eq!(
        plan.actions,
        vec![Action::Launch {
            template: "warm".into(),
            count: 1,
            serves: vec![]
        }],
        "the idle agent is kept warm, one more is launched"
    );
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_failures_terminate() {
    let mut w = World::new(vec![template("linux", "linux")]);
    w.agent("l0", "linux", AgentState::Launching);
    w.agent("s0", "linux", AgentState::Starting);
    w.agent(
        "f0",
        "linux",
        AgentState::Failed("CannotPullContainerError".into()),
    );
    w.agents.get_mut("f0").unwrap().cloud_state = Some(CloudState::Failed("x".into()));
    let plan = w.plan_at(Duration::from_secs(299));
    assert_eq!(
        plan.actions,
        vec![Action::DeleteNode {
            agent: "f0".into(),
            reason: "failed: CannotPullContainerError".into()
        }]
    );
    let plan = w.plan_at(Duration::from_secs(900));
    let agents: Vec<_> = plan
        .actions
        .iter()
        .map(|a| match a {
            Action::Terminate { agent, reason, .. } => format!("{agent}: {reason}"),
            Action::DeleteNode { agent, .. } => format!("{agent}: delete"),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        agents,
        vec![
            "f0: delete",
            "l0: launch timed out after 900s",
            "s0: agent did not connect within 300s of starting"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_agent_running_a_build_is_drained_not_killed() {
    let mut w = World::new(vec![template("linux", "linux")]);
    let a = w.agent("f1", "linux", AgentState::Failed("throttled".into()));
    a.busy_executors = 1;
    a.ever_connected = true;
    assert_eq!(
        w.plan().actions,
        vec![Action::Drain {
            agent: "f1".into(),
            reason: "jenkins-cloud: agent failed; finishing its build".into()
        }]
    );
    w.agents.get_mut("f1").unwrap().draining = true;
    assert!(w.plan().actions.is_empty(), "drained: wait for the build");
    w.agents.get_mut("f1").unwrap().busy_executors = 0;
    assert!(
        matches!(&w.plan().actions[..], [Action::Terminate { agent, .. }] if agent == "f1"),
        "build done: terminated"
    );
    let f1 = w.agents.get_mut("f1").unwrap();
    f1.busy_executors = 1;
    f1.cloud_state = Some(CloudState::Failed("spot".into()));
    assert!(
        matches!(&w.plan().actions[..], [Action::DeleteNode { agent, .. }] if agent == "f1"),
        "its resource is gone: the build is lost anyway"
    );
}

#[tokio::test(start_paused = true)]
async fn blocked_templates_are_held_back() {
    let mut w = World::new(vec![template("linux", "linux")]);
    w.queue(3, Some("linux"));
    w.blocked
        .insert("linux".into(), w.now + Duration::from_secs(30));
    let plan = w.plan();
    assert!(launches(&plan).is_empty());
    assert_eq!(
        plan.held_back,
        vec![("linux".into(), "backing off after launch failures".into())]
    );
    assert_eq!(
        launches(&w.plan_at(Duration::from_secs(30))),
        vec![("linux".into(), 1, 1)],
        "after the backoff, one probe agent until one connects"
    );
}

#[tokio::test(start_paused = true)]
async fn agents_of_removed_templates_are_drained_then_retired() {
    let mut w = World::new(vec![template("linux", "linux")]);
    w.agent("old-1", "gone", AgentState::Idle);
    w.agent("old-2", "gone", AgentState::Starting);
    let plan = w.plan();
    assert_eq!(
        plan.actions,
        vec![
            Action::Drain {
                agent: "old-1".into(),
                reason: "jenkins-cloud: template no longer configured".into()
            },
            Action::Terminate {
                agent: "old-2".into(),
                cloud_id: Some(CloudId("id-old-2".into())),
                reason: "template no longer configured".into()
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn multi_executor_agents_round_up() {
    let mut t = template("big", "linux");
    t.executors = 4;
    let mut w = World::new(vec![t]);
    w.queue(9, Some("linux"));
    assert_eq!(launches(&w.plan()), vec![("big".into(), 3, 9)]);
}

#[derive(Debug)]
struct Never;

impl ProvisioningStrategy for Never {
    fn name(&self) -> &str {
        "never"
    }
    fn agents_to_launch(&mut self, _: &str, _: &PoolView, _: Instant) -> u32 {
        0
    }
}

#[test]
fn without_warm_agents_the_strategy_alone_decides() {
    let mut w = World::new(vec![template("t", "linux")]);
    w.queue(3, Some("linux"));
    let input = PlanInput {
        templates: &w.templates,
        agents: &w.agents,
        demand: &w.demand,
        caps: &w.caps,
        blocked_until: &w.blocked,
        frozen: &Default::default(),
        now: w.now,
        wall_secs: 1_795_996_800,
        terminate_retry: Duration::from_secs(60),
    };
    let plan = plan(&input, &mut Never);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    let warm = vec![Arc::new({
        let mut t = template("t", "linux");
        t.retention.min_idle = 1;
        t
    })];
    let input = PlanInput {
        templates: &warm,
        ..input
    };
    let plan = super::plan(&input, &mut Never);
    assert_eq!(
        plan.actions,
        vec![Action::Launch {
            template: "t".into(),
            count: 4,
            serves: vec![1, 2, 3]
        }],
        "one warm agent on top of the queue"
    );
}

#[path = "plan_routing_tests.rs"]
mod routing;
