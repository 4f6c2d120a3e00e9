//! Backend behaviour on a mocked [`Ec2Api`]: fallback chains, classification,
//! spot options, ownership. The real SDK path is tested against moto in `tests/`.

use std::sync::{Arc, Mutex};

use jenkins_cloud_core::backend::{
    AgentLaunch, AgentTransport, Backend, CloudId, JenkinsEndpoint, LaunchBatch, OwnerId,
};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::{AgentTemplate, ErrorClass, Secret};
use serde_json::json;

use crate::api::{InstanceInfo, MockEc2Api, RunRequest};
use crate::error::Ec2Error;
use crate::Ec2Backend;

mod platform;
mod warm_pool;

const SECRET: &str = "5ec8e7aa5ec8e7aa5ec8e7aa5ec8e7aa5ec8e7aa5ec8e7aa5ec8e7aa5ec8e7aa";

fn template(spec: serde_json::Value) -> AgentTemplate {
    let mut t = AgentTemplate::new("linux", LabelSet::parse("linux"));
    t.spec = spec;
    t
}

fn endpoint() -> JenkinsEndpoint {
    JenkinsEndpoint {
        url: "https://ci.example.com/".into(),
        transport: AgentTransport::WebSocket,
    }
}

fn agent(n: u32) -> AgentLaunch {
    AgentLaunch {
        agent_name: format!("ci-linux-{n}"),
        secret: Secret::new(SECRET),
        client_token: format!("token-{n}"),
    }
}

/// A mock whose RunInstances answers from `answer` (by call number) and records requests.
fn mock_runs(
    answer: impl Fn(usize, &RunRequest) -> Result<String, Ec2Error> + Send + Sync + 'static,
) -> (MockEc2Api, Arc<Mutex<Vec<RunRequest>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut api = MockEc2Api::new();
    let log = seen.clone();
    api.expect_run_instance().returning(move |req| {
        let mut log = log.lock().unwrap();
        let n = log.len();
        log.push(req.clone());
        answer(n, &req)
    });
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter().returning(|_, _| Ok(()));
    api.expect_delete_parameter().returning(|_| Ok(()));
    linux_images(&mut api);
    (api, seen)
}

/// DescribeImages by id answers a Linux image with root device `/dev/xvda`
/// (launches look the platform up when the spec names none).
pub(crate) fn linux_images(api: &mut MockEc2Api) {
    api.expect_describe_images().returning(|ids, _, _| {
        Ok(vec![crate::api::ImageInfo {
            id: ids.first().cloned().unwrap_or_else(|| "ami-1".into()),
            creation_date: None,
            root_device_name: Some("/dev/xvda".into()),
            platform: None,
        }])
    });
}

fn capacity(code: &str) -> Ec2Error {
    Ec2Error::aws(
        "RunInstances",
        Some(code.into()),
        "We currently do not have sufficient capacity",
    )
}

async fn launch_one(
    api: MockEc2Api,
    spec: serde_json::Value,
) -> Result<CloudId, jenkins_cloud_core::BackendError> {
    let backend = Ec2Backend::with_api(OwnerId::new("ci").unwrap(), Arc::new(api));
    let t = template(spec);
    let jenkins = endpoint();
    let agents = [agent(1)];
    let mut out = backend
        .launch(LaunchBatch {
            template: &t,
            jenkins: &jenkins,
            agents: &agents,
        })
        .await;
    assert_eq!(out.len(), 1);
    out.remove(0).result
}

#[tokio::test(start_paused = true)]
async fn types_and_subnets_fall_back_in_order_with_distinct_tokens() {
    let (api, seen) = mock_runs(|n, _| {
        if n < 3 {
            Err(capacity("InsufficientInstanceCapacity"))
        } else {
            Ok("i-4".into())
        }
    });
    let id = launch_one(
        api,
        json!({"ami": {"id": "ami-1"}, "instance_types": ["m6i.large", "m5.large"], "subnets": ["subnet-a", "subnet-b"]}),
    )
    .await
    .unwrap();
    assert_eq!(id.0, "i-4");
    let seen = seen.lock().unwrap();
    let tried: Vec<(String, String)> = seen
        .iter()
        .map(|r| (r.instance_type.clone(), r.subnet_id.clone().unwrap()))
        .collect();
    // Both subnets for the first type (starting subnet picked from the token), then the second type.
    assert_eq!(tried[0].0, "m6i.large");
    assert_eq!(tried[1].0, "m6i.large");
    assert_ne!(tried[0].1, tried[1].1);
    assert_eq!(tried[2], ("m5.large".to_owned(), tried[0].1.clone()));
    assert_eq!(tried[3], ("m5.large".to_owned(), tried[1].1.clone()));
    assert_eq!(seen[0].client_token, "token-1");
    let tokens: std::collections::HashSet<_> =
        seen.iter().map(|r| r.client_token.clone()).collect();
    assert_eq!(tokens.len(), 4);
    assert!(seen
        .iter()
        .all(|r| r.client_token.len() <= 64 && r.spot.is_none()));
}

