//! The memory backend passes the conformance suite, with and without a warm
//! pool: one test per behaviour, and the whole suite on one shared harness.

use std::time::Duration;

use jenkins_cloud_core::memory::{Latency, MemoryHarness, WarmPool};
use jenkins_cloud_core::testkit::conformance::{self, Checked, BEHAVIOURS};

const POOL_ONLY: &str = "warm_pool_members_are_no_agents";

fn pooled() -> MemoryHarness {
    MemoryHarness::with_config(|b| {
        b.with_warm_pool(WarmPool {
            max_stopped: 2,
            restart_latency: Latency::Fixed(Duration::from_secs(20)),
        })
    })
}

mod per_behaviour {
    use super::MemoryHarness;
    jenkins_cloud_core::conformance_tests!(
        #[tokio::test(start_paused = true)]
        MemoryHarness::new()
    );
}

mod per_behaviour_with_warm_pool {
    jenkins_cloud_core::conformance_tests!(
        #[tokio::test(start_paused = true)]
        super::pooled()
    );
}

#[tokio::test(start_paused = true)]
async fn run_all_passes_every_behaviour_on_one_harness() {
    let report = conformance::run_all(&MemoryHarness::new()).await;
    assert!(report.is_ok(), "{:#?}", report.failed);
    let unsupported: Vec<&str> = report.not_supported.iter().map(|(n, _)| *n).collect();
    assert_eq!(unsupported, [POOL_ONLY]);
    let others: Vec<&str> = BEHAVIOURS
        .iter()
        .copied()
        .filter(|n| *n != POOL_ONLY)
        .collect();
    assert_eq!(report.passed, others);
}

#[tokio::test(start_paused = true)]
async fn run_all_passes_every_behaviour_with_a_warm_pool() {
    let harness = pooled();
    let report = conformance::run_all(&harness).await;
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert!(
        report.not_supported.is_empty(),
        "{:?}",
        report.not_supported
    );
    assert_eq!(report.passed, BEHAVIOURS);
    // The pool was really used: instances were stopped into it and restarted.
    let restarted: u64 = harness.backends().iter().map(|b| b.stats().restarted).sum();
    assert!(restarted > 0, "no pool member was ever restarted");
}

#[tokio::test(start_paused = true)]
async fn run_all_twice_on_the_same_cloud_still_passes() {
    let harness = MemoryHarness::new();
    assert!(conformance::run_all(&harness).await.is_ok());
    let again = conformance::run_all(&harness).await;
    assert!(again.is_ok(), "{:#?}", again.failed);
}

#[tokio::test(start_paused = true)]
async fn run_dispatches_every_listed_behaviour_and_rejects_unknown_names() {
    let harness = MemoryHarness::new();
    for name in BEHAVIOURS {
        let verdict = conformance::run(name, &harness)
            .await
            .expect("listed behaviour runs");
        let want = if *name == POOL_ONLY {
            Ok(Checked::NotSupported("a warm-pool harness"))
        } else {
            Ok(Checked::Passed)
        };
        assert_eq!(verdict, want, "{name}");
    }
    assert!(conformance::run("no_such_behaviour", &harness)
        .await
        .is_none());
}
