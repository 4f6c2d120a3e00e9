//! Parsing and validation of template specs.

use super::*;
use serde_json::json;

#[test]
fn minimal_spec_gets_defaults() {
    let s =
        Ec2Spec::parse(&json!({"ami": {"id": "ami-1"}, "instance_types": ["t3.small"]})).unwrap();
    assert!(s.metadata.require_tokens);
    assert_eq!(s.metadata.hop_limit, 1);
    assert_eq!(s.secret_delivery, SecretDelivery::Ssm);
    assert!(!s.warm_pool && s.spot.is_none() && s.subnets.is_empty());
    assert_eq!((s.warm_pool_max, s.warm_pool_bound()), (None, 0));
}

#[test]
fn warm_pool_max_defaults_and_bounds() {
    let base = json!({"ami": {"id": "ami-1"}, "instance_types": ["t3.small"]});
    let with = |extra: serde_json::Value| {
        let mut spec = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        Ec2Spec::parse(&spec)
    };
    let s = with(json!({"warm_pool": true})).unwrap();
    assert_eq!(s.warm_pool_bound(), DEFAULT_WARM_POOL_MAX as usize);
    let s = with(json!({"warm_pool": true, "warm_pool_max": 2})).unwrap();
    assert_eq!((s.warm_pool_max, s.warm_pool_bound()), (Some(2), 2));
    let s = with(json!({"warm_pool": true, "warm_pool_max": null})).unwrap();
    assert_eq!(s.warm_pool_bound(), DEFAULT_WARM_POOL_MAX as usize);

    for (extra, needle) in [
        (
            json!({"warm_pool_max": 3}),
            "only allowed with `warm_pool: true`",
        ),
        (
            json!({"warm_pool": false, "warm_pool_max": 3}),
            "only allowed with `warm_pool: true`",
        ),
        (json!({"warm_pool": true, "warm_pool_max": 0}), "at least 1"),
        (
            json!({"warm_pool": true, "warm_pool_max": -1}),
            "invalid value",
        ),
        (
            json!({"warm_pool": true, "warm_pool_max": 2.5}),
            "invalid type",
        ),
        (
            json!({"warm_pool": true, "warm_pool_max": "5"}),
            "invalid type",
        ),
    ] {
        let errors = with(extra.clone()).unwrap_err();
        assert_eq!(errors.len(), 1, "{extra}: {errors:?}");
        assert!(
            errors[0].starts_with("spec.warm_pool_max:") && errors[0].contains(needle),
            "{extra}: {errors:?}"
        );
    }
    // One-time spot instances cannot be stopped: no pool with spot.
    let errors = with(json!({"warm_pool": true, "spot": {}})).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("spec.warm_pool:") && errors[0].contains("spot"),
        "{errors:?}"
    );
    assert!(with(json!({"spot": {}})).is_ok());
}

#[test]
fn ami_selectors_parse() {
    let s = Ec2Spec::parse(
        &json!({"ami": {"name": "al2023-*", "owners": ["amazon"]}, "instance_types": ["t3.small"]}),
    )
    .unwrap();
    assert!(matches!(s.ami, AmiSelector::Filter { .. }));
    let s = Ec2Spec::parse(
        &json!({"ami": {"ssm_parameter": "/aws/x"}, "instance_types": ["t3.small"]}),
    )
    .unwrap();
    assert_eq!(
        s.ami,
        AmiSelector::SsmParameter {
            ssm_parameter: "/aws/x".into()
        }
    );
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let errors = Ec2Spec::parse(&json!({
        "instance_types": "m5.large",
        "subnets": [1],
        "bogus": true,
    }))
    .unwrap_err();
    let text = errors.join("\n");
    assert!(text.contains("spec.bogus: unknown field"), "{text}");
    assert!(text.contains("spec.ami: missing"), "{text}");
    assert!(text.contains("spec.instance_types:"), "{text}");
    assert!(text.contains("spec.subnets:"), "{text}");
    assert_eq!(errors.len(), 4, "{text}");

    let errors = Ec2Spec::parse(&json!({
        "ami": {"id": "img-1"},
        "instance_types": ["m5.large", "large"],
        "subnets": ["subnet-1", "sub-2"],
        "security_groups": ["sg-x!"],
        "metadata": {"hop_limit": 0},
        "root_volume": {"size_gib": 0, "volume_type": "gp9", "throughput": 200},
        "tags": {"aws:x": "1", "a/b": "2"},
        "spot": {"max_price": "free"},
        "warm_pool": true,
        "secret_delivery": "user_data",
        "user_data_template": "#!/bin/sh\necho {{nope}}",
    }))
    .unwrap_err();
    let text = errors.join("\n");
    for field in [
        "spec.ami.id",
        "spec.instance_types[1]",
        "spec.subnets[1]",
        "spec.security_groups[0]",
        "spec.metadata.hop_limit",
        "spec.root_volume.size_gib",
        "spec.root_volume.volume_type",
        "spec.root_volume.throughput",
        "spec.tags.aws:x",
        "spec.tags.a/b",
        "spec.spot.max_price",
        "spec.warm_pool",
        "spec.user_data_template",
    ] {
        assert!(text.contains(field), "missing {field} in:\n{text}");
    }
    assert!(text.contains("nope"), "{text}");
}

