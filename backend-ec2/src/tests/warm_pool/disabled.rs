//! A template whose `warm_pool` was turned off: its launches empty the pool.

use std::sync::{Arc, Mutex};

use jenkins_cloud_core::backend::{Backend, LaunchBatch};
use serde_json::json;

use super::super::{agent, endpoint, template};
use super::{assert_pool_filters, backend, pooled, with_tag};
use crate::api::{InstanceInfo, MockEc2Api};
use crate::error::Ec2Error;

/// Calls recorded by [`mock`].
#[derive(Default)]
struct Seen {
    lookups: usize,
    terminated: Vec<Vec<String>>,
    deleted: Vec<String>,
    runs: usize,
}

/// A mock whose pool lookups answer from `answers`, in turn; RunInstances succeeds.
fn mock(answers: Vec<Result<Vec<InstanceInfo>, Ec2Error>>) -> (MockEc2Api, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let answers = Mutex::new(answers.into_iter());
    let mut api = MockEc2Api::new();
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter().returning(|_, _| Ok(()));
    let s = seen.clone();
    api.expect_describe_instances().returning(move |filters| {
        assert_pool_filters(&filters, &["stopped", "stopping"]);
        s.lock().unwrap().lookups += 1;
        answers
            .lock()
            .unwrap()
            .next()
            .expect("no more pool lookups than answers")
    });
    let s = seen.clone();
    api.expect_run_instance().returning(move |_| {
        let mut s = s.lock().unwrap();
        s.runs += 1;
        Ok(format!("i-new{}", s.runs))
    });
    let s = seen.clone();
    api.expect_terminate_instances().returning(move |ids| {
        s.lock().unwrap().terminated.push(ids);
        Ok(())
    });
    let s = seen.clone();
    api.expect_delete_parameter().returning(move |name| {
        s.lock().unwrap().deleted.push(name);
        Ok(())
    });
    (api, seen)
}

/// Launches `count` agents of a template without warm pool, one per call,
/// each of which must succeed.
async fn launch_one_by_one(api: MockEc2Api, count: u32) {
    let backend = backend(api);
    let t = template(json!({"ami": {"id": "ami-1"}, "instance_types": ["m5.large"]}));
    let jenkins = endpoint();
    for n in 1..=count {
        let out = backend
            .launch(LaunchBatch {
                template: &t,
                jenkins: &jenkins,
                agents: &[agent(n)],
            })
            .await;
        assert!(out[0].result.is_ok(), "launch {n}: {out:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn launches_terminate_the_left_over_pool_until_it_is_empty_then_stop_looking() {
    let idle = with_tag(
        pooled("i-idle", "stopped", "fp"),
        "jenkins-cloud:secret-parameter",
        "/jenkins-cloud/ci/ci-linux-old",
    );
    let stopping = pooled("i-stopping", "stopping", "fp");
    let still_agent = with_tag(
        pooled("i-agent", "stopped", "fp"),
        "jenkins-cloud:agent",
        "ci-linux-old2",
    );
    let foreign = with_tag(
        pooled("i-foreign", "stopped", "fp"),
        "jenkins-cloud:owner",
        "other",
    );
    let (api, seen) = mock(vec![
        Ok(vec![idle, stopping.clone(), still_agent, foreign]),
        // The retire of the agent cleared its tag; the stopping one stopped.
        Ok(vec![
            pooled("i-agent", "stopped", "fp"),
            pooled("i-stopping", "stopped", "fp"),
        ]),
        Ok(Vec::new()),
    ]);
    launch_one_by_one(api, 4).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.runs, 4, "every agent gets a new instance");
    assert_eq!(
        seen.terminated,
        [
            vec!["i-idle".to_owned()],
            vec!["i-agent".to_owned(), "i-stopping".to_owned()]
        ],
        "the stopping member and the one still tagged with an agent wait for a later launch; the foreign one is never touched"
    );
    assert_eq!(seen.deleted, ["/jenkins-cloud/ci/ci-linux-old"]);
    assert_eq!(
        seen.lookups, 3,
        "the fourth launch does not look: the pool was found empty"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_lookup_does_not_fail_the_launch_and_is_tried_again() {
    let (api, seen) = mock(vec![
        Err(Ec2Error::aws(
            "DescribeInstances",
            Some("RequestLimitExceeded".into()),
            "slow down",
        )),
        Ok(vec![pooled("i-idle", "stopped", "fp")]),
    ]);
    launch_one_by_one(api, 2).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.runs, 2);
    assert_eq!(seen.terminated, [vec!["i-idle".to_owned()]]);
}
