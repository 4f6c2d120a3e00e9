//! The EC2 backend against moto: the real SDK path.

mod common;

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, HttpTokensState, InstanceMetadataTagsState};
use common::{agent, harness, launch, secret_of};
use jenkins_cloud_core::backend::{Backend, CloudId, CloudState};
use jenkins_cloud_core::ErrorClass;
use jenkins_cloud_ec2::api::Ec2Api;
use jenkins_cloud_ec2::launch::{resolve_ami, resolve_image, ImageCache};
use jenkins_cloud_ec2::spec::{AmiSelector, Platform};
use serde_json::json;

#[path = "moto/groups.rs"]
mod groups;
#[path = "moto/windows.rs"]
mod windows;

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

async fn raw_instance(h: &common::Harness, id: &str) -> aws_sdk_ec2::types::Instance {
    let out = h
        .ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0].clone()
}

#[tokio::test]
async fn launch_describe_terminate_with_tags_imds_and_ssm_secret() {
    let h = harness().await;
    let t = h.template(json!({"metadata": {"hop_limit": 2}})).await;
    let agents = [agent("ci-linux-aaa"), agent("ci-linux-bbb")];
    let out = launch(&h.backend, &t, &agents).await;
    assert_eq!(out.len(), 2);
    let ids: Vec<CloudId> = out
        .iter()
        .map(|o| o.result.clone().expect("launched"))
        .collect();
    assert_eq!(out[0].agent_name, "ci-linux-aaa");
    assert_ne!(ids[0], ids[1]);

    let seen = h.backend.describe(&ids).await.unwrap();
    assert_eq!(seen.len(), 2);
    for (inst, a) in seen.iter().zip(&agents) {
        assert_eq!(inst.agent_name, a.agent_name);
        assert_eq!(inst.template, "linux");
        assert_eq!(inst.state, CloudState::Running);
        assert!(inst.launched_at.is_some());
    }

    let raw = raw_instance(&h, &ids[0].0).await;
    let md = raw.metadata_options().expect("metadata options");
    assert_eq!(md.http_tokens(), Some(&HttpTokensState::Required));
    assert_eq!(md.http_put_response_hop_limit(), Some(2));
    assert_eq!(
        md.instance_metadata_tags(),
        Some(&InstanceMetadataTagsState::Enabled)
    );
    assert_eq!(tag(raw.tags(), "jenkins-cloud:owner"), Some("ci"));
    assert_eq!(tag(raw.tags(), "jenkins-cloud:agent"), Some("ci-linux-aaa"));
    assert_eq!(tag(raw.tags(), "team"), Some("ci"));
    assert_eq!(tag(raw.tags(), "Name"), Some("ci-linux-aaa"));
    assert_eq!(
        tag(raw.tags(), "jenkins-cloud:secret-parameter"),
        Some("/jenkins-cloud/ci/ci-linux-aaa")
    );
    assert!(raw.instance_lifecycle().is_none(), "on-demand launch");

    // Volumes carry the owner tag too.
    let vols = h
        .ec2
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("attachment.instance-id")
                .values(&ids[0].0)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(!vols.volumes().is_empty());
    for v in vols.volumes() {
        assert_eq!(
            tag(v.tags(), "jenkins-cloud:owner"),
            Some("ci"),
            "volume tags: {:?}",
            v.tags()
        );
        assert_eq!(tag(v.tags(), "team"), Some("ci"));
    }

    // User data names the agent and the parameter, never the secret.
    let attr = h
        .ec2
        .describe_instance_attribute()
        .instance_id(&ids[0].0)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = attr.user_data().and_then(|u| u.value()).expect("user data");
    let user_data = String::from_utf8(aws_smithy_types::base64::decode(encoded).unwrap()).unwrap();
    assert!(
        user_data.contains("'ci-linux-aaa'")
            && user_data.contains("'/jenkins-cloud/ci/ci-linux-aaa'")
    );
    assert!(!user_data.contains(&secret_of("ci-linux-aaa")));

    // The secret sits in a SecureString parameter.
    let p = h
        .ssm
        .get_parameter()
        .name("/jenkins-cloud/ci/ci-linux-aaa")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let p = p.parameter().unwrap();
    assert_eq!(p.value(), Some(secret_of("ci-linux-aaa").as_str()));
    assert_eq!(
        p.r#type(),
        Some(&aws_sdk_ssm::types::ParameterType::SecureString)
    );

    // Terminate, twice: both Ok; the parameter goes.
    for _ in 0..2 {
        let out = h.backend.terminate(&ids, "idle").await;
        assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
        assert_eq!(
            out.iter().map(|o| &o.id).collect::<Vec<_>>(),
            ids.iter().collect::<Vec<_>>()
        );
    }
    let seen = h.backend.describe(&ids).await.unwrap();
    assert!(
        seen.iter().all(|i| i.state == CloudState::Terminated),
        "{seen:?}"
    );
    let gone = h
        .ssm
        .get_parameter()
        .name("/jenkins-cloud/ci/ci-linux-aaa")
        .send()
        .await;
    assert!(gone.is_err(), "parameter should be deleted");
}

