//! Windows agents on moto: PowerShell user data, platform from the AMI.

use aws_sdk_ec2::types::InstanceMetadataTagsState;
use jenkins_cloud_ec2::api::Ec2Api;
use jenkins_cloud_ec2::launch::{resolve_image, ImageCache};
use jenkins_cloud_ec2::spec::{AmiSelector, Platform};
use serde_json::json;

use super::common::{self, agent, harness, launch, secret_of};
use super::{raw_instance, tag};

async fn user_data_of(h: &common::Harness, id: &str) -> String {
    let attr = h
        .ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = attr.user_data().and_then(|u| u.value()).expect("user data");
    String::from_utf8(aws_smithy_types::base64::decode(encoded).unwrap()).unwrap()
}

#[tokio::test]
async fn windows_template_gets_powershell_user_data_without_the_secret() {
    let h = harness().await;
    let t = h.template(json!({"platform": "windows"})).await;
    let out = launch(&h.backend, &t, &[agent("ci-win-aaa")]).await;
    let id = out[0].result.clone().expect("launched");
    let user_data = user_data_of(&h, &id.0).await;
    assert!(user_data.starts_with("<powershell>"), "{user_data}");
    for needle in [
        "AgentTagKey     = 'jenkins-cloud:agent'",
        "ParameterTagKey = 'jenkins-cloud:secret-parameter'",
        "Get-InstanceTag $Conf.AgentTagKey",
        "Get-InstanceTag $Conf.ParameterTagKey",
        "latest/meta-data/tags/instance/$Key",
        "SecretParameter = '/jenkins-cloud/ci/ci-win-aaa'",
    ] {
        assert!(user_data.contains(needle), "missing {needle:?}");
    }
    assert!(!user_data.contains(&secret_of("ci-win-aaa")));
    // The agent reads its name and parameter from the tags: they must be there.
    let raw = raw_instance(&h, &id.0).await;
    assert_eq!(tag(raw.tags(), "jenkins-cloud:agent"), Some("ci-win-aaa"));
    assert_eq!(
        raw.metadata_options()
            .and_then(|m| m.instance_metadata_tags()),
        Some(&InstanceMetadataTagsState::Enabled)
    );
}

/// moto ships Windows AMIs with `Platform: windows` (its default image list),
/// so the derivation runs on the real SDK path here.
#[tokio::test]
async fn platform_is_taken_from_the_ami_when_the_spec_names_none() {
    let h = harness().await;
    let win = h.windows_ami().await;
    let t = h.template(json!({"ami": {"id": win}})).await;
    let out = launch(&h.backend, &t, &[agent("ci-win-bbb")]).await;
    let id = out[0].result.clone().expect("launched");
    assert!(user_data_of(&h, &id.0).await.starts_with("<powershell>"));

    let t = h.template(json!({})).await;
    let out = launch(&h.backend, &t, &[agent("ci-linux-ccc")]).await;
    let id = out[0].result.clone().expect("launched");
    assert!(user_data_of(&h, &id.0).await.starts_with("#!/bin/bash"));

    let api: &dyn Ec2Api = h.api.as_ref();
    let ami = resolve_image(
        api,
        &AmiSelector::Id { id: win },
        true,
        &ImageCache::default(),
    )
    .await
    .unwrap();
    assert_eq!(ami.details.map(|d| d.platform), Some(Platform::Windows));
}
