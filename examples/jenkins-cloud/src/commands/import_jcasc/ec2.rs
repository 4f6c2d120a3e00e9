//! ec2 plugin clouds (`amazonEC2:`) → `kind: ec2` clouds.
//!
//! Fields: `EC2Cloud`, `SlaveTemplate`, `SpotConfiguration`, `EC2Tag` and the
//! `amiType` data (`unixData`, `windowsData`, `windowsSSHData`, `macData`) in
//! <https://github.com/jenkinsci/ec2-plugin/tree/master/src/main/java/hudson/plugins/ec2>;
//! the plugin's JCasC test files (`src/test/resources/hudson/plugins/ec2/*.yml`)
//! show both the full and the exported shape.

use serde_json::{json, Map, Value};

use super::ec2_minimums;
use super::output::{OutCloud, OutTemplate};
use super::values::{
    boolean, count, int, note_dropped, or_default, sanitize_name, split_list, tags, text,
    unique_name, Notes,
};
use super::Converted;

const CLOUD_DROPPED: &[(&str, &str)] = &[
    ("credentialsId", "AWS credentials come from the default chain"),
    (
        "useInstanceProfileForCredentials",
        "the default chain uses the instance profile already",
    ),
    (
        "roleArn",
        "assume the role outside (AWS_ROLE_ARN / profile) instead",
    ),
    ("roleSessionName", "assume the role outside instead"),
    (
        "privateKey",
        "agents connect inbound over WebSocket: no SSH key is used",
    ),
    (
        "sshKeysCredentialsId",
        "agents connect inbound over WebSocket: no SSH key is used",
    ),
    (
        "noDelayProvisioning",
        "the `strategy` is global (`no-delay` by default)",
    ),
    (
        "altEC2Endpoint",
        "set the cloud's `endpoint_url` by hand if really needed",
    ),
    (
        "roundRobinTemplatesByLabel",
        "templates are tried in order and the next one takes what a capped or failing one cannot (`spill`)",
    ),
];

const CLOUD_KNOWN: &[&str] = &[
    "name",
    "cloudName",
    "region",
    "templates",
    "instanceCapStr",
    "hotSpareConfigsByLabel",
];

/// Converts one `amazonEC2:` cloud into `converted`.
pub(super) fn cloud(body: &Value, path: &str, notes: &mut Notes, converted: &mut Converted) {
    let Some(obj) = body.as_object() else {
        notes.add(path, "skipped: not a mapping");
        return;
    };
    let name = obj
        .get("name")
        .or_else(|| obj.get("cloudName"))
        .and_then(text)
        .unwrap_or_else(|| "ec2".into());
    if let Some(n) = obj.get("instanceCapStr").and_then(int).filter(|n| *n > 0) {
        converted.caps.push((format!("{path}.instanceCapStr"), n));
    }
    note_dropped(obj, path, CLOUD_KNOWN, CLOUD_DROPPED, notes);
    let cloud_name = or_default(sanitize_name(&name), "ec2");
    let mut templates = Vec::new();
    for (j, t) in obj
        .get("templates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let tpath = format!("{path}.templates[{j}]");
        let base = t
            .get("description")
            .and_then(text)
            .map(|d| sanitize_name(&d))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{cloud_name}-{j}"));
        let ours = unique_name(base, &mut converted.used_names);
        if let Some(t) = template(t, &tpath, ours, notes, converted) {
            templates.push(t);
        }
    }
    if let Some(rules) = obj.get("hotSpareConfigsByLabel") {
        ec2_minimums::hot_spares(rules, path, &mut templates, notes);
    }
    if templates.is_empty() {
        notes.add(path, "skipped: no usable templates");
        return;
    }
    converted.clouds.push(OutCloud {
        name: cloud_name,
        kind: "ec2",
        region: obj.get("region").and_then(text),
        clusters: Vec::new(),
        templates,
    });
}

/// `t3.medium` stays; the old enum spelling `T3Medium` / `M5Large` becomes `t3.medium`.
fn instance_type(raw: &str) -> Option<String> {
    if raw.contains('.') {
        return Some(raw.to_owned());
    }
    let split = raw
        .char_indices()
        .skip(1)
        .find(|(_, c)| c.is_ascii_uppercase())?
        .0;
    let (family, size) = raw.split_at(split);
    Some(format!(
        "{}.{}",
        family.to_ascii_lowercase(),
        size.to_ascii_lowercase()
    ))
}