#[tokio::test(start_paused = true)]
async fn spot_falls_back_to_on_demand_without_spot_options() {
    let (api, seen) = mock_runs(|_, req| {
        if req.spot.is_some() {
            Err(capacity("InsufficientInstanceCapacity"))
        } else {
            Ok("i-od".into())
        }
    });
    let id = launch_one(
        api,
        json!({"ami": {"id": "ami-1"}, "instance_types": ["m6i.large", "m5.large"],
               "spot": {"max_price": "0.05"}}),
    )
    .await
    .unwrap();
    assert_eq!(id.0, "i-od");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].spot.as_ref().unwrap().max_price.as_deref(),
        Some("0.05")
    );
    assert!(seen[1].spot.is_some());
    assert_eq!(seen[2].spot, None);
    assert_eq!(seen[2].instance_type, "m6i.large");
}

#[tokio::test(start_paused = true)]
async fn spot_wide_errors_skip_the_other_spot_attempts() {
    let (api, seen) = mock_runs(|_, req| {
        if req.spot.is_some() {
            Err(capacity("MaxSpotInstanceCountExceeded"))
        } else {
            Ok("i-od".into())
        }
    });
    launch_one(api, json!({"ami": {"id": "ami-1"}, "instance_types": ["a1.large", "b1.large", "c1.large"], "spot": {}}))
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].spot.is_some() && seen[1].spot.is_none());
}

