//! Templates that keep no pool (removed, or `warm_pool` off): `prune_pools`
//! empties their pools, and their retires terminate from then on.

use std::sync::{Arc, Mutex};

use jenkins_cloud_core::backend::Backend;

use super::{backend, ids, pooled, running, with_tag};
use crate::api::MockEc2Api;
use crate::error::Ec2Error;

/// Calls recorded by the mocks.
#[derive(Default)]
struct Seen {
    terminated: Vec<Vec<String>>,
    deleted: Vec<String>,
}

#[tokio::test]
async fn prune_empties_the_pools_of_templates_that_keep_none() {
    let in_template = |id: &str, state: &str, template: &str| {
        with_tag(pooled(id, state, "fp"), "jenkins-cloud:template", template)
    };
    let found = vec![
        with_tag(
            in_template("i-removed", "stopped", "removed"),
            "jenkins-cloud:secret-parameter",
            "/jenkins-cloud/ci/ci-removed-1",
        ),
        in_template("i-off", "stopping", "linux"),
        in_template("i-kept", "stopped", "docker"),
        with_tag(
            in_template("i-agent", "stopped", "removed"),
            "jenkins-cloud:agent",
            "ci-removed-2",
        ),
        with_tag(
            in_template("i-foreign", "stopped", "removed"),
            "jenkins-cloud:owner",
            "other",
        ),
    ];
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut api = MockEc2Api::new();
    api.expect_describe_instances()
        .times(1)
        .returning(move |filters| {
            let value = |name: &str| {
                filters
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(
                value("tag:jenkins-cloud:owner"),
                Some(vec!["ci".to_owned()])
            );
            assert_eq!(
                value("tag:jenkins-cloud:retire"),
                Some(vec!["stop".to_owned()])
            );
            assert_eq!(value("tag:jenkins-cloud:template"), None, "every template");
            Ok(found.clone())
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
    let keep = ["docker".to_owned()].into_iter().collect();
    let pruned = backend(api).prune_pools(&keep).await.unwrap();
    let pruned: Vec<&str> = pruned.iter().map(|id| id.0.as_str()).collect();
    assert_eq!(pruned, ["i-off", "i-removed"]);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.terminated,
        [vec!["i-off".to_owned()], vec!["i-removed".to_owned()]],
        "one call per template; the kept pool, the agent's instance and the foreign one stay"
    );
    assert_eq!(seen.deleted, ["/jenkins-cloud/ci/ci-removed-1"]);
}

#[tokio::test]
async fn prune_reports_a_failed_lookup_and_what_a_failed_terminate_left() {
    let mut api = MockEc2Api::new();
    api.expect_describe_instances().times(1).returning(|_| {
        Err(Ec2Error::aws(
            "DescribeInstances",
            Some("UnauthorizedOperation".into()),
            "denied",
        ))
    });
    let err = backend(api)
        .prune_pools(&Default::default())
        .await
        .unwrap_err();
    assert!(err.message().contains("UnauthorizedOperation"), "{err}");

    let mut api = MockEc2Api::new();
    api.expect_describe_instances()
        .returning(|_| Ok(vec![pooled("i-1", "stopped", "fp")]));
    api.expect_terminate_instances().times(1).returning(|_| {
        Err(Ec2Error::aws(
            "TerminateInstances",
            Some("RequestLimitExceeded".into()),
            "slow down",
        ))
    });
    let pruned = backend(api).prune_pools(&Default::default()).await.unwrap();
    assert!(pruned.is_empty(), "nothing was terminated: {pruned:?}");
}

#[tokio::test]
async fn after_a_prune_agents_of_templates_without_pool_retire_for_good() {
    // `running` agents carry a tagged bound of 5 from a launch with a pool.
    let mut api = MockEc2Api::new();
    api.expect_describe_instances().returning(|filters| {
        let id_lookup = filters.len() == 1 && filters[0].0 == "instance-id";
        Ok(if id_lookup {
            vec![running("i-a", 5)]
        } else {
            Vec::new()
        })
    });
    api.expect_create_tags().returning(|_, _| Ok(()));
    api.expect_delete_parameter().returning(|_| Ok(()));
    api.expect_stop_instances().never();
    api.expect_terminate_instances()
        .withf(|ids| ids == &["i-a".to_owned()])
        .times(1)
        .returning(|_| Ok(()));
    let backend = backend(api);
    let keep = ["docker".to_owned()].into_iter().collect();
    assert!(backend.prune_pools(&keep).await.unwrap().is_empty());
    let out = backend.terminate(&ids(&["i-a"]), "idle").await;
    assert!(out[0].result.is_ok(), "{out:?}");
}
