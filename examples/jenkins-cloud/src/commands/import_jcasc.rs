//! `import-jcasc`: converts the clouds of a Jenkins Configuration-as-Code file
//! (`jenkins.clouds`) written for the amazon-ecs plugin (`ecs:`) and the ec2
//! plugin (`amazonEC2:`) into this program's configuration.
//!
//! Field names follow the plugins' `@DataBoundConstructor` / `@DataBoundSetter`
//! names (`ECSCloud`, `ECSTaskTemplate`; `EC2Cloud`/`AmazonEC2Cloud`,
//! `SlaveTemplate`, `SpotConfiguration`). Every field that is not carried over
//! is named in [`Imported::notes`] with the reason; none is dropped silently.
//! The result is checked with [`Config::parse`] before it is returned.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::CommandError;
use crate::config::yaml::Document;
use crate::config::Config;

/// The converted configuration and what could not be carried over.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The configuration file (YAML), loadable with [`Config::parse`].
    pub yaml: String,
    /// One line per field not carried over (or carried over approximately), with why.
    pub notes: Vec<String>,
}

#[derive(Serialize)]
struct OutFile {
    owner: String,
    jenkins: OutJenkins,
    #[serde(skip_serializing_if = "Option::is_none")]
    caps: Option<Value>,
    clouds: Vec<OutCloud>,
}

#[derive(Serialize)]
struct OutJenkins {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<String>,
    user: String,
    token_env: String,
}

#[derive(Serialize)]
struct OutCloud {
    name: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    clusters: Vec<String>,
    templates: Vec<OutTemplate>,
}

#[derive(Serialize, Default)]
struct OutTemplate {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    inherit_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executors: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_fs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_cap: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_uses: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_idle: Option<u32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    spec: Map<String, Value>,
}

/// Collects notes, each prefixed with the JCasC path of its field.
struct Notes(Vec<String>);

impl Notes {
    fn add(&mut self, path: &str, message: impl AsRef<str>) {
        self.0.push(format!("{path}: {}", message.as_ref()));
    }
}