#[tokio::test(start_paused = true)]
async fn spot_without_fallback_reports_capacity_listing_attempts() {
    let (api, _) = mock_runs(|_, _| Err(capacity("InsufficientInstanceCapacity")));
    let err = launch_one(
        api,
        json!({"ami": {"id": "ami-1"}, "instance_types": ["m5.large"], "spot": {"fallback_to_on_demand": false}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Capacity);
    assert!(err.message().contains("spot m5.large"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn throttling_backs_off_and_repeats_the_same_request() {
    let (api, seen) = mock_runs(|n, _| {
        if n < 2 {
            Err(Ec2Error::aws(
                "RunInstances",
                Some("RequestLimitExceeded".into()),
                "Request limit exceeded.",
            ))
        } else {
            Ok("i-1".into())
        }
    });
    let start = tokio::time::Instant::now();
    launch_one(
        api,
        json!({"ami": {"id": "ami-1"}, "instance_types": ["m5.large"]}),
    )
    .await
    .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.client_token == "token-1"));
    assert!(start.elapsed() >= std::time::Duration::from_millis(250 + 500));
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_stop_at_once_and_clean_up_the_parameter() {
    let seen = Arc::new(Mutex::new(0));
    let mut api = MockEc2Api::new();
    linux_images(&mut api);
    let count = seen.clone();
    api.expect_run_instance().returning(move |_| {
        *count.lock().unwrap() += 1;
        Err(Ec2Error::aws(
            "RunInstances",
            Some("InvalidAMIID.NotFound".into()),
            "The image id '[ami-1]' does not exist",
        ))
    });
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter()
        .withf(|name, value| name == "/jenkins-cloud/ci/ci-linux-1" && value.expose() == SECRET)
        .times(1)
        .returning(|_, _| Ok(()));
    api.expect_delete_parameter()
        .withf(|name| name == "/jenkins-cloud/ci/ci-linux-1")
        .times(1)
        .returning(|_| Ok(()));
    let err = launch_one(
        api,
        json!({"ami": {"id": "ami-1"}, "instance_types": ["m5.large", "m6i.large"]}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.message().contains("InvalidAMIID.NotFound"));
    assert_eq!(*seen.lock().unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn request_carries_profile_imds_volume_and_tags_but_no_secret() {
    let (api, seen) = mock_runs(|_, _| Ok("i-1".into()));
    launch_one(
        api,
        json!({"ami": {"id": "ami-1"}, "instance_types": ["m5.large"], "instance_profile": "jenkins-agent",
               "metadata": {"hop_limit": 2},
               "root_volume": {"size_gib": 100, "volume_type": "gp3", "throughput": 250, "encrypted": true},
               "tags": {"team": "ci"}}),
    )
    .await
    .unwrap();
    let seen = seen.lock().unwrap();
    let r = &seen[0];
    assert_eq!(r.instance_profile.as_deref(), Some("jenkins-agent"));
    assert!(r.require_imds_tokens && r.metadata_tags);
    assert_eq!(r.hop_limit, 2);
    let root = r.root_volume.as_ref().unwrap();
    assert_eq!(
        (root.device_name.as_str(), root.size_gib, root.throughput),
        ("/dev/xvda", Some(100), Some(250))
    );
    assert!(r.resource_tags.contains(&("team".into(), "ci".into())));
    assert!(r
        .instance_tags
        .contains(&("jenkins-cloud:owner".into(), "ci".into())));
    assert!(r.instance_tags.contains(&(
        "jenkins-cloud:secret-parameter".into(),
        "/jenkins-cloud/ci/ci-linux-1".into()
    )));
    assert!(!r.user_data.contains(SECRET));
    assert!(!format!("{r:?}").contains(SECRET));
}

#[tokio::test]
async fn invalid_spec_fails_every_agent_before_any_call() {
    let api = MockEc2Api::new(); // any call would panic: no expectations
    let backend = Ec2Backend::with_api(OwnerId::new("ci").unwrap(), Arc::new(api));
    let t = template(json!({"ami": {"id": "x"}, "instance_types": []}));
    let jenkins = endpoint();
    let agents = [agent(1), agent(2)];
    let out = backend
        .launch(LaunchBatch {
            template: &t,
            jenkins: &jenkins,
            agents: &agents,
        })
        .await;
    assert_eq!(out.len(), 2);
    for (o, a) in out.iter().zip(&agents) {
        assert_eq!(o.agent_name, a.agent_name);
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(
            e.message().contains("spec.ami.id") && e.message().contains("spec.instance_types"),
            "{e}"
        );
    }
}

fn instance(id: &str, owner: Option<&str>, state: &str, retire: &str) -> InstanceInfo {
    let mut tags = vec![("jenkins-cloud:retire".to_owned(), retire.to_owned())];
    if let Some(o) = owner {
        tags.push(("jenkins-cloud:owner".into(), o.into()));
    }
    InstanceInfo {
        id: id.into(),
        state: state.into(),
        state_reason_code: None,
        state_reason_message: None,
        launch_time: None,
        tags,
        lifecycle: None,
        instance_type: None,
        subnet_id: None,
    }
}

#[tokio::test]
async fn terminate_refuses_foreign_stops_warm_and_reports_each() {
    let mut api = MockEc2Api::new();
    api.expect_describe_instances().returning(|_| {
        Ok(vec![
            instance("i-mine", Some("ci"), "running", "terminate"),
            instance("i-foreign", Some("other"), "running", "terminate"),
            instance("i-untagged", None, "running", "terminate"),
            {
                // Pool members carry their template (one without could never be reused: terminated).
                let mut warm = instance("i-warm", Some("ci"), "running", "stop");
                warm.tags
                    .push(("jenkins-cloud:template".into(), "linux".into()));
                warm
            },
        ])
    });
    api.expect_terminate_instances()
        .withf(|ids| ids == &["i-mine".to_owned()])
        .times(1)
        .returning(|_| Ok(()));
    api.expect_stop_instances()
        .withf(|ids| ids == &["i-warm".to_owned()])
        .times(1)
        .returning(|_| Ok(()));
    api.expect_create_tags().returning(|_, _| Ok(()));
    let backend = Ec2Backend::with_api(OwnerId::new("ci").unwrap(), Arc::new(api));
    let ids: Vec<CloudId> = ["i-mine", "i-foreign", "i-gone", "i-untagged", "i-warm"]
        .into_iter()
        .map(CloudId::from)
        .collect();
    let out = backend.terminate(&ids, "idle").await;
    let classes: Vec<_> = out
        .iter()
        .map(|o| o.result.as_ref().err().map(|e| e.class()))
        .collect();
    assert_eq!(
        out.iter().map(|o| o.id.0.as_str()).collect::<Vec<_>>(),
        ["i-mine", "i-foreign", "i-gone", "i-untagged", "i-warm"]
    );
    assert_eq!(
        classes,
        [
            None,
            Some(ErrorClass::Permanent),
            None,
            Some(ErrorClass::Permanent),
            None
        ]
    );
}

#[tokio::test]
async fn failed_terminate_call_is_reported_per_id() {
    let mut api = MockEc2Api::new();
    api.expect_describe_instances()
        .returning(|_| Ok(vec![instance("i-1", Some("ci"), "running", "terminate")]));
    api.expect_terminate_instances().returning(|_| {
        Err(Ec2Error::aws(
            "TerminateInstances",
            Some("RequestLimitExceeded".into()),
            "slow down",
        ))
    });
    let backend = Ec2Backend::with_api(OwnerId::new("ci").unwrap(), Arc::new(api));
    let out = backend
        .terminate(&[CloudId::from("i-1"), CloudId::from("i-2")], "idle")
        .await;
    assert_eq!(
        out[0].result.as_ref().unwrap_err().class(),
        ErrorClass::Throttled
    );
    assert!(out[1].result.is_ok());
}