#[tokio::test]
async fn owner_scoping_with_foreign_instances() {
    let h = harness().await;
    let t = h.template(json!({})).await;
    let ours = launch(&h.backend, &t, &[agent("ci-linux-own")]).await;
    let ours = ours[0].result.clone().unwrap();
    let other = h.other_owner("other");
    let theirs = launch(&other, &t, &[agent("other-linux-x")]).await;
    let theirs = theirs[0].result.clone().unwrap();
    let untagged = h
        .ec2
        .run_instances()
        .image_id(h.some_ami().await)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let untagged = CloudId(untagged.instances()[0].instance_id().unwrap().to_owned());

    let listed = h.backend.list_owned().await.unwrap();
    assert_eq!(listed.iter().map(|i| &i.id).collect::<Vec<_>>(), [&ours]);
    let described = h
        .backend
        .describe(&[ours.clone(), theirs.clone(), untagged.clone()])
        .await
        .unwrap();
    assert_eq!(described.iter().map(|i| &i.id).collect::<Vec<_>>(), [&ours]);

    let out = h
        .backend
        .terminate(&[theirs.clone(), untagged.clone()], "cleanup")
        .await;
    for o in &out {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.message().contains("not owned"), "{e}");
    }
    for id in [&theirs, &untagged] {
        let raw = raw_instance(&h, &id.0).await;
        assert_eq!(
            raw.state().and_then(|s| s.name()).map(|n| n.as_str()),
            Some("running"),
            "{id} was touched"
        );
    }
    assert_eq!(other.list_owned().await.unwrap().len(), 1);
}

#[tokio::test]
async fn warm_pool_stops_and_reuses_instances() {
    let h = harness().await;
    let t = h.template(json!({"warm_pool": true})).await;
    let first = launch(&h.backend, &t, &[agent("ci-linux-one")]).await;
    let id = first[0].result.clone().unwrap();

    let out = h.backend.terminate(std::slice::from_ref(&id), "idle").await;
    assert!(out[0].result.is_ok());
    let seen = h.backend.describe(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(seen[0].state, CloudState::Stopped);
    assert_eq!(seen[0].agent_name, "", "a pooled instance is no agent");
    assert!(h
        .ssm
        .get_parameter()
        .name("/jenkins-cloud/ci/ci-linux-one")
        .send()
        .await
        .is_err());
    // Terminating a pooled instance again is a no-op.
    assert!(
        h.backend.terminate(std::slice::from_ref(&id), "idle").await[0]
            .result
            .is_ok()
    );
    assert_eq!(
        h.backend.describe(std::slice::from_ref(&id)).await.unwrap()[0].state,
        CloudState::Stopped
    );

    let second = launch(&h.backend, &t, &[agent("ci-linux-two")]).await;
    assert_eq!(
        second[0].result.clone().unwrap(),
        id,
        "the stopped instance is reused"
    );
    let raw = raw_instance(&h, &id.0).await;
    assert_eq!(
        raw.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("running")
    );
    assert_eq!(tag(raw.tags(), "jenkins-cloud:agent"), Some("ci-linux-two"));
    assert_eq!(
        tag(raw.tags(), "jenkins-cloud:secret-parameter"),
        Some("/jenkins-cloud/ci/ci-linux-two")
    );
    let p = h
        .ssm
        .get_parameter()
        .name("/jenkins-cloud/ci/ci-linux-two")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        p.parameter().unwrap().value(),
        Some(secret_of("ci-linux-two").as_str())
    );

    // With the pool empty, the next agent gets a new instance.
    let third = launch(&h.backend, &t, &[agent("ci-linux-three")]).await;
    assert_ne!(third[0].result.clone().unwrap(), id);

    let out = h
        .backend
        .terminate_for_good(std::slice::from_ref(&id))
        .await;
    assert!(out[0].result.is_ok());
    assert_eq!(
        h.backend.describe(std::slice::from_ref(&id)).await.unwrap()[0].state,
        CloudState::Terminated
    );
}