/// A template or cloud name in our alphabet (`a-z`, `0-9`, `-`, at most 40).
fn sanitize_name(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.chars().take(40).collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A JCasC scalar as text (numbers are often written as strings there and the reverse).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `[{name, value}]` lists (environments, tags, log driver options).
fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    Some((
                        text(e.get("name")?)?,
                        e.get("value").and_then(text).unwrap_or_default(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn split_list(v: &Value) -> Vec<String> {
    text(v)
        .map(|s| {
            s.split([',', ' ', '\n', '\t'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a JCasC value is "unset" (null, empty string, empty list, false, 0).
fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// Converts JCasC text; `file` names it in errors.
pub fn import(text_in: &str, file: &str) -> Result<Imported, CommandError> {
    let doc = Document::parse(text_in)
        .map_err(|e| CommandError(format!("{file}: not valid YAML: {e}")))?;
    let root = doc.value;
    let clouds = root
        .get("jenkins")
        .and_then(|j| j.get("clouds"))
        .and_then(Value::as_array)
        .ok_or_else(|| CommandError(format!("{file}: no `jenkins.clouds` list")))?;
    let mut notes = Notes(Vec::new());
    let mut out_clouds = Vec::new();
    let mut tunnel = None;
    let mut jenkins_url = root
        .get("unclassified")
        .and_then(|u| u.get("location"))
        .and_then(|l| l.get("url"))
        .and_then(text);
    let mut caps = Vec::new();
    let mut used_names: Vec<String> = Vec::new();
    for (i, entry) in clouds.iter().enumerate() {
        let Some(obj) = entry.as_object() else {
            notes.add(&format!("jenkins.clouds[{i}]"), "skipped: not a mapping");
            continue;
        };
        for (kind, body) in obj {
            let path = format!("jenkins.clouds[{i}].{kind}");
            match kind.as_str() {
                "ecs" => {
                    if let Some(c) = ecs_cloud(body, &path, &mut notes, &mut used_names) {
                        if let Some(url) = body.get("jenkinsUrl").and_then(text) {
                            jenkins_url.get_or_insert(url);
                        }
                        if let Some(t) = body.get("tunnel").and_then(text) {
                            tunnel.get_or_insert(t);
                        }
                        out_clouds.push(c);
                    }
                }
                "amazonEC2" | "ec2" => {
                    if let Some(c) = ec2_cloud(body, &path, &mut notes, &mut caps, &mut used_names)
                    {
                        out_clouds.push(c);
                    }
                }
                other => notes.add(
                    &path,
                    format!(
                        "skipped: `{other}` clouds are not converted (only `ecs` and `amazonEC2`)"
                    ),
                ),
            }
        }
    }
    if out_clouds.is_empty() {
        return Err(CommandError(format!(
            "{file}: no `ecs` or `amazonEC2` cloud with a usable template under `jenkins.clouds`{}",
            if notes.0.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", notes.0.join("\n  "))
            }
        )));
    }
    let url = match jenkins_url {
        Some(u) => u,
        None => {
            notes.add(
                "jenkins.url",
                "not found (neither `unclassified.location.url` nor a cloud `jenkinsUrl`): set it",
            );
            "https://jenkins.example.invalid/".to_owned()
        }
    };
    notes.add(
        "owner/jenkins.user/jenkins.token_env",
        "no equivalent in the plugins: set to `jenkins-cloud`, `jenkins-cloud` and JENKINS_API_TOKEN; adjust them (the plugins act as Jenkins itself, this program needs a user and API token)",
    );
    let caps = match caps.as_slice() {
        [] => None,
        [(_, n)] => Some(json!({"global": n})),
        many => {
            for (path, _) in many {
                notes.add(
                    path,
                    "not carried: several clouds have a cap and caps here are global or per label; set `caps` by hand",
                );
            }
            None
        }
    };
    let out = OutFile {
        owner: "jenkins-cloud".into(),
        jenkins: OutJenkins {
            url,
            tunnel,
            user: "jenkins-cloud".into(),
            token_env: "JENKINS_API_TOKEN".into(),
        },
        caps,
        clouds: out_clouds,
    };
    let body = serde_saphyr::to_string(&out)
        .map_err(|e| CommandError(format!("cannot write the configuration: {e}")))?;
    let yaml = format!(
        "# Converted by `jenkins-cloud import-jcasc` from {file}.\n# Review owner, jenkins.user and jenkins.token_env; see docs/configuration.md.\n{body}"
    );
    if let Err(e) = Config::parse(&yaml, "<imported>") {
        return Err(CommandError(format!(
            "{file}: the converted configuration does not validate; fix the JCasC values named below (or edit the output by hand):\n{e}\nnotes:\n  {}",
            notes.0.join("\n  ")
        )));
    }
    Ok(Imported {
        yaml,
        notes: notes.0,
    })
}

fn unique_name(base: String, used: &mut Vec<String>) -> String {
    let mut name = if base.is_empty() {
        "template".to_owned()
    } else {
        base
    };
    if used.contains(&name) {
        let mut n = 2;
        while used.contains(&format!("{name}-{n}")) {
            n += 1;
        }
        name = format!("{name}-{n}");
    }
    used.push(name.clone());
    name
}

const ECS_CLOUD_DROPPED: &[(&str, &str)] = &[
    (
        "credentialsId",
        "AWS credentials come from the default chain (environment, profile, task or instance role)",
    ),
    (
        "assumedRoleArn",
        "assume the role outside (AWS_ROLE_ARN / profile) instead",
    ),
    ("regionName", ""),
    (
        "slaveTimeoutInSeconds",
        "set `launch_timeout` per template instead",
    ),
    ("maxCpu", "no cloud-wide CPU cap; use `caps` (agent counts)"),
    (
        "maxMemory",
        "no cloud-wide memory cap; use `caps` (agent counts)",
    ),
    ("maxAgents", "use `caps.global`"),
    ("poolingInterval", "the loop's `poll_interval` is global"),
    (
        "taskPollingIntervalInSeconds",
        "the loop's `poll_interval` is global",
    ),
    ("numExecutors", "executors are set per template"),
];

fn ecs_cloud(
    body: &Value,
    path: &str,
    notes: &mut Notes,
    used: &mut Vec<String>,
) -> Option<OutCloud> {
    let obj = body.as_object()?;
    let name = obj
        .get("name")
        .and_then(text)
        .unwrap_or_else(|| "ecs".into());
    let cluster = obj.get("cluster").and_then(text);
    let Some(cluster) = cluster else {
        notes.add(path, "skipped: no `cluster`");
        return None;
    };
    let retention = obj.get("retentionTimeout").and_then(int);
    for (k, v) in obj {
        let known = matches!(
            k.as_str(),
            "name"
                | "cluster"
                | "regionName"
                | "jenkinsUrl"
                | "tunnel"
                | "retentionTimeout"
                | "templates"
        );
        if known || is_unset(v) {
            continue;
        }
        match ECS_CLOUD_DROPPED.iter().find(|(n, _)| n == k) {
            Some((_, why)) => notes.add(&format!("{path}.{k}"), format!("not carried: {why}")),
            None => notes.add(&format!("{path}.{k}"), "not carried: no equivalent"),
        }
    }
    let mut templates = Vec::new();
    let list = obj
        .get("templates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Plugin template names → ours, for inheritFrom.
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    let mut pending = Vec::new();
    for (j, t) in list.iter().enumerate() {
        let raw = t
            .get("templateName")
            .and_then(text)
            .unwrap_or_else(|| format!("{name}-{j}"));
        let ours = unique_name(sanitize_name(&raw), used);
        if ours != raw {
            notes.add(
                &format!("{path}.templates[{j}].templateName"),
                format!("`{raw}` renamed `{ours}` (names are a-z, 0-9, -)"),
            );
        }
        renamed.insert(raw, ours.clone());
        pending.push((j, t, ours));
    }
    for (j, t, ours) in pending {
        let tpath = format!("{path}.templates[{j}]");
        templates.push(ecs_template(
            t, &tpath, ours, &cluster, retention, &renamed, notes,
        ));
    }
    if templates.is_empty() {
        notes.add(path, "skipped: no templates");
        return None;
    }
    Some(OutCloud {
        name: sanitize_name(&name).if_empty("ecs"),
        kind: "fargate",
        region: obj.get("regionName").and_then(text),
        clusters: vec![cluster],
        templates,
    })
}

trait IfEmpty {
    fn if_empty(self, default: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, default: &str) -> String {
        if self.is_empty() {
            default.to_owned()
        } else {
            self
        }
    }
}

fn ecs_template(
    t: &Value,
    tpath: &str,
    name: String,
    cluster: &str,
    retention: Option<i64>,
    renamed: &BTreeMap<String, String>,
    notes: &mut Notes,
) -> OutTemplate {
    let mut out = OutTemplate {
        name,
        ..OutTemplate::default()
    };
    let Some(obj) = t.as_object() else {
        notes.add(tpath, "not a mapping");
        return out;
    };
    let inherits = obj.get("inheritFrom").and_then(text);
    if inherits.is_none() {
        out.spec.insert("cluster".into(), json!(cluster));
    }
    if let Some(r) = retention {
        if r > 0 && inherits.is_none() {
            out.idle_timeout = Some(format!("{r}m"));
        }
    }
    let memory = obj.get("memory").and_then(int).unwrap_or(0);
    for (k, v) in obj {
        let fpath = format!("{tpath}.{k}");
        if is_unset(v) && !matches!(k.as_str(), "assignPublicIp") {
            continue;
        }
        match k.as_str() {
            "templateName" => {}
            "label" => out.labels = text(v),
            "image" => {
                out.spec.insert("image".into(), json!(text(v)));
            }
            "cpu" => {
                out.spec.insert("cpu".into(), json!(int(v)));
            }
            "memory" => {
                out.spec.insert("memory".into(), json!(int(v)));
            }
            "memoryReservation" if memory > 0 => notes.add(
                &fpath,
                "not carried: only the task-level `memory` exists on Fargate (the container gets all of it)",
            ),
            "memoryReservation" => {
                out.spec.insert("memory".into(), json!(int(v)));
                notes.add(&fpath, "used as the task `memory` (no hard `memory` was set)");
            }
            "launchType" => match text(v).as_deref() {
                Some("FARGATE") => {}
                other => notes.add(
                    &fpath,
                    format!(
                        "`{}`: only Fargate is supported by the fargate backend; imported as Fargate (use an `ec2` cloud for VMs)",
                        other.unwrap_or("?")
                    ),
                ),
            },
            "networkMode" => {
                if text(v).as_deref() != Some("awsvpc") {
                    notes.add(&fpath, "not carried: Fargate always uses awsvpc");
                }
            }
            "subnets" => {
                out.spec.insert("subnets".into(), json!(split_list(v)));
            }
            "securityGroups" => {
                out.spec.insert("security_groups".into(), json!(split_list(v)));
            }
            "assignPublicIp" => {
                out.spec.insert("assign_public_ip".into(), json!(boolean(v).unwrap_or(false)));
            }
            "executionRole" => {
                out.spec.insert("execution_role_arn".into(), json!(text(v)));
            }
            "taskrole" => {
                out.spec.insert("task_role_arn".into(), json!(text(v)));
            }
            "environments" => {
                for (name, value) in pairs(v) {
                    out.environment.insert(name, value);
                }
            }
            "logDriver" => {
                if text(v).as_deref() != Some("awslogs") {
                    notes.add(&fpath, "not carried: only the awslogs driver is supported");
                }
            }
            "logDriverOptions" => {
                if obj.get("logDriver").and_then(text).as_deref() != Some("awslogs") {
                    notes.add(&fpath, "not carried: only awslogs options are converted");
                    continue;
                }
                let mut group = None;
                let mut region = None;
                let mut prefix = None;
                for (name, value) in pairs(v) {
                    match name.as_str() {
                        "awslogs-group" => group = Some(value),
                        "awslogs-region" => region = Some(value),
                        "awslogs-stream-prefix" => prefix = Some(value),
                        other => notes.add(
                            &fpath,
                            format!("option `{other}` not carried: only awslogs-group, -region and -stream-prefix are"),
                        ),
                    }
                }
                match (group, region) {
                    (Some(g), Some(r)) => {
                        let mut logs = json!({"group": g, "region": r});
                        if let Some(p) = prefix {
                            logs["stream_prefix"] = json!(p);
                        }
                        out.spec.insert("logs".into(), logs);
                    }
                    _ => notes.add(
                        &fpath,
                        "not carried: awslogs needs both awslogs-group and awslogs-region",
                    ),
                }
            }
            "remoteFSRoot" => out.remote_fs = text(v),
            "privileged" => notes.add(&fpath, "not carried: Fargate does not run privileged containers"),
            "defaultCapacityProvider" => notes.add(
                &fpath,
                "not carried: tasks use launch type FARGATE unless `capacityProviderStrategies` are given",
            ),
            "capacityProviderStrategies" => {
                let list: Vec<Value> = v
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|e| {
                                let mut cp = json!({"provider": text(e.get("provider")?)?});
                                if let Some(w) = e.get("weight").and_then(int) {
                                    cp["weight"] = json!(w);
                                }
                                if let Some(b) = e.get("base").and_then(int) {
                                    cp["base"] = json!(b);
                                }
                                Some(cp)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.spec.insert("capacity_providers".into(), json!(list));
            }
            "inheritFrom" => {
                let parent = text(v).unwrap_or_default();
                match renamed.get(&parent) {
                    Some(p) => out.inherit_from = Some(p.clone()),
                    None => notes.add(
                        &fpath,
                        format!("not carried: no template `{parent}` in this cloud"),
                    ),
                }
            }
            "operatingSystemFamily" => {
                out.spec.insert("operating_system".into(), json!(text(v)));
            }
            "cpuArchitecture" => {
                out.spec.insert("cpu_architecture".into(), json!(text(v)));
            }
            "platformVersion" => {
                out.spec.insert("platform_version".into(), json!(text(v)));
            }
            "ephemeralStorageSizeInGiB" => {
                out.spec.insert("ephemeral_storage_gib".into(), json!(int(v)));
            }
            "enableExecuteCommand" => {
                out.spec.insert("enable_execute_command".into(), json!(boolean(v)));
            }
            "tags" => {
                let tags: Map<String, Value> =
                    pairs(v).into_iter().map(|(k, v)| (k, json!(v))).collect();
                out.spec.insert("tags".into(), Value::Object(tags));
            }
            "taskDefinitionOverride" => {
                out.spec.insert("task_definition".into(), json!(text(v)));
            }
            "agentContainerName" => {
                out.spec.insert("container_name".into(), json!(text(v)));
            }
            "uniqueRemoteFSRoot" => notes.add(&fpath, "not carried: each agent runs in its own task, so the workspace root is already unique"),
            "repositoryCredentials" => notes.add(&fpath, "not carried: give the execution role access to the registry (secretsmanager) instead"),
            "jvmArgs" | "entrypoint" => notes.add(&fpath, "not carried: the agent command is built by jenkins-cloud; bake JVM options into the image (JAVA_OPTS) or set them in `environment`"),
            "mountPoints" => notes.add(&fpath, "not carried: host mounts do not exist on Fargate; use `efs_volumes`"),
            "efsMountPoints" => notes.add(&fpath, "not carried: convert by hand to `spec.efs_volumes` (file system id, container path)"),
            "portMappings" | "extraHosts" | "ulimits" | "dnsSearchDomains" | "sharedMemorySize" | "kernelCapabilities" | "containerUser" => {
                notes.add(&fpath, "not carried: no equivalent container setting in the fargate spec")
            }
            "placementStrategies" => notes.add(&fpath, "not carried: placement strategies do not apply to Fargate"),
            "dynamicTaskDefinitionOverride" => notes.add(&fpath, "not carried: use `spec.task_definition` with a fixed ARN"),
            _ => notes.add(&fpath, "not carried: no equivalent"),
        }
    }
    if out.labels.is_none() && inherits.is_none() {
        notes.add(
            tpath,
            "no `label`: the template only takes builds without a label",
        );
    }
    out
}

const EC2_CLOUD_DROPPED: &[(&str, &str)] = &[
    (
        "credentialsId",
        "AWS credentials come from the default chain",
    ),
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
];

fn ec2_cloud(
    body: &Value,
    path: &str,
    notes: &mut Notes,
    caps: &mut Vec<(String, i64)>,
    used: &mut Vec<String>,
) -> Option<OutCloud> {
    let obj = body.as_object()?;
    let name = obj
        .get("name")
        .or_else(|| obj.get("cloudName"))
        .and_then(text)
        .unwrap_or_else(|| "ec2".into());
    for (k, v) in obj {
        if is_unset(v) || matches!(k.as_str(), "name" | "cloudName" | "region" | "templates") {
            continue;
        }
        if k == "instanceCapStr" {
            if let Some(n) = int(v).filter(|n| *n > 0) {
                caps.push((format!("{path}.{k}"), n));
            }
            continue;
        }
        match EC2_CLOUD_DROPPED.iter().find(|(n, _)| n == k) {
            Some((_, why)) => notes.add(&format!("{path}.{k}"), format!("not carried: {why}")),
            None => notes.add(&format!("{path}.{k}"), "not carried: no equivalent"),
        }
    }
    let list = obj
        .get("templates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cloud_name = sanitize_name(&name).if_empty("ec2");
    let mut templates = Vec::new();
    for (j, t) in list.iter().enumerate() {
        let tpath = format!("{path}.templates[{j}]");
        let base = t
            .get("description")
            .and_then(text)
            .map(|d| sanitize_name(&d))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{cloud_name}-{j}"));
        let ours = unique_name(base, used);
        if let Some(t) = ec2_template(t, &tpath, ours, notes) {
            templates.push(t);
        }
    }
    if templates.is_empty() {
        notes.add(path, "skipped: no usable templates");
        return None;
    }
    Some(OutCloud {
        name: cloud_name,
        kind: "ec2",
        region: obj.get("region").and_then(text),
        clusters: Vec::new(),
        templates,
    })
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

fn ec2_template(t: &Value, tpath: &str, name: String, notes: &mut Notes) -> Option<OutTemplate> {
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
        if is_unset(v) && !matches!(k.as_str(), "metadataTokensRequired") {
            continue;
        }
        match k.as_str() {
            "ami" => {}
            "description" => notes.add(&fpath, format!("used as the template name `{}`", out.name)),
            "type" => {
                let raw = text(v).unwrap_or_default();
                match instance_type(&raw) {
                    Some(it) => {
                        if it != raw {
                            notes.add(&fpath, format!("`{raw}` written as `{it}`"));
                        }
                        out.spec.insert("instance_types".into(), json!([it]));
                    }
                    None => notes.add(&fpath, format!("`{raw}` is not an instance type name; default used")),
                }
            }
            "labelString" => out.labels = text(v),
            "numExecutors" => out.executors = int(v).and_then(|n| u32::try_from(n).ok()),
            "idleTerminationMinutes" => match int(v) {
                Some(n) if n > 0 => out.idle_timeout = Some(format!("{n}m")),
                Some(_) => out.idle_timeout = Some("never".into()),
                None => notes.add(&fpath, "not carried: not a number of minutes"),
            },
            "subnetId" => {
                out.spec.insert("subnets".into(), json!(split_list(v)));
            }
            "securityGroups" => {
                let (ids, names): (Vec<String>, Vec<String>) =
                    split_list(v).into_iter().partition(|g| g.starts_with("sg-"));
                if !names.is_empty() {
                    notes.add(
                        &fpath,
                        format!(
                            "not carried: {} are group names; the ec2 spec takes ids (sg-…): look them up and add them",
                            names.join(", ")
                        ),
                    );
                }
                if !ids.is_empty() {
                    out.spec.insert("security_groups".into(), json!(ids));
                }
            }
            "iamInstanceProfile" => {
                let raw = text(v).unwrap_or_default();
                let profile = raw.rsplit('/').next().unwrap_or(&raw).to_owned();
                if profile != raw {
                    notes.add(&fpath, format!("ARN written as the profile name `{profile}`"));
                }
                out.spec.insert("instance_profile".into(), json!(profile));
            }
            "remoteFS" => out.remote_fs = text(v),
            "mode" => out.mode = text(v).map(|m| m.to_ascii_uppercase()),
            "spotConfig" => {
                let mut spot = Map::new();
                let use_bid = v.get("useBidPrice").and_then(boolean).unwrap_or(true);
                if let Some(price) = v.get("spotMaxBidPrice").and_then(text) {
                    if use_bid {
                        spot.insert("max_price".into(), json!(price));
                    }
                }
                spot.insert(
                    "fallback_to_on_demand".into(),
                    json!(v.get("fallbackToOndemand").and_then(boolean).unwrap_or(false)),
                );
                for key in v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                    if !matches!(key.as_str(), "useBidPrice" | "spotMaxBidPrice" | "fallbackToOndemand") {
                        notes.add(&format!("{fpath}.{key}"), "not carried: no equivalent (spot blocks are retired by AWS)");
                    }
                }
                out.spec.insert("spot".into(), Value::Object(spot));
            }
            "ebsOptimized" => notes.add(&fpath, "not carried: current instance types are EBS-optimized by default"),
            "tags" => {
                let tags: Map<String, Value> =
                    pairs(v).into_iter().map(|(k, v)| (k, json!(v))).collect();
                out.spec.insert("tags".into(), Value::Object(tags));
            }
            "amiType" => notes.add(&fpath, "not carried: SSH/WinRM launch settings; agents here start inbound from user data"),
            "userData" => notes.add(&fpath, "not carried: jenkins-cloud's user data starts the agent; move extra steps into the AMI or `spec.user_data_template`"),
            "instanceCapStr" => match int(v) {
                Some(n) if n > 0 => out.instance_cap = u32::try_from(n).ok(),
                _ => {}
            },
            "minimumNumberOfInstances" => {
                out.min_idle = int(v).and_then(|n| u32::try_from(n).ok());
                notes.add(&fpath, "carried as `min_idle` (idle agents kept warm), close but not identical");
            }
            "maxTotalUses" => match int(v) {
                Some(n) if n > 0 => out.max_uses = u32::try_from(n).ok(),
                _ => {}
            },
            "metadataTokensRequired" => {
                metadata.insert("require_tokens".into(), json!(boolean(v).unwrap_or(false)));
            }
            "metadataHopsLimit" => {
                metadata.insert("hop_limit".into(), json!(int(v)));
            }
            "metadataSupported" | "metadataEndpointEnabled" => notes.add(&fpath, "not carried: the metadata endpoint is always on (IMDSv2 by default)"),
            "zone" => notes.add(&fpath, "not carried: the subnets decide the zone"),
            "remoteAdmin" | "rootCommandPrefix" | "slaveCommandPrefix" | "slaveCommandSuffix" | "sshPort" | "jvmopts" | "javaPath" | "connectionStrategy" | "connectBySSHProcess" | "connectUsingPublicIp" | "hostKeyVerificationStrategy" | "launchTimeoutStr" | "associatePublicIp" => {
                notes.add(&fpath, "not carried: SSH launch setting; agents connect inbound over WebSocket")
            }
            "stopOnTerminate" => notes.add(&fpath, "not carried: use `spec.warm_pool: true` to stop and reuse instances (at most `spec.warm_pool_max`, default 10, stay stopped)"),
            "deleteRootOnTermination" | "useEphemeralDevices" | "ebsEncryptRootVolume" | "monitoring" | "t2Unlimited" | "tenancy" | "customDeviceMapping" | "nodeProperties" | "enclaveEnabled" | "avoidUsingOrphanedNodes" | "minimumNumberOfSpareInstances" | "minimumNumberOfInstancesTimeRangeConfig" => {
                notes.add(&fpath, "not carried: no equivalent")
            }
            _ => notes.add(&fpath, "not carried: no equivalent"),
        }
    }
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
