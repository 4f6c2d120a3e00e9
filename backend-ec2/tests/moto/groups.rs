//! Security groups by name on moto.

use jenkins_cloud_core::backend::Backend;
use jenkins_cloud_core::ErrorClass;
use serde_json::json;

use super::common::{agent, harness, launch, secret_of};
use super::raw_instance;

#[tokio::test]
async fn security_group_names_resolve_to_ids_in_the_first_subnets_vpc() {
    let h = harness().await;
    let subnets = h.default_subnets().await;
    let vpc = h
        .ec2
        .describe_subnets()
        .subnet_ids(&subnets[0])
        .send()
        .await
        .unwrap()
        .subnets()[0]
        .vpc_id()
        .unwrap()
        .to_owned();
    let group = h
        .ec2
        .create_security_group()
        .group_name("jc-agents")
        .description("agents")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    // A group of the same name in another VPC must not be picked.
    let other_vpc = h
        .ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_owned();
    h.ec2
        .create_security_group()
        .group_name("jc-agents")
        .description("elsewhere")
        .vpc_id(&other_vpc)
        .send()
        .await
        .unwrap();
    let t = h.template(json!({"security_groups": ["jc-agents"]})).await;
    let out = launch(&h.backend, &t, &[agent("ci-linux-sg1")]).await;
    let id = out[0].result.clone().expect("launched");
    let raw = raw_instance(&h, &id.0).await;
    let groups: Vec<&str> = raw
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, [group.as_str()]);
}

#[tokio::test]
async fn unknown_security_group_name_is_permanent_for_every_agent() {
    let h = harness().await;
    let t = h
        .template(json!({"security_groups": ["no-such-group"]}))
        .await;
    let agents = [agent("ci-linux-g1"), agent("ci-linux-g2")];
    let out = launch(&h.backend, &t, &agents).await;
    assert_eq!(out.len(), 2);
    for o in &out {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
        assert!(
            e.message().contains("spec.security_groups") && e.message().contains("`no-such-group`"),
            "{e}"
        );
        assert!(!e.message().contains(&secret_of(&o.agent_name)));
    }
    assert!(h.backend.list_owned().await.unwrap().is_empty());
    assert!(
        h.ssm
            .get_parameter()
            .name("/jenkins-cloud/ci/ci-linux-g1")
            .send()
            .await
            .is_err(),
        "no parameter left behind"
    );
}
