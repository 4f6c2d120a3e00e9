//! The warm pool's bound and its stale/surplus sweep, on a mocked [`Ec2Api`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use jenkins_cloud_core::backend::{Backend, CloudId, LaunchBatch, OwnerId};
use jenkins_cloud_core::{AgentTemplate, ErrorClass};
use serde_json::json;

use super::{agent, endpoint, template};
use crate::api::{Filter, InstanceInfo, MockEc2Api};
use crate::error::Ec2Error;
use crate::Ec2Backend;

mod disabled;

/// An instance of owner `ci`, template `linux`, retiring by stop.
fn pooled(id: &str, state: &str, fingerprint: &str) -> InstanceInfo {
    InstanceInfo {
        id: id.into(),
        state: state.into(),
        state_reason_code: None,
        state_reason_message: None,
        launch_time: None,
        tags: vec![
            ("jenkins-cloud:owner".into(), "ci".into()),
            ("jenkins-cloud:template".into(), "linux".into()),
            ("jenkins-cloud:retire".into(), "stop".into()),
            (
                "jenkins-cloud:launch-fingerprint".into(),
                fingerprint.into(),
            ),
        ],
        lifecycle: None,
        instance_type: None,
        subnet_id: None,
    }
}

fn with_tag(mut info: InstanceInfo, key: &str, value: &str) -> InstanceInfo {
    info.tags.retain(|(k, _)| k != key);
    info.tags.push((key.into(), value.into()));
    info
}

fn launched_at(mut info: InstanceInfo, secs: u64) -> InstanceInfo {
    info.launch_time = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    info
}

/// A running agent whose launch tagged a pool bound of `bound`.
fn running(id: &str, bound: u32) -> InstanceInfo {
    with_tag(
        with_tag(
            pooled(id, "running", "fp"),
            "jenkins-cloud:warm-pool-max",
            &bound.to_string(),
        ),
        "jenkins-cloud:secret-parameter",
        &format!("/jenkins-cloud/ci/{id}"),
    )
}

/// The lookup of an instance already started for the launching agent.
fn is_agent_lookup(filters: &[Filter]) -> bool {
    filters.iter().any(|(n, _)| n == "tag:jenkins-cloud:agent")
}

fn is_id_lookup(filters: &[Filter]) -> bool {
    filters.len() == 1 && filters[0].0 == "instance-id"
}

/// The pool filters: owner, template, retire=stop and the given states.
fn assert_pool_filters(filters: &[Filter], states: &[&str]) {
    let value = |name: &str| {
        filters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} filter in {filters:?}"))
    };
    assert_eq!(value("tag:jenkins-cloud:owner"), ["ci"]);
    assert_eq!(value("tag:jenkins-cloud:template"), ["linux"]);
    assert_eq!(value("tag:jenkins-cloud:retire"), ["stop"]);
    assert_eq!(value("instance-state-name"), states);
}

/// A mock answering the retire's id lookup with `agents` and its pool count with `pool`.
fn retire_mock(agents: Vec<InstanceInfo>, pool: Result<Vec<InstanceInfo>, Ec2Error>) -> MockEc2Api {
    let mut api = MockEc2Api::new();
    let pool = Mutex::new(Some(pool));
    api.expect_describe_instances().returning(move |filters| {
        if is_id_lookup(&filters) {
            return Ok(agents.clone());
        }
        assert_pool_filters(&filters, &["stopped", "stopping"]);
        pool.lock()
            .unwrap()
            .take()
            .expect("one pool count per retire")
    });
    api.expect_delete_parameter().returning(|_| Ok(()));
    api.expect_create_tags().returning(|_, _| Ok(()));
    api
}

fn backend(api: MockEc2Api) -> Ec2Backend {
    Ec2Backend::with_api(OwnerId::new("ci").unwrap(), Arc::new(api))
}