#[test]
fn not_an_object_is_an_error() {
    assert_eq!(
        Ec2Spec::parse(&json!([])).unwrap_err(),
        vec!["spec: must be an object".to_string()]
    );
}

#[test]
fn platform_parses_and_bad_values_name_the_field() {
    let base = json!({"ami": {"id": "ami-1"}, "instance_types": ["t3.small"]});
    assert_eq!(Ec2Spec::parse(&base).unwrap().platform, None);
    for (value, want) in [("linux", Platform::Linux), ("windows", Platform::Windows)] {
        let mut spec = base.clone();
        spec["platform"] = json!(value);
        assert_eq!(Ec2Spec::parse(&spec).unwrap().platform, Some(want));
    }
    for bad in [json!("Windows"), json!("macos"), json!(1), json!(["linux"])] {
        let mut spec = base.clone();
        spec["platform"] = bad.clone();
        let errors = Ec2Spec::parse(&spec).unwrap_err();
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        assert!(
            errors[0].starts_with("spec.platform: "),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn image_platform_is_windows_only_when_aws_says_so() {
    assert_eq!(Platform::of_image(Some("windows")), Platform::Windows);
    assert_eq!(Platform::of_image(Some("Windows")), Platform::Windows);
    assert_eq!(Platform::of_image(None), Platform::Linux);
    assert_eq!(Platform::of_image(Some("")), Platform::Linux);
    // moto reports `Linux/UNIX` where AWS leaves the field blank.
    assert_eq!(Platform::of_image(Some("Linux/UNIX")), Platform::Linux);
}

#[test]
fn security_groups_take_ids_and_names() {
    let spec = |groups: serde_json::Value, subnets: serde_json::Value| {
        Ec2Spec::parse(
            &json!({"ami": {"id": "ami-1"}, "instance_types": ["t3.small"],
            "security_groups": groups, "subnets": subnets}),
        )
    };
    let s = spec(
        json!(["sg-0abc", "jenkins agents", "ssh"]),
        json!(["subnet-1"]),
    )
    .unwrap();
    assert_eq!(s.security_groups, ["sg-0abc", "jenkins agents", "ssh"]);
    assert!(spec(json!(["sg-0abc"]), json!([])).is_ok());
    for (groups, subnets, needle) in [
        (json!(["agents"]), json!([]), "needs spec.subnets"),
        (json!([""]), json!(["subnet-1"]), "neither a group id"),
        (
            json!([" agents"]),
            json!(["subnet-1"]),
            "neither a group id",
        ),
        (
            json!(["x".repeat(256)]),
            json!(["subnet-1"]),
            "neither a group id",
        ),
        (
            json!(["sg-"]),
            json!(["subnet-1"]),
            "not a security group id",
        ),
    ] {
        let errors = spec(groups.clone(), subnets).unwrap_err();
        assert_eq!(errors.len(), 1, "{groups}: {errors:?}");
        assert!(
            errors[0].starts_with("spec.security_groups[0]: ") && errors[0].contains(needle),
            "{groups}: {errors:?}"
        );
    }
}
