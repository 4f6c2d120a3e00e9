//! Platform derivation from the AMI and security groups by name, on a mocked
//! [`Ec2Api`](crate::api::Ec2Api).

use std::sync::{Arc, Mutex};

use jenkins_cloud_core::backend::{Backend, LaunchBatch, OwnerId};
use jenkins_cloud_core::ErrorClass;
use serde_json::json;

use super::{agent, endpoint, mock_runs, template, SECRET};
use crate::api::{ImageInfo, MockEc2Api, SecurityGroupInfo};
use crate::Ec2Backend;

fn image(platform: Option<&str>) -> ImageInfo {
    ImageInfo {
        id: "ami-win".into(),
        creation_date: None,
        root_device_name: Some("/dev/sda1".into()),
        platform: platform.map(str::to_owned),
    }
}

/// Launches one agent per call of `spec` on `backend`, `times` times.
async fn launch_n(backend: &Ec2Backend, spec: serde_json::Value, times: u32) -> Vec<String> {
    let t = template(spec);
    let jenkins = endpoint();
    let mut errors = Vec::new();
    for n in 0..times {
        let agents = [agent(n)];
        let out = backend
            .launch(LaunchBatch {
                template: &t,
                jenkins: &jenkins,
                agents: &agents,
            })
            .await;
        if let Err(e) = &out[0].result {
            assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
            errors.push(e.message().to_owned());
        }
    }
    errors
}

fn backend(api: MockEc2Api) -> Ec2Backend {
    Ec2Backend::with_api(OwnerId::new("ci").unwrap(), Arc::new(api))
}

#[tokio::test(start_paused = true)]
async fn windows_ami_gets_powershell_user_data_and_its_details_are_cached() {
    // Not mock_runs: its Linux images would match first (FIFO).
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut api = MockEc2Api::new();
    let log = seen.clone();
    api.expect_run_instance().returning(move |req| {
        log.lock().unwrap().push(req.clone());
        Ok("i-1".into())
    });
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter().returning(|_, _| Ok(()));
    api.expect_describe_images()
        .times(1)
        .returning(|_, _, _| Ok(vec![image(Some("windows"))]));
    let backend = backend(api);
    let spec = json!({"ami": {"id": "ami-win"}, "instance_types": ["m5.large"]});
    assert!(launch_n(&backend, spec, 2).await.is_empty());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for r in seen.iter() {
        assert!(r.user_data.starts_with("<powershell>"), "{}", r.user_data);
        assert!(!r.user_data.contains(SECRET));
    }
}

#[tokio::test(start_paused = true)]
async fn explicit_platform_wins_and_needs_no_image_lookup() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut api = MockEc2Api::new();
    let log = seen.clone();
    api.expect_run_instance().returning(move |req| {
        log.lock().unwrap().push(req.user_data.clone());
        Ok("i-1".into())
    });
    api.expect_region().return_const("us-east-1".to_owned());
    api.expect_put_secure_parameter().returning(|_, _| Ok(()));
    api.expect_describe_images().never();
    let backend = backend(api);
    for (platform, start) in [("windows", "<powershell>"), ("linux", "#!/bin/bash")] {
        let spec =
            json!({"ami": {"id": "ami-1"}, "instance_types": ["m5.large"], "platform": platform});
        assert!(launch_n(&backend, spec, 1).await.is_empty());
        let last = seen.lock().unwrap().last().cloned().unwrap();
        assert!(last.starts_with(start), "{platform}: {last}");
    }
}

fn group(id: &str, name: &str) -> SecurityGroupInfo {
    SecurityGroupInfo {
        id: id.into(),
        name: name.into(),
        vpc_id: Some("vpc-1".into()),
    }
}

#[tokio::test(start_paused = true)]
async fn group_names_resolve_once_in_the_first_subnets_vpc_and_ids_pass_through() {
    let (mut api, seen) = mock_runs(|_, _| Ok("i-1".into()));
    api.expect_describe_subnets()
        .times(1)
        .withf(|ids| ids == &["subnet-a".to_owned()])
        .returning(|_| Ok(vec![("subnet-a".into(), "vpc-1".into())]));
    api.expect_describe_security_groups()
        .times(1)
        .withf(|filters| {
            filters.contains(&("group-name".into(), vec!["agents".into(), "ssh".into()]))
                && filters.contains(&("vpc-id".into(), vec!["vpc-1".into()]))
        })
        .returning(|_| Ok(vec![group("sg-0ssh", "ssh"), group("sg-0agents", "agents")]));
    let backend = backend(api);
    let spec = json!({"ami": {"id": "ami-1"}, "instance_types": ["m5.large"],
        "subnets": ["subnet-a", "subnet-b"], "security_groups": ["agents", "sg-0fixed", "ssh"]});
    // Two launches, one resolution (cached).
    assert!(launch_n(&backend, spec, 2).await.is_empty());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for r in seen.iter() {
        assert_eq!(r.security_group_ids, ["sg-0agents", "sg-0fixed", "sg-0ssh"]);
    }
}

#[tokio::test(start_paused = true)]
async fn unknown_group_name_fails_every_agent_naming_it_and_is_not_cached() {
    let (mut api, seen) = mock_runs(|_, _| Ok("i-1".into()));
    api.expect_describe_subnets()
        .times(2)
        .returning(|_| Ok(vec![("subnet-a".into(), "vpc-1".into())]));
    api.expect_describe_security_groups()
        .times(2)
        .returning(|_| Ok(vec![group("sg-0agents", "agents")]));
    let backend = backend(api);
    let spec = json!({"ami": {"id": "ami-1"}, "instance_types": ["m5.large"],
        "subnets": ["subnet-a"], "security_groups": ["agents", "no-such-group"]});
    let errors = launch_n(&backend, spec, 2).await;
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert!(
            e.contains("spec.security_groups")
                && e.contains("`no-such-group`")
                && e.contains("vpc-1"),
            "{e}"
        );
        assert!(!e.contains("`agents`"), "{e}");
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing launched");
}