fn ids(names: &[&str]) -> Vec<CloudId> {
    names.iter().copied().map(CloudId::from).collect()
}

#[tokio::test]
async fn full_pool_terminates_instead_of_stopping() {
    let mut api = retire_mock(
        vec![running("i-new", 2)],
        Ok(vec![
            pooled("i-p1", "stopped", "fp"),
            pooled("i-p2", "stopping", "fp"),
        ]),
    );
    api.expect_stop_instances().never();
    api.expect_terminate_instances()
        .withf(|ids| ids == &["i-new".to_owned()])
        .times(1)
        .returning(|_| Ok(()));
    let out = backend(api).terminate(&ids(&["i-new"]), "idle").await;
    assert_eq!(out.len(), 1);
    assert!(out[0].result.is_ok(), "{out:?}");
}

#[tokio::test]
async fn partial_room_stops_some_terminates_the_rest_with_outcomes_per_id() {
    // Bound 3, one member already stopped: room for 2 of the 4 retiring agents.
    // A foreign instance in the count answer is not counted.
    let foreign = with_tag(
        pooled("i-x", "stopped", "fp"),
        "jenkins-cloud:owner",
        "other",
    );
    let agents = ["i-a", "i-b", "i-c", "i-d"]
        .map(|id| running(id, 3))
        .to_vec();
    let mut api = retire_mock(agents, Ok(vec![pooled("i-p1", "stopped", "fp"), foreign]));
    api.expect_stop_instances()
        .withf(|ids| ids == &["i-a".to_owned(), "i-b".to_owned()])
        .times(1)
        .returning(|_| {
            Err(Ec2Error::aws(
                "StopInstances",
                Some("RequestLimitExceeded".into()),
                "slow down",
            ))
        });
    api.expect_terminate_instances()
        .withf(|ids| ids == &["i-c".to_owned(), "i-d".to_owned()])
        .times(1)
        .returning(|_| Ok(()));
    let out = backend(api)
        .terminate(&ids(&["i-a", "i-b", "i-c", "i-d"]), "idle")
        .await;
    let got: Vec<(&str, Option<ErrorClass>)> = out
        .iter()
        .map(|o| (o.id.0.as_str(), o.result.as_ref().err().map(|e| e.class())))
        .collect();
    assert_eq!(
        got,
        [
            ("i-a", Some(ErrorClass::Throttled)),
            ("i-b", Some(ErrorClass::Throttled)),
            ("i-c", None),
            ("i-d", None),
        ]
    );
}

#[tokio::test]
async fn failed_pool_count_terminates_everything() {
    let mut api = retire_mock(
        vec![running("i-a", 5), running("i-b", 5)],
        Err(Ec2Error::aws(
            "DescribeInstances",
            Some("InternalError".into()),
            "boom",
        )),
    );
    api.expect_stop_instances().never();
    api.expect_terminate_instances()
        .withf(|ids| ids == &["i-a".to_owned(), "i-b".to_owned()])
        .times(1)
        .returning(|_| Ok(()));
    let out = backend(api).terminate(&ids(&["i-a", "i-b"]), "idle").await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
}

/// A warm-pool template and the launch fingerprint of its instances.
fn warm_template(max: u32) -> (AgentTemplate, String) {
    let t = template(
        json!({"ami": {"id": "ami-1"}, "instance_types": ["m5.large"],
                            "warm_pool": true, "warm_pool_max": max}),
    );
    let jenkins = endpoint();
    let fingerprint = Ec2Backend::launch_fingerprint(
        &t,
        &LaunchBatch {
            template: &t,
            jenkins: &jenkins,
            agents: &[],
        },
        "ami-1",
    );
    (t, fingerprint)
}

/// Calls recorded by [`launch_mock`].
#[derive(Default)]
struct Seen {
    started: Vec<String>,
    terminated: Vec<Vec<String>>,
    deleted: Vec<String>,
}