const SSH_SETTINGS: &[&str] = &[
    "remoteAdmin",
    "rootCommandPrefix",
    "slaveCommandPrefix",
    "slaveCommandSuffix",
    "sshPort",
    "jvmopts",
    "javaPath",
    "connectionStrategy",
    "connectBySSHProcess",
    "connectUsingPublicIp",
    "hostKeyVerificationStrategy",
    "associatePublicIp",
    "associateIPStrategy",
];

const NO_EQUIVALENT: &[&str] = &[
    "useEphemeralDevices",
    "monitoring",
    "t2Unlimited",
    "tenancy",
    "nodeProperties",
    "enclaveEnabled",
    "avoidUsingOrphanedNodes",
    "zone",
];

fn template(
    t: &Value,
    tpath: &str,
    name: String,
    notes: &mut Notes,
    converted: &mut Converted,
) -> Option<OutTemplate> {
    let obj = t.as_object()?;
    let mut out = OutTemplate {
        name,
        ..OutTemplate::default()
    };
    let Some(ami) = obj.get("ami").and_then(text) else {
        notes.add(tpath, "skipped: no `ami`");
        return None;
    };
    out.spec.insert("ami".into(), json!({"id": ami}));
    let mut metadata = Map::new();
    for (k, v) in obj {
        let fpath = format!("{tpath}.{k}");
        if super::values::is_unset(v) && k != "metadataTokensRequired" {
            continue;
        }
        match k.as_str() {
            "ami" => {}
            "minimumNumberOfInstances"
            | "minimumNumberOfSpareInstances"
            | "minimumNumberOfInstancesTimeRangeConfig" => {}
            "metadataTokensRequired" => {
                metadata.insert("require_tokens".into(), json!(boolean(v).unwrap_or(false)));
            }
            "metadataHopsLimit" => {
                metadata.insert("hop_limit".into(), json!(int(v)));
            }
            "securityGroups" => {
                let groups = split_list(v);
                let names: Vec<String> = groups
                    .iter()
                    .filter(|g| !g.starts_with("sg-"))
                    .cloned()
                    .collect();
                if !names.is_empty() {
                    notes.add(&fpath, format!("{} given by name: resolved in the first subnet's VPC at launch; `jenkins-cloud check` shows the ids", names.join(", ")));
                    converted.group_names.extend(names);
                }
                out.spec.insert("security_groups".into(), json!(groups));
            }
            "amiType" => ami_type(v, &fpath, &mut out, notes, converted),
            _ => field(k, v, &fpath, &mut out, notes),
        }
    }
    ec2_minimums::template(obj, tpath, &mut out, notes);
    if !out.spec.contains_key("instance_types") {
        out.spec
            .insert("instance_types".into(), json!(["t3.medium"]));
        notes.add(
            tpath,
            "no usable `type`: instance type set to t3.medium; check it",
        );
    }
    if !metadata.is_empty() {
        out.spec.insert("metadata".into(), Value::Object(metadata));
    }
    Some(out)
}

/// `amiType: {windowsData: …}` etc.: the platform; the connection settings
/// inside are the plugin's (WinRM/SSH), not ours.
fn ami_type(
    v: &Value,
    fpath: &str,
    out: &mut OutTemplate,
    notes: &mut Notes,
    converted: &mut Converted,
) {
    let kind = v
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default();
    match kind.as_str() {
        "windowsData" | "windowsSSHData" => {
            out.spec.insert("platform".into(), json!("windows"));
            converted.windows = true;
            notes.add(fpath, format!("`{kind}`: carried as `spec.platform: windows`; its WinRM/SSH settings are not used (the agent starts from PowerShell user data and connects inbound)"));
        }
        "unixData" => notes.add(fpath, "`unixData`: Linux (the default); its SSH settings are not used (the agent starts from user data and connects inbound)"),
        "macData" => notes.add(fpath, "not carried: Mac instances (dedicated hosts) are not supported; imported as a Linux template"),
        other => notes.add(fpath, format!("not carried: unknown AMI type `{other}`")),
    }
}

