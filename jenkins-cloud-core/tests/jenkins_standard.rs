//! JenkinsStandard: the delays Jenkins core's NodeProvisioner yields, driven in
//! paused tokio time with one call per simulated second.

use std::time::Duration;

use jenkins_cloud_core::jenkins_standard::{threshold_margin, JenkinsStandard, TICK};
use jenkins_cloud_core::strategy::{PoolView, ProvisioningStrategy};
use tokio::time::{advance, Instant};

const STEP: Duration = Duration::from_secs(1);
/// Launch until the cloud resource runs.
const LAUNCH: Duration = Duration::from_secs(30);
/// Running until the agent connects.
const CONNECT: Duration = Duration::from_secs(10);

/// How launched agents progress.
#[derive(Clone, Copy, PartialEq)]
enum Arrival {
    /// Launching for `LAUNCH`, connecting for `CONNECT`, then online.
    Online,
    /// Launching forever (Jenkins' planned capacity).
    StuckLaunching,
    /// Launching for `LAUNCH`, then connecting forever.
    StuckConnecting,
}

/// A tiny world: one template, builds that never finish, agents that arrive
/// as `arrival` says.
struct World {
    strategy: JenkinsStandard,
    queued: u32,
    idle: u32,
    busy: u32,
    per_agent: u32,
    arrival: Arrival,
    /// Launch time of each agent not yet online.
    pending: Vec<Instant>,
    /// (seconds since start, agents) of every launch decision.
    launches: Vec<(u64, u32)>,
    start: Instant,
}

impl World {
    fn new(busy: u32) -> Self {
        Self {
            strategy: JenkinsStandard::new(),
            queued: 0,
            idle: 0,
            busy,
            per_agent: 1,
            arrival: Arrival::Online,
            pending: Vec::new(),
            launches: Vec::new(),
            start: Instant::now(),
        }
    }

    fn pool(&self, now: Instant) -> PoolView {
        let starting = match self.arrival {
            Arrival::StuckLaunching => 0,
            _ => self.pending.iter().filter(|&&t| now - t >= LAUNCH).count() as u32,
        };
        let launching = self.pending.len() as u32 - starting;
        PoolView {
            queued: self.queued,
            idle_executors: self.idle,
            busy_executors: self.busy,
            starting_executors: starting * self.per_agent,
            launching_executors: launching * self.per_agent,
            executors_per_agent: self.per_agent,
        }
    }

    /// One simulated second: arrivals, Jenkins assigning builds, then the strategy.
    fn step(&mut self) {
        let now = Instant::now();
        if self.arrival == Arrival::Online {
            let before = self.pending.len();
            self.pending.retain(|&t| now - t < LAUNCH + CONNECT);
            self.idle += (before - self.pending.len()) as u32 * self.per_agent;
        }
        let taken = self.idle.min(self.queued);
        self.idle -= taken;
        self.queued -= taken;
        self.busy += taken;
        let n = self.strategy.agents_to_launch("t", &self.pool(now), now);
        if n > 0 {
            self.launches.push(((now - self.start).as_secs(), n));
            self.pending.extend(std::iter::repeat_n(now, n as usize));
        }
    }

    async fn run(&mut self, secs: u64) {
        for _ in 0..secs {
            self.step();
            advance(STEP).await;
        }
    }

    fn launched(&self) -> u32 {
        self.launches.iter().map(|(_, n)| n).sum()
    }

    fn seconds(&self) -> u64 {
        (Instant::now() - self.start).as_secs()
    }
}

/// Seconds from one item being queued until the first launch, with `busy`
/// executors online and none idle, after `warmup` seconds of an empty queue.
async fn delay_for_one_item(busy: u32, warmup: u64) -> u64 {
    let mut w = World::new(busy);
    w.run(warmup).await;
    assert!(w.launches.is_empty());
    w.queued = 1;
    let queued_at = w.seconds();
    w.run(400).await;
    let (first, n) = *w.launches.first().expect("an agent is launched eventually");
    assert_eq!(n, 1, "one agent for one item");
    first - queued_at
}