/// A mock whose pool lookup returns `pool`; RunInstances must not be called.
fn launch_mock(
    pool: Vec<InstanceInfo>,
    terminate: impl Fn() -> Result<(), Ec2Error> + Send + Sync + 'static,
) -> (MockEc2Api, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut api = MockEc2Api::new();
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter().returning(|_, _| Ok(()));
    super::linux_images(&mut api);
    api.expect_run_instance().never();
    api.expect_describe_instances().returning(move |filters| {
        if is_agent_lookup(&filters) {
            return Ok(Vec::new()); // nothing started for this agent yet
        }
        assert_pool_filters(&filters, &["stopped"]);
        Ok(pool.clone())
    });
    api.expect_create_tags().returning(|_, _| Ok(()));
    let s = seen.clone();
    api.expect_start_instances().returning(move |ids| {
        s.lock().unwrap().started.extend(ids);
        Ok(())
    });
    let s = seen.clone();
    api.expect_terminate_instances().returning(move |ids| {
        s.lock().unwrap().terminated.push(ids);
        terminate()
    });
    let s = seen.clone();
    api.expect_delete_parameter().returning(move |name| {
        s.lock().unwrap().deleted.push(name);
        Ok(())
    });
    (api, seen)
}

async fn launch_with(api: MockEc2Api, t: &AgentTemplate) -> Result<CloudId, String> {
    let out = backend(api)
        .launch(LaunchBatch {
            template: t,
            jenkins: &endpoint(),
            agents: &[agent(1)],
        })
        .await;
    assert_eq!(out.len(), 1);
    out.into_iter()
        .next()
        .map(|o| o.result.map_err(|e| e.to_string()))
        .unwrap_or_else(|| Err("no outcome".into()))
}

#[tokio::test]
async fn launch_terminates_stale_members_and_deletes_their_parameters() {
    let (t, fp) = warm_template(5);
    let stale = with_tag(
        pooled("i-stale", "stopped", "old-fingerprint"),
        "jenkins-cloud:secret-parameter",
        "/jenkins-cloud/ci/ci-linux-old",
    );
    let mut broken = pooled("i-broken", "stopped", &fp);
    broken.state_reason_code = Some("Server.InternalError".into());
    let foreign = with_tag(
        pooled("i-foreign", "stopped", "x"),
        "jenkins-cloud:owner",
        "other",
    );
    let pool = vec![stale, broken, foreign, pooled("i-fresh", "stopped", &fp)];
    let (api, seen) = launch_mock(pool, || Ok(()));
    assert_eq!(launch_with(api, &t).await.unwrap().0, "i-fresh");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.started, ["i-fresh"]);
    assert_eq!(
        seen.terminated,
        [vec!["i-stale".to_owned(), "i-broken".to_owned()]]
    );
    assert_eq!(seen.deleted, ["/jenkins-cloud/ci/ci-linux-old"]);
}

#[tokio::test]
async fn failed_stale_termination_does_not_fail_the_launch() {
    let (t, fp) = warm_template(5);
    let pool = vec![
        with_tag(
            pooled("i-stale", "stopped", "old"),
            "jenkins-cloud:secret-parameter",
            "/jenkins-cloud/ci/ci-linux-old",
        ),
        pooled("i-fresh", "stopped", &fp),
    ];
    let (api, seen) = launch_mock(pool, || {
        Err(Ec2Error::aws(
            "TerminateInstances",
            Some("UnauthorizedOperation".into()),
            "denied",
        ))
    });
    assert_eq!(launch_with(api, &t).await.unwrap().0, "i-fresh");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.terminated, [vec!["i-stale".to_owned()]]);
    assert!(
        seen.deleted.is_empty(),
        "the parameter stays with its instance"
    );
}