async fn states_of(h: &common::Harness, ids: &[CloudId]) -> Vec<CloudState> {
    let seen = h.backend.describe(ids).await.unwrap();
    ids.iter()
        .map(|id| {
            seen.iter()
                .find(|i| &i.id == id)
                .map(|i| i.state.clone())
                .unwrap_or_else(|| panic!("{id} not described"))
        })
        .collect()
}

#[tokio::test]
async fn warm_pool_max_keeps_two_stopped_and_terminates_the_rest() {
    let h = harness().await;
    let t = h
        .template(json!({"warm_pool": true, "warm_pool_max": 2}))
        .await;
    let agents: Vec<_> = (1..=4).map(|n| agent(&format!("ci-linux-w{n}"))).collect();
    let out = launch(&h.backend, &t, &agents).await;
    let ids: Vec<CloudId> = out
        .iter()
        .map(|o| o.result.clone().expect("launched"))
        .collect();

    let out = h.backend.terminate(&ids, "idle").await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(
        out.iter().map(|o| &o.id).collect::<Vec<_>>(),
        ids.iter().collect::<Vec<_>>()
    );
    // Input order decides: the first two fill the pool, the others go.
    assert_eq!(
        states_of(&h, &ids).await,
        [
            CloudState::Stopped,
            CloudState::Stopped,
            CloudState::Terminated,
            CloudState::Terminated
        ]
    );
    for a in &agents {
        let gone = h
            .ssm
            .get_parameter()
            .name(format!("/jenkins-cloud/ci/{}", a.agent_name))
            .send()
            .await;
        assert!(
            gone.is_err(),
            "parameter of {} should be deleted",
            a.agent_name
        );
    }

    // A later launch reuses a stopped member (the pool then holds one).
    let again = launch(&h.backend, &t, &[agent("ci-linux-w5")]).await;
    let reused = again[0].result.clone().unwrap();
    assert!(ids[..2].contains(&reused), "{reused} is not a pool member");
    assert_eq!(
        states_of(&h, std::slice::from_ref(&reused)).await,
        [CloudState::Running]
    );

    // Retiring it again fits: back to two stopped.
    let out = h
        .backend
        .terminate(std::slice::from_ref(&reused), "idle")
        .await;
    assert!(out[0].result.is_ok());
    assert_eq!(
        states_of(&h, &ids[..2]).await,
        [CloudState::Stopped, CloudState::Stopped]
    );
}

#[tokio::test]
async fn stale_pool_members_are_terminated_by_the_next_launch() {
    let h = harness().await;
    let old = h.template(json!({"warm_pool": true})).await;
    let first = launch(&h.backend, &old, &[agent("ci-linux-s1")]).await;
    let stale = first[0].result.clone().unwrap();
    assert!(h
        .backend
        .terminate(std::slice::from_ref(&stale), "idle")
        .await[0]
        .result
        .is_ok());
    assert_eq!(
        states_of(&h, std::slice::from_ref(&stale)).await,
        [CloudState::Stopped]
    );

    // The operator changes the instance types: the stopped one can never be reused.
    let mut new = old.clone();
    new.spec["instance_types"] = json!(["t3.large"]);
    let second = launch(&h.backend, &new, &[agent("ci-linux-s2")]).await;
    let fresh = second[0].result.clone().unwrap();
    assert_ne!(fresh, stale);
    assert_eq!(
        states_of(&h, &[stale, fresh]).await,
        [CloudState::Terminated, CloudState::Running]
    );
}

