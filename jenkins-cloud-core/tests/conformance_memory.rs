//! The memory backend passes the conformance suite: one test per behaviour, and
//! the whole suite on one shared harness.

use jenkins_cloud_core::memory::MemoryHarness;
use jenkins_cloud_core::testkit::conformance::{self, Checked, BEHAVIOURS};

mod per_behaviour {
    use super::MemoryHarness;
    jenkins_cloud_core::conformance_tests!(
        #[tokio::test(start_paused = true)]
        MemoryHarness::new()
    );
}

#[tokio::test(start_paused = true)]
async fn run_all_passes_every_behaviour_on_one_harness() {
    let report = conformance::run_all(&MemoryHarness::new()).await;
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert!(
        report.not_supported.is_empty(),
        "{:?}",
        report.not_supported
    );
    assert_eq!(report.passed, BEHAVIOURS);
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
        assert_eq!(verdict, Ok(Checked::Passed), "{name}");
    }
    assert!(conformance::run("no_such_behaviour", &harness)
        .await
        .is_none());
}