#[tokio::test]
async fn launch_terminates_the_surplus_over_a_lowered_bound_oldest_first() {
    // Four members, bound 1: the oldest is reused, the next two go, the newest stays.
    let (t, fp) = warm_template(1);
    let pool = vec![
        launched_at(pooled("i-30", "stopped", &fp), 30),
        launched_at(pooled("i-10", "stopped", &fp), 10),
        launched_at(pooled("i-40", "stopped", &fp), 40),
        launched_at(pooled("i-20", "stopped", &fp), 20),
    ];
    let (api, seen) = launch_mock(pool, || Ok(()));
    assert_eq!(launch_with(api, &t).await.unwrap().0, "i-10");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.started, ["i-10"]);
    assert_eq!(
        seen.terminated,
        [vec!["i-20".to_owned(), "i-30".to_owned()]]
    );
}

#[test]
fn fingerprint_covers_the_resolved_image_but_not_warm_pool_max() {
    let jenkins = endpoint();
    let fingerprint = |t: &AgentTemplate, image: &str| {
        let batch = LaunchBatch {
            template: t,
            jenkins: &jenkins,
            agents: &[],
        };
        Ec2Backend::launch_fingerprint(t, &batch, image)
    };
    let spec = |max: Option<u32>| {
        let mut spec = json!({"ami": {"ssm_parameter": "/aws/x"}, "instance_types": ["m5.large"], "warm_pool": true});
        if let Some(max) = max {
            spec["warm_pool_max"] = json!(max);
        }
        template(spec)
    };
    let base = fingerprint(&spec(None), "ami-1");
    assert_eq!(fingerprint(&spec(Some(1)), "ami-1"), base);
    assert_eq!(fingerprint(&spec(Some(7)), "ami-1"), base);
    assert_ne!(
        fingerprint(&spec(None), "ami-2"),
        base,
        "a newer image behind the same selector makes the pool stale"
    );
}

#[tokio::test]
async fn the_bound_of_the_latest_launch_wins_over_the_tagged_one() {
    // Both agents were launched when the bound was 5 (their tag); the template
    // now says 1 and this process launched with it: only one place is left.
    let (t, _) = warm_template(1);
    let mut api = MockEc2Api::new();
    super::linux_images(&mut api);
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter().returning(|_, _| Ok(()));
    api.expect_delete_parameter().returning(|_| Ok(()));
    api.expect_create_tags().returning(|_, _| Ok(()));
    api.expect_describe_instances().returning(|filters| {
        if is_id_lookup(&filters) {
            Ok(vec![running("i-a", 5), running("i-b", 5)])
        } else {
            Ok(vec![]) // the pool is empty
        }
    });
    api.expect_run_instance()
        .withf(|req| {
            req.instance_tags
                .contains(&("jenkins-cloud:warm-pool-max".into(), "1".into()))
        })
        .times(1)
        .returning(|_| Ok("i-c".into()));
    api.expect_stop_instances()
        .withf(|ids| ids == &["i-a".to_owned()])
        .times(1)
        .returning(|_| Ok(()));
    api.expect_terminate_instances()
        .withf(|ids| ids == &["i-b".to_owned()])
        .times(1)
        .returning(|_| Ok(()));
    let b = backend(api);
    let jenkins = endpoint();
    let out = b
        .launch(LaunchBatch {
            template: &t,
            jenkins: &jenkins,
            agents: &[agent(1)],
        })
        .await;
    assert_eq!(out[0].result.as_ref().unwrap().0, "i-c");
    let out = b.terminate(&ids(&["i-a", "i-b"]), "idle").await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
}