#[tokio::test]
async fn prune_empties_a_pool_the_configuration_dropped_and_its_agents_then_terminate() {
    let h = harness().await;
    let pooled = h.template(json!({"warm_pool": true})).await;
    let out = launch(
        &h.backend,
        &pooled,
        &[agent("ci-linux-p1"), agent("ci-linux-p2")],
    )
    .await;
    let (member, busy) = (
        out[0].result.clone().unwrap(),
        out[1].result.clone().unwrap(),
    );
    assert!(h
        .backend
        .terminate(std::slice::from_ref(&member), "idle")
        .await[0]
        .result
        .is_ok());
    assert_eq!(
        states_of(&h, std::slice::from_ref(&member)).await,
        [CloudState::Stopped]
    );

    // A new process (same owner) whose configuration keeps no pool for it.
    let restarted = h.other_owner("ci");
    let pruned = restarted.prune_pools(&BTreeSet::new()).await.unwrap();
    assert_eq!(pruned, std::slice::from_ref(&member));
    // The agent still busy then retires: for good, not into the pool.
    assert!(restarted
        .terminate(std::slice::from_ref(&busy), "idle")
        .await[0]
        .result
        .is_ok());
    assert_eq!(
        states_of(&h, &[member, busy]).await,
        [CloudState::Terminated, CloudState::Terminated]
    );
}

#[tokio::test]
async fn spot_launch_sends_spot_options() {
    let h = harness().await;
    let t = h.template(json!({"spot": {"max_price": "0.05"}})).await;
    let out = launch(&h.backend, &t, &[agent("ci-linux-spot")]).await;
    let id = out[0].result.clone().unwrap();
    let raw = raw_instance(&h, &id.0).await;
    assert_eq!(raw.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
}

#[tokio::test]
async fn ami_resolution_by_filter_and_ssm_parameter() {
    let h = harness().await;
    let images = h
        .ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .unwrap();
    let newest = images
        .images()
        .iter()
        .filter(|i| i.name().is_some_and(|n| n.starts_with("amzn")))
        .max_by(|a, b| {
            a.creation_date()
                .cmp(&b.creation_date())
                .then_with(|| a.image_id().cmp(&b.image_id()))
        })
        .expect("moto has amzn images");
    let api: &dyn Ec2Api = h.api.as_ref();
    let selector = AmiSelector::Filter {
        name: "amzn*".into(),
        owners: vec!["amazon".into()],
        architecture: None,
    };
    let (id, root) = resolve_ami(api, &selector, true).await.unwrap();
    assert_eq!(Some(id.as_str()), newest.image_id());
    assert_eq!(root.as_deref(), newest.root_device_name());
    let cache = ImageCache::default();
    let ami = resolve_image(api, &selector, true, &cache).await.unwrap();
    assert_eq!(Some(ami.id.as_str()), newest.image_id());
    let details = ami.details.unwrap();
    assert_eq!(
        details.root_device_name.as_deref(),
        newest.root_device_name()
    );
    assert_eq!(details.platform, Platform::Linux);

    let missing = AmiSelector::Filter {
        name: "no-such-image-*".into(),
        owners: vec!["amazon".into()],
        architecture: None,
    };
    let err = resolve_ami(api, &missing, false).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.to_string().contains("no-such-image-*"));

    h.ssm
        .put_parameter()
        .name("/test/ami")
        .value(newest.image_id().unwrap())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let by_param = AmiSelector::SsmParameter {
        ssm_parameter: "/test/ami".into(),
    };
    let (id, _) = resolve_ami(api, &by_param, false).await.unwrap();
    assert_eq!(Some(id.as_str()), newest.image_id());
}

#[tokio::test]
async fn bad_subnet_is_permanent_for_every_agent() {
    let h = harness().await;
    let t = h
        .template(json!({"subnets": ["subnet-doesnotexist"]}))
        .await;
    let agents = [agent("ci-linux-p1"), agent("ci-linux-p2")];
    let out = launch(&h.backend, &t, &agents).await;
    assert_eq!(out.len(), 2);
    for o in &out {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
        assert!(!e.message().contains(&secret_of(&o.agent_name)));
    }
    assert!(h.backend.list_owned().await.unwrap().is_empty());
    assert!(
        h.ssm
            .get_parameter()
            .name("/jenkins-cloud/ci/ci-linux-p1")
            .send()
            .await
            .is_err(),
        "cleaned up"
    );
}

/// moto does not honour ClientToken (a retry starts a second instance there), so
/// this checks that the token reaches EC2; the retry semantics are AWS's.
#[tokio::test]
async fn client_token_reaches_ec2() {
    let h = harness().await;
    let t = h.template(json!({})).await;
    let out = launch(&h.backend, &t, &[agent("ci-linux-idem")]).await;
    let raw = raw_instance(&h, &out[0].result.clone().unwrap().0).await;
    assert_eq!(raw.client_token(), Some("tok-ci-linux-idem"));
}
