//! `check`'s permission probes, without side effects where AWS allows it.
//!
//! EC2 calls with `DryRun: true` answer `DryRunOperation` when the caller may
//! make them and `UnauthorizedOperation` when not (EC2 API Reference, "DryRun":
//! "Checks whether you have the required permissions for the action, without
//! actually making the request"). RunInstances is probed with a template's
//! image, type, subnet, groups and our owner tag (so its tag-on-create
//! `ec2:CreateTags` is evaluated too); StopInstances, TerminateInstances and
//! CreateTags on an instance of this owner, when one exists. ECS has no dry
//! run: its statements are listed to verify (a WARN). `iam:SimulatePrincipalPolicy`
//! would need the IAM SDK crate, a minute more of build for every CI run.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, InstanceType, ResourceType, Tag, TagSpecification};
use jenkins_cloud_core::backend::tags;
use jenkins_cloud_ec2::sdk::SdkApi;
use jenkins_cloud_ec2::Ec2Spec;

use super::aws::AwsClients;
use super::check::Finding;
use crate::config::{CloudSettings, Config};

/// How a dry run answered.
enum Probe {
    Allowed,
    Denied(String),
    Unknown(String),
}

fn probe<E: ProvideErrorMetadata>(result: Result<impl Sized, E>) -> Probe {
    match result {
        // A call that ran although it should not have: treat as allowed.
        Ok(_) => Probe::Allowed,
        Err(e) => match e.code() {
            Some("DryRunOperation") => Probe::Allowed,
            Some(code)
                if code == "UnauthorizedOperation"
                    || code.starts_with("AccessDenied")
                    || code == "InvalidClientTokenId" =>
            {
                Probe::Denied(format!("{code}: {}", e.message().unwrap_or_default()))
            }
            code => Probe::Unknown(format!(
                "{}: {}",
                code.unwrap_or("error"),
                e.message().unwrap_or_default()
            )),
        },
    }
}

fn finding(subject: String, action: &str, p: Probe) -> Finding {
    match p {
        Probe::Allowed => Finding::ok(subject, format!("{action}: allowed (dry run)")),
        Probe::Denied(why) => Finding::fail(
            subject,
            format!("{action} is not allowed: {why}"),
            format!("grant {action} as `jenkins-cloud iam-policy` prints it"),
        ),
        Probe::Unknown(why) => Finding::warn(
            subject,
            format!("{action}: could not be verified: {why}"),
            "compare the role's policy with `jenkins-cloud iam-policy`",
        ),
    }
}

/// Dry-run probes of the EC2 actions the backend needs, for one EC2 cloud.
pub async fn ec2(
    config: &Config,
    cloud: &CloudSettings,
    prefix: &str,
    c: &AwsClients,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let owner = config.owner.as_str();
    let subject = |what: &str| format!("{prefix}: permission {what}");
    if let Some((t, spec)) = cloud
        .templates
        .iter()
        .find_map(|t| Ec2Spec::parse(&t.spec).ok().map(|s| (t, s)))
    {
        let api = SdkApi::new(c.ec2.clone(), c.ssm.clone());
        match jenkins_cloud_ec2::launch::resolve_ami(&api, &spec.ami, false).await {
            Ok((image, _)) => {
                let mut run = c
                    .ec2
                    .run_instances()
                    .dry_run(true)
                    .image_id(image)
                    .instance_type(InstanceType::from(
                        spec.instance_types
                            .first()
                            .map(String::as_str)
                            .unwrap_or("t3.micro"),
                    ))
                    .min_count(1)
                    .max_count(1)
                    .tag_specifications(
                        TagSpecification::builder()
                            .resource_type(ResourceType::Instance)
                            .tags(Tag::builder().key(tags::OWNER).value(owner).build())
                            .build(),
                    );
                if let Some(subnet) = spec.subnets.first() {
                    run = run.subnet_id(subnet);
                }
                for g in &spec.security_groups {
                    run = run.security_group_ids(g);
                }
                out.push(finding(
                    subject(&format!("ec2:RunInstances ({})", t.name)),
                    "ec2:RunInstances",
                    probe(run.send().await),
                ));
            }
            Err(e) => out.push(Finding::warn(
                subject("ec2:RunInstances"),
                format!(
                    "not probed: the image of `{}` could not be resolved: {e}",
                    t.name
                ),
                "fix the template's `ami` first",
            )),
        }
    }
    let ours = c
        .ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{}", tags::OWNER))
                .values(owner)
                .build(),
        )
        .send()
        .await;
    let instance = ours.ok().and_then(|r| {
        r.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.instance_id().map(str::to_owned))
    });
    let Some(id) = instance else {
        out.push(Finding::warn(
            subject("ec2:StopInstances, ec2:TerminateInstances, ec2:CreateTags"),
            "not probed: no instance of this owner runs to try them on",
            "run `check` again while an agent runs, or compare with `jenkins-cloud iam-policy`",
        ));
        return out;
    };
    let stop = c
        .ec2
        .stop_instances()
        .dry_run(true)
        .instance_ids(&id)
        .send()
        .await;
    out.push(finding(
        subject("ec2:StopInstances"),
        "ec2:StopInstances",
        probe(stop),
    ));
    let term = c
        .ec2
        .terminate_instances()
        .dry_run(true)
        .instance_ids(&id)
        .send()
        .await;
    out.push(finding(
        subject("ec2:TerminateInstances"),
        "ec2:TerminateInstances",
        probe(term),
    ));
    let tag = c
        .ec2
        .create_tags()
        .dry_run(true)
        .resources(&id)
        .tags(Tag::builder().key(tags::AGENT).value("").build())
        .send()
        .await;
    out.push(finding(
        subject("ec2:CreateTags"),
        "ec2:CreateTags",
        probe(tag),
    ));
    out
}

/// ECS has no dry run: the statements to verify.
pub fn ecs(config: &Config, prefix: &str) -> Finding {
    let policy = super::iam::policy(config);
    let actions: Vec<String> = policy["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| {
            a.as_str()
                .filter(|a| a.starts_with("ecs:"))
                .map(str::to_owned)
        })
        .collect();
    Finding::warn(
        format!("{prefix}: permissions"),
        format!(
            "ECS has no dry run, so these are not probed: {}",
            actions.join(", ")
        ),
        "compare the role's policy with `jenkins-cloud iam-policy` (or `aws iam simulate-principal-policy`)",
    )
}
