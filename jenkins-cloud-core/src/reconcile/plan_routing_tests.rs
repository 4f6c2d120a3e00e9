//! Spill (demand routed past templates that cannot take it now), probing
//! after launch failures, frozen templates and duplicate queue ids.

use super::*;

fn capped(name: &str, labels: &str, cap: u32) -> AgentTemplate {
    let mut t = template(name, labels);
    t.instance_cap = Some(cap);
    t
}

fn spilled(plan: &Plan) -> Vec<(u64, String, String)> {
    plan.spilled
        .iter()
        .map(|s| (s.item, s.from.clone(), s.to.clone()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_capped_template_spills_to_the_next_that_can_take_the_build() {
    let mut w = World::new(vec![
        capped("spot", "linux", 1),
        template("ondemand", "linux"),
    ]);
    w.queue(2, Some("linux"));
    let plan = w.plan();
    assert_eq!(
        launches(&plan),
        [("spot".into(), 1, 1), ("ondemand".into(), 1, 1)]
    );
    assert_eq!(spilled(&plan), [(2, "spot".into(), "ondemand".into())]);
    assert_eq!(plan.spilled[0].reason, "instance cap 1 reached");
    let demand: Vec<_> = plan
        .demand
        .iter()
        .map(|d| (d.template.as_str(), d.items.clone()))
        .collect();
    assert_eq!(demand, [("spot", vec![1]), ("ondemand", vec![2])]);
}

#[tokio::test(start_paused = true)]
async fn spill_false_keeps_the_builds_waiting_for_the_template() {
    let mut first = capped("spot", "linux", 1);
    first.spill = false;
    let mut w = World::new(vec![first, template("ondemand", "linux")]);
    w.queue(2, Some("linux"));
    let plan = w.plan();
    assert_eq!(launches(&plan), [("spot".into(), 1, 1)]);
    assert!(plan.spilled.is_empty());
}

#[tokio::test(start_paused = true)]
async fn spill_follows_configuration_order_through_every_cap() {
    let mut w = World::new(vec![
        capped("a", "linux", 1),
        capped("b", "linux", 1),
        template("c", "linux"),
    ]);
    w.queue(4, Some("linux"));
    let plan = w.plan();
    assert_eq!(
        launches(&plan),
        [("a".into(), 1, 1), ("b".into(), 1, 1), ("c".into(), 2, 2)]
    );
    assert_eq!(
        spilled(&plan),
        [
            (2, "a".into(), "b".into()),
            (3, "a".into(), "b".into()),
            (4, "a".into(), "b".into()),
            (3, "b".into(), "c".into()),
            (4, "b".into(), "c".into()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_global_cap_still_holds_across_spills() {
    let mut w = World::new(vec![capped("a", "linux", 1), template("b", "linux")]);
    w.caps.global = Some(2);
    w.queue(5, Some("linux"));
    let plan = w.plan();
    assert_eq!(launches(&plan), [("a".into(), 1, 1), ("b".into(), 1, 1)]);
    assert!(plan
        .held_back
        .contains(&("b".into(), "global cap 2 reached".into())));
}

#[tokio::test(start_paused = true)]
async fn a_label_cap_spills_to_a_template_it_does_not_cover() {
    let mut w = World::new(vec![
        template("small", "linux small"),
        template("big", "linux"),
    ]);
    w.caps.per_label = vec![("small".parse().unwrap(), 1)];
    w.queue(3, Some("linux"));
    let plan = w.plan();
    assert_eq!(
        launches(&plan),
        [("small".into(), 1, 1), ("big".into(), 2, 2)]
    );
    assert_eq!(plan.spilled[0].reason, "cap 1 for `small` reached");
}

#[tokio::test(start_paused = true)]
async fn a_backing_off_template_spills_everything() {
    let mut w = World::new(vec![
        template("spot", "linux"),
        template("ondemand", "linux"),
    ]);
    w.queue(3, Some("linux"));
    w.blocked
        .insert("spot".into(), w.now + Duration::from_secs(30));
    let plan = w.plan();
    assert_eq!(launches(&plan), [("ondemand".into(), 3, 3)]);
    assert_eq!(plan.spilled.len(), 3);
    assert!(plan
        .spilled
        .iter()
        .all(|s| s.reason == "backing off after launch failures"));
}

#[tokio::test(start_paused = true)]
async fn after_the_backoff_one_probe_agent_at_a_time() {
    let mut w = World::new(vec![template("linux", "linux")]);
    w.queue(3, Some("linux"));
    w.blocked.insert("linux".into(), w.now);
    assert_eq!(launches(&w.plan()), [("linux".into(), 1, 1)], "one probe");
    w.agent("probe", "linux", AgentState::Launching);
    let plan = w.plan();
    assert!(launches(&plan).is_empty(), "the probe is still in flight");
    assert!(plan.held_back.contains(&(
        "linux".into(),
        "one probe agent at a time after launch failures".into()
    )));
    w.blocked.clear();
    assert_eq!(
        launches(&w.plan()),
        [("linux".into(), 2, 2)],
        "healthy again (an agent connected): launches freely"
    );
}

#[tokio::test(start_paused = true)]
async fn a_frozen_template_neither_launches_nor_retires_and_its_demand_spills() {
    let mut a = template("a", "linux");
    a.retention.idle_timeout = Some(Duration::from_secs(60));
    let mut w = World::new(vec![a, template("b", "linux")]);
    w.agent("a-idle", "a", AgentState::Idle);
    w.agent("a-failed", "a", AgentState::Failed("gone".into()));
    w.queue(3, Some("linux"));
    w.frozen.insert(
        "a".into(),
        "listing ECS tasks failed: connection refused".into(),
    );
    let plan = w.plan_at(Duration::from_secs(3600));
    assert!(
        plan.actions.iter().all(|a| !matches!(
            a,
            Action::Drain { .. } | Action::Terminate { .. } | Action::DeleteNode { .. }
        )),
        "no action on a frozen template's agents: {:?}",
        plan.actions
    );
    // The idle agent may still take one build; the rest go to `b`.
    assert_eq!(launches(&plan), [("b".into(), 2, 2)]);
    assert!(plan.held_back.iter().any(|(t, why)| t == "a"
        && why == "its cloud cannot be read: listing ECS tasks failed: connection refused"));
}

#[tokio::test(start_paused = true)]
async fn items_for_a_named_template_never_spill() {
    let mut w = World::new(vec![capped("a", "linux", 0), template("b", "linux")]);
    w.demand.items.push(QueueItem {
        id: 7,
        task: "pinned".into(),
        requirement: Requirement::Template("a".into()),
        in_queue_since_ms: 1,
    });
    let plan = w.plan();
    assert!(launches(&plan).is_empty());
    assert!(plan.spilled.is_empty());
    assert_eq!(plan.demand[0].items, [7]);
}

#[tokio::test(start_paused = true)]
async fn a_queue_id_listed_many_times_counts_once() {
    let mut w = World::new(vec![template("linux", "linux")]);
    w.queue(1, Some("linux"));
    let item = w.demand.items[0].clone();
    for _ in 0..99 {
        w.demand.items.push(item.clone());
    }
    let plan = w.plan();
    assert_eq!(launches(&plan), [("linux".into(), 1, 1)]);
    assert_eq!(plan.demand[0].items, [1]);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_queue_items_launches_at_most_the_per_pass_bound() {
    let mut w = World::new(vec![template("a", "linux"), template("b", "linux")]);
    w.caps.launches_per_pass = Some(100);
    w.queue(5000, Some("linux"));
    let plan = w.plan();
    let total: u32 = launches(&plan).iter().map(|(_, n, _)| n).sum();
    assert_eq!(total, 100, "{:?}", launches(&plan));
    assert!(plan.held_back.contains(&(
        "a".into(),
        "at most 100 launches per pass; the rest at the next pass".into()
    )));
    assert!(
        plan.spilled.is_empty(),
        "the bound defers, it does not spill"
    );
}

#[tokio::test(start_paused = true)]
async fn at_most_max_queue_items_are_considered_per_pass() {
    let mut w = World::new(vec![template("a", "linux")]);
    w.queue(MAX_QUEUE_ITEMS_PER_PASS as u64 + 5, Some("linux"));
    let plan = w.plan();
    assert_eq!(plan.deferred_items, 5);
    assert_eq!(plan.demand[0].items.len(), MAX_QUEUE_ITEMS_PER_PASS);
    assert_eq!(plan.demand[0].items[0], 1, "the oldest first");
}

#[tokio::test(start_paused = true)]
async fn extreme_counts_saturate_instead_of_overflowing() {
    let mut t = template("a", "linux");
    t.executors = 64;
    t.retention.min_idle = 70_000_000;
    let mut w = World::new(vec![t]);
    w.caps.launches_per_pass = Some(100);
    w.agent("x", "a", AgentState::Idle).executors = u32::MAX;
    w.agent("y", "a", AgentState::Idle).executors = u32::MAX;
    w.queue(3, Some("linux"));
    let plan = w.plan();
    let total: u32 = launches(&plan).iter().map(|(_, n, _)| n).sum();
    assert!(total <= 100, "{:?}", launches(&plan));
}