#[tokio::test(start_paused = true)]
async fn from_zero_executors_one_item_is_provisioned_within_a_tick() {
    for warmup in [0, 3, 35, 47] {
        let mut w = World::new(0);
        w.run(warmup).await;
        w.queued = 1;
        let queued_at = w.seconds();
        w.run(300).await;
        let (first, _) = w.launches[0];
        assert!(
            first - queued_at <= 10,
            "warmup {warmup}: launched after {} s",
            first - queued_at
        );
        assert_eq!(
            w.launched(),
            1,
            "warmup {warmup}: no second agent for one item: {:?}",
            w.launches
        );
        assert_eq!((w.queued, w.busy), (0, 1), "the build got the agent");
    }
}

#[tokio::test(start_paused = true)]
async fn with_busy_executors_one_item_waits_minutes() {
    // m ≈ 0.1004 with 10 online: the averaged queue 1 − 0.9^n passes 0.8996 at
    // the 22nd tick that sees the item, i.e. 210 s after the first one.
    for warmup in [60, 64, 69] {
        let d = delay_for_one_item(10, warmup).await;
        assert!((210..220).contains(&d), "warmup {warmup}: {d} s");
    }
    // One online executor: m = 0.3, 1 − 0.9^n > 0.7 at the 12th tick.
    let d = delay_for_one_item(1, 60).await;
    assert!((110..120).contains(&d), "1 executor: {d} s");
}

#[tokio::test(start_paused = true)]
async fn delay_grows_with_online_executors_and_stays_in_the_derived_range() {
    let mut last = 0;
    for busy in [1, 2, 3, 5, 10, 50] {
        let d = delay_for_one_item(busy, 60).await;
        assert!((110..=220).contains(&d), "{busy} busy: {d} s");
        assert!(d >= last, "{busy} busy: {d} s < {last} s");
        last = d;
    }
}

#[tokio::test(start_paused = true)]
async fn never_provisions_with_an_empty_queue() {
    for (idle, busy) in [(0, 0), (0, 10), (3, 0), (2, 2)] {
        let mut w = World::new(busy);
        w.idle = idle;
        w.run(600).await;
        assert!(
            w.launches.is_empty(),
            "idle {idle} busy {busy}: {:?}",
            w.launches
        );
    }
}

#[tokio::test(start_paused = true)]
async fn idle_executors_absorb_the_queue() {
    let mut s = JenkinsStandard::new();
    let pool = PoolView {
        queued: 2,
        idle_executors: 2,
        executors_per_agent: 1,
        ..PoolView::default()
    };
    for _ in 0..100 {
        let now = Instant::now();
        assert_eq!(s.agents_to_launch("t", &pool, now), 0);
        advance(TICK).await;
    }
}

#[tokio::test(start_paused = true)]
async fn recently_idle_executors_hold_off_provisioning() {
    // An executor idle until now keeps the averaged availability above MARGIN
    // for 22 ticks (0.9^22 < 0.1): Jenkins waits for it to be really gone.
    let mut s = JenkinsStandard::new();
    let idle = PoolView {
        idle_executors: 1,
        busy_executors: 9,
        executors_per_agent: 1,
        ..PoolView::default()
    };
    for _ in 0..100 {
        s.agents_to_launch("t", &idle, Instant::now());
        advance(TICK).await;
    }
    let busy = PoolView {
        queued: 20,
        busy_executors: 10,
        executors_per_agent: 1,
        ..PoolView::default()
    };
    let mut ticks = 0;
    while s.agents_to_launch("t", &busy, Instant::now()) == 0 {
        ticks += 1;
        advance(TICK).await;
    }
    assert_eq!(
        ticks, 21,
        "launched at the 22nd tick without idle executors"
    );
}