fn field(k: &str, v: &Value, fpath: &str, out: &mut OutTemplate, notes: &mut Notes) {
    match k {
        "description" => notes.add(fpath, format!("used as the template name `{}`", out.name)),
        "type" => {
            let raw = text(v).unwrap_or_default();
            match instance_type(&raw) {
                Some(it) => {
                    if it != raw {
                        notes.add(fpath, format!("`{raw}` written as `{it}`"));
                    }
                    out.spec.insert("instance_types".into(), json!([it]));
                }
                None => notes.add(fpath, format!("`{raw}` is not an instance type name; default used")),
            }
        }
        "labelString" => out.labels = text(v),
        "numExecutors" => out.executors = count(v),
        "idleTerminationMinutes" => match int(v) {
            Some(n) if n > 0 => out.idle_timeout = Some(format!("{n}m")),
            Some(n) if n < 0 => {
                out.idle_timeout = Some(format!("{}m", -n));
                notes.add(fpath, format!("carried as `idle_timeout: {}m`: a negative value meant \"idle within {} minutes of the next billing hour\"; with per-second billing a plain idle timeout does the same job", -n, -n));
            }
            Some(_) => out.idle_timeout = Some("never".into()),
            None => notes.add(fpath, "not carried: not a number of minutes"),
        },
        "launchTimeoutStr" => match int(v) {
            Some(n) if n > 0 => out.launch_timeout = Some(format!("{n}s")),
            _ => {}
        },
        "subnetId" => {
            out.spec.insert("subnets".into(), json!(split_list(v)));
        }
        "iamInstanceProfile" => {
            let raw = text(v).unwrap_or_default();
            let profile = raw.rsplit('/').next().unwrap_or(&raw).to_owned();
            if profile != raw {
                notes.add(fpath, format!("ARN written as the profile name `{profile}`"));
            }
            out.spec.insert("instance_profile".into(), json!(profile));
        }
        "remoteFS" => out.remote_fs = text(v),
        "mode" => out.mode = text(v).map(|m| m.to_ascii_uppercase()),
        "spotConfig" => spot(v, fpath, out, notes),
        "ebsEncryptRootVolume" => {
            let encrypted = match text(v).as_deref() {
                Some("ENCRYPTED") => Some(true),
                Some("UNENCRYPTED") => Some(false),
                Some("DEFAULT") => None,
                other => {
                    notes.add(fpath, format!("not carried: unknown value `{}`", other.unwrap_or("?")));
                    None
                }
            };
            if let Some(encrypted) = encrypted {
                out.spec.insert("root_volume".into(), json!({"encrypted": encrypted}));
            }
        }
        "deleteRootOnTermination" => notes.add(fpath, "the root volume is always deleted with the instance here (agents are disposable)"),
        "customDeviceMapping" => notes.add(fpath, "not carried: extra block devices are not set by the ec2 spec; `spec.root_volume` sets the root volume (size, type, IOPS, encryption)"),
        "ebsOptimized" => notes.add(fpath, "not carried: current instance types are EBS-optimized by default"),
        "tags" => {
            out.spec.insert("tags".into(), tags(v));
        }
        "userData" => notes.add(fpath, "not carried: jenkins-cloud's user data starts the agent; move extra steps into the AMI or `spec.user_data_template`"),
        "instanceCapStr" => match count(v) {
            Some(n) if n > 0 => out.instance_cap = Some(n),
            _ => {}
        },
        "maxTotalUses" => match int(v) {
            Some(n) if n > 0 => out.max_uses = u32::try_from(n).ok(),
            _ => {}
        },
        "metadataSupported" | "metadataEndpointEnabled" => {
            if boolean(v) == Some(false) {
                notes.add(fpath, "not carried: the metadata endpoint stays on, as the agent reads its name from instance tags through it (IMDSv2 by default)");
            }
        }
        "stopOnTerminate" => notes.add(fpath, "not carried: use `spec.warm_pool: true` to stop and reuse instances (at most `spec.warm_pool_max`, default 10, stay stopped)"),
        k if SSH_SETTINGS.contains(&k) => notes.add(fpath, "not carried: SSH launch setting; agents connect inbound over WebSocket"),
        k if NO_EQUIVALENT.contains(&k) => notes.add(fpath, "not carried: no equivalent"),
        _ => notes.add(fpath, "not carried: no equivalent"),
    }
}

fn spot(v: &Value, fpath: &str, out: &mut OutTemplate, notes: &mut Notes) {
    let mut spot = Map::new();
    let use_bid = v.get("useBidPrice").and_then(boolean).unwrap_or(true);
    if let Some(price) = v.get("spotMaxBidPrice").and_then(text) {
        if use_bid {
            spot.insert("max_price".into(), json!(price));
        }
    }
    spot.insert(
        "fallback_to_on_demand".into(),
        json!(v
            .get("fallbackToOndemand")
            .and_then(boolean)
            .unwrap_or(false)),
    );
    for key in v.as_object().into_iter().flat_map(|o| o.keys()) {
        if !matches!(
            key.as_str(),
            "useBidPrice" | "spotMaxBidPrice" | "fallbackToOndemand"
        ) {
            notes.add(
                &format!("{fpath}.{key}"),
                "not carried: no equivalent (spot blocks are retired by AWS)",
            );
        }
    }
    out.spec.insert("spot".into(), Value::Object(spot));
}