#[tokio::test]
async fn a_member_still_tagged_with_its_agent_is_not_reused() {
    // Clearing the agent tag after its stop failed: the loop may still retire it
    // under that agent, so restarting it for another would be unsafe.
    let (t, fp) = warm_template(5);
    // The tagged one is older: it would be picked first were it eligible.
    let tagged = launched_at(
        with_tag(
            pooled("i-tagged", "stopped", &fp),
            "jenkins-cloud:agent",
            "ci-linux-old",
        ),
        10,
    );
    let cleared = launched_at(
        with_tag(
            pooled("i-cleared", "stopped", &fp),
            "jenkins-cloud:agent",
            "",
        ),
        20,
    );
    let (api, seen) = launch_mock(vec![tagged, cleared], || Ok(()));
    assert_eq!(launch_with(api, &t).await.unwrap().0, "i-cleared");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.started, ["i-cleared"]);
    assert!(seen.terminated.is_empty(), "{:?}", seen.terminated);
}

#[tokio::test]
async fn retiring_a_stopped_member_still_tagged_clears_its_tags_again() {
    let tagged = with_tag(
        pooled("i-tagged", "stopped", "fp"),
        "jenkins-cloud:agent",
        "ci-linux-old",
    );
    let untagged = with_tag(
        pooled("i-clean", "stopped", "fp"),
        "jenkins-cloud:agent",
        "",
    );
    let mut api = MockEc2Api::new();
    api.expect_describe_instances()
        .withf(|f| is_id_lookup(f))
        .returning(move |_| Ok(vec![tagged.clone(), untagged.clone()]));
    api.expect_stop_instances().never();
    api.expect_terminate_instances().never();
    api.expect_create_tags()
        .withf(|ids, tags| {
            ids == &["i-tagged".to_owned()]
                && tags.contains(&("jenkins-cloud:agent".to_owned(), String::new()))
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let out = backend(api)
        .terminate(&ids(&["i-tagged", "i-clean"]), "retry")
        .await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
}

#[tokio::test]
async fn a_retried_launch_returns_the_instance_already_started_for_the_agent() {
    // The first warm start succeeded but its answer was lost: the retry (same
    // agent) must not restart a second pool member.
    let (t, fp) = warm_template(5);
    let mut api = MockEc2Api::new();
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter().returning(|_, _| Ok(()));
    super::linux_images(&mut api);
    api.expect_run_instance().never();
    api.expect_start_instances().never();
    let name = agent(1).agent_name;
    let already = with_tag(
        pooled("i-started", "pending", &fp),
        "jenkins-cloud:agent",
        &name,
    );
    api.expect_describe_instances()
        .times(1)
        .returning(move |filters| {
            assert!(is_agent_lookup(&filters), "{filters:?}");
            let states = filters
                .iter()
                .find(|(n, _)| n == "instance-state-name")
                .map(|(_, v)| v.clone());
            assert_eq!(
                states,
                Some(vec!["pending".to_owned(), "running".to_owned()])
            );
            Ok(vec![already.clone()])
        });
    assert_eq!(launch_with(api, &t).await.unwrap().0, "i-started");
}

#[tokio::test]
async fn a_warm_start_that_fails_clears_the_new_agents_tags_again() {
    let (t, fp) = warm_template(5);
    let mut api = MockEc2Api::new();
    super::linux_images(&mut api);
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter().returning(|_, _| Ok(()));
    api.expect_describe_instances().returning(move |filters| {
        if is_agent_lookup(&filters) {
            return Ok(Vec::new());
        }
        Ok(vec![pooled("i-pool", "stopped", &fp)])
    });
    let tags_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = tags_seen.clone();
    api.expect_create_tags().returning(move |ids, tags| {
        seen.lock().unwrap().push((ids, tags));
        Ok(())
    });
    api.expect_start_instances().returning(|_| {
        Err(Ec2Error::aws(
            "StartInstances",
            Some("InsufficientInstanceCapacity".into()),
            "no capacity",
        ))
    });
    api.expect_run_instance()
        .times(1)
        .returning(|_| Ok("i-fresh".to_owned()));
    assert_eq!(launch_with(api, &t).await.unwrap().0, "i-fresh");
    let tags_seen = tags_seen.lock().unwrap();
    let on_pool: Vec<_> = tags_seen
        .iter()
        .filter(|(ids, _)| ids == &["i-pool".to_owned()])
        .collect();
    assert_eq!(
        on_pool.len(),
        2,
        "tagged for the agent, then cleared: {on_pool:?}"
    );
    let last = &on_pool[1].1;
    for key in [
        "jenkins-cloud:agent",
        "Name",
        "jenkins-cloud:secret-parameter",
    ] {
        assert!(
            last.contains(&(key.to_owned(), String::new())),
            "{key} not cleared: {last:?}"
        );
    }
}

#[tokio::test]
async fn a_reused_member_stopped_again_by_ec2_is_released_by_its_retire() {
    // Warm start accepted, then EC2 stops it again (no capacity). Its retire must
    // release the claim: the next launch sees it (here: as stale) instead of
    // skipping it forever.
    let (t, fp) = warm_template(5);
    let mut stopped_by_ec2 = pooled("i-pool", "stopped", &fp);
    stopped_by_ec2.state_reason_code = Some("Server.InsufficientInstanceCapacity".into());
    let stopped_by_ec2 = with_tag(stopped_by_ec2, "jenkins-cloud:agent", "");
    let phase = Arc::new(Mutex::new(0));
    let p = phase.clone();
    let mut api = MockEc2Api::new();
    super::linux_images(&mut api);
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter().returning(|_, _| Ok(()));
    api.expect_delete_parameter().returning(|_| Ok(()));
    api.expect_create_tags().returning(|_, _| Ok(()));
    api.expect_start_instances().times(1).returning(|_| Ok(()));
    let fresh_member = pooled("i-pool", "stopped", &fp);
    api.expect_describe_instances().returning(move |filters| {
        if is_agent_lookup(&filters) {
            return Ok(Vec::new());
        }
        Ok(vec![if *p.lock().unwrap() == 0 {
            fresh_member.clone()
        } else {
            stopped_by_ec2.clone()
        }])
    });
    let terminated = Arc::new(Mutex::new(Vec::new()));
    let seen = terminated.clone();
    api.expect_terminate_instances().returning(move |ids| {
        seen.lock().unwrap().push(ids);
        Ok(())
    });
    api.expect_run_instance()
        .returning(|_| Ok("i-new".to_owned()));
    let b = backend(api);
    let launch = |n: u32| {
        let b = &b;
        let t = &t;
        async move {
            b.launch(LaunchBatch {
                template: t,
                jenkins: &endpoint(),
                agents: &[agent(n)],
            })
            .await
            .remove(0)
            .result
            .unwrap()
        }
    };
    assert_eq!(launch(1).await.0, "i-pool");
    *phase.lock().unwrap() = 1;
    let out = b.terminate(&ids(&["i-pool"]), "lost").await;
    assert!(out[0].result.is_ok(), "{out:?}");
    assert_eq!(launch(2).await.0, "i-new");
    assert_eq!(
        *terminated.lock().unwrap(),
        [vec!["i-pool".to_owned()]],
        "the released member is swept as stale"
    );
}

#[tokio::test]
async fn a_spot_instance_is_terminated_even_with_a_pool() {
    // One-time spot instances cannot be stopped; the pool (room for 5) is not used.
    let mut spot = running("i-spot", 5);
    spot.lifecycle = Some("spot".into());
    let mut api = MockEc2Api::new();
    api.expect_describe_instances()
        .withf(|f| is_id_lookup(f))
        .returning(move |_| Ok(vec![spot.clone()]));
    api.expect_stop_instances().never();
    api.expect_terminate_instances()
        .withf(|ids| ids == &["i-spot".to_owned()])
        .times(1)
        .returning(|_| Ok(()));
    api.expect_delete_parameter().returning(|_| Ok(()));
    let out = backend(api).terminate(&ids(&["i-spot"]), "idle").await;
    assert!(out[0].result.is_ok(), "{out:?}");
}