#[tokio::test(start_paused = true)]
async fn larger_queue_gets_more_agents_sooner() {
    let mut results = Vec::new();
    for queue in [1, 5, 20] {
        let mut w = World::new(10);
        w.arrival = Arrival::StuckLaunching;
        w.run(60).await;
        w.queued = queue;
        w.run(30).await;
        let early = w.launched();
        w.run(570).await;
        assert_eq!(
            w.launched(),
            queue,
            "queue {queue}: one executor per item in the end, never more"
        );
        results.push((queue, early, w.launches[0]));
    }
    let early: Vec<u32> = results.iter().map(|r| r.1).collect();
    assert!(
        early[0] < early[1] && early[1] < early[2],
        "within 30 s: {results:?}"
    );
    let first: Vec<u64> = results.iter().map(|r| r.2 .0).collect();
    assert!(
        first[0] > first[1] && first[1] >= first[2],
        "first launch: {results:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn executors_per_agent_round_up_to_agents() {
    // From zero the first decision asks for 1 executor (needSome); later ones ask
    // for the averaged excess. 3 items with 2 executors per agent need 2 agents.
    let mut w = World::new(0);
    w.per_agent = 2;
    w.arrival = Arrival::StuckLaunching;
    w.queued = 3;
    w.run(600).await;
    assert_eq!(w.launches[0], (0, 1));
    assert_eq!(w.launched(), 2, "{:?}", w.launches);
}

#[tokio::test(start_paused = true)]
async fn missed_ticks_are_replayed_with_one_decision() {
    let busy = PoolView {
        queued: 1,
        busy_executors: 10,
        executors_per_agent: 1,
        ..PoolView::default()
    };
    let mut s = JenkinsStandard::new();
    assert_eq!(
        s.agents_to_launch("t", &busy, Instant::now()),
        0,
        "first tick: average 0.1"
    );
    advance(Duration::from_secs(300)).await;
    // 30 more ticks with the same snapshot: 1 − 0.9^31 ≈ 0.96 > 1 − m.
    assert_eq!(
        s.agents_to_launch("t", &busy, Instant::now()),
        1,
        "one decision for the 30 ticks"
    );
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        s.agents_to_launch("t", &busy, Instant::now()),
        0,
        "no tick due yet"
    );
    // Templates keep their own state.
    assert_eq!(
        s.agents_to_launch("other", &busy, Instant::now()),
        0,
        "a new template starts at average 0"
    );
}

#[tokio::test(start_paused = true)]
async fn calls_between_ticks_change_nothing() {
    let busy = PoolView {
        queued: 1,
        busy_executors: 10,
        executors_per_agent: 1,
        ..PoolView::default()
    };
    let mut fast = JenkinsStandard::new();
    let mut slow = JenkinsStandard::new();
    let mut fast_first = None;
    let mut slow_first = None;
    for second in 0..400u64 {
        let now = Instant::now();
        if fast.agents_to_launch("t", &busy, now) > 0 && fast_first.is_none() {
            fast_first = Some(second);
        }
        if second % 10 == 0 && slow.agents_to_launch("t", &busy, now) > 0 && slow_first.is_none() {
            slow_first = Some(second);
        }
        advance(STEP).await;
    }
    assert_eq!(fast_first, Some(210));
    assert_eq!(
        fast_first, slow_first,
        "ticks, not calls, drive the averages"
    );
    assert!(threshold_margin(10) > 0.1 && threshold_margin(10) < 0.101);
}

#[tokio::test(start_paused = true)]
async fn slow_connecting_agents_are_provisioned_again_as_in_jenkins() {
    // When an agent moves from launching (planned capacity, counted as
    // max(average, snapshot)) to connecting (counted as min(average, snapshot)),
    // both averaged terms are small for a while: Jenkins sees the capacity vanish
    // and provisions again. The model keeps that flaw; NoDelay does not have it.
    let mut w = World::new(10);
    w.arrival = Arrival::StuckConnecting;
    w.run(60).await;
    w.queued = 5;
    w.run(600).await;
    assert!(w.launched() > 5, "over-provisioned: {:?}", w.launches);
    let mut stuck = World::new(10);
    stuck.arrival = Arrival::StuckLaunching;
    stuck.run(60).await;
    stuck.queued = 5;
    stuck.run(600).await;
    assert_eq!(
        stuck.launched(),
        5,
        "while launching, capacity is counted exactly"
    );
}
