//! amazon-ecs plugin clouds (`ecs:`) → `kind: fargate` clouds.
//!
//! Fields: `ECSCloud` and `ECSTaskTemplate` (with `EFSMountPointEntry`,
//! `LogDriverOption`, `CapacityProviderStrategyItem`) in
//! <https://github.com/jenkinsci/amazon-ecs-plugin/tree/master/src/main/java/com/cloudbees/jenkins/plugins/amazonecs>;
//! the plugin's own Fargate example is
//! <https://github.com/jenkinsci/amazon-ecs-plugin/blob/master/examples/fargate/docker/files/jenkins.yaml>.

use serde_json::{json, Map, Value};

use super::output::{OutCloud, OutTemplate};
use super::values::{
    boolean, int, note_dropped, or_default, pairs, sanitize_name, split_list, tags, text,
    unique_name, Notes, Renamed,
};
use super::Converted;

const CLOUD_DROPPED: &[(&str, &str)] = &[
    (
        "credentialsId",
        "AWS credentials come from the default chain (environment, profile, task or instance role)",
    ),
    (
        "assumedRoleArn",
        "assume the role outside (AWS_ROLE_ARN / profile) instead",
    ),
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
    (
        "allowedOverrides",
        "pipeline-level template overrides do not exist here; define a template per variant",
    ),
];

const CLOUD_KNOWN: &[&str] = &[
    "name",
    "cluster",
    "regionName",
    "jenkinsUrl",
    "tunnel",
    "retentionTimeout",
    "templates",
];

/// Converts one `ecs:` cloud into `converted`.
pub(super) fn cloud(body: &Value, path: &str, notes: &mut Notes, converted: &mut Converted) {
    let Some(obj) = body.as_object() else {
        notes.add(path, "skipped: not a mapping");
        return;
    };
    let name = obj
        .get("name")
        .and_then(text)
        .unwrap_or_else(|| "ecs".into());
    let Some(cluster) = obj.get("cluster").and_then(text) else {
        notes.add(path, "skipped: no `cluster`");
        return;
    };
    if let Some(url) = obj.get("jenkinsUrl").and_then(text) {
        converted.jenkins_url.get_or_insert(url);
    }
    if let Some(t) = obj.get("tunnel").and_then(text) {
        notes.add(
            &format!("{path}.tunnel"),
            format!("`{t}` replaced by WebSocket: agents connect to `jenkins.url` over HTTPS, so no load balancer for the agent TCP port is needed"),
        );
        converted.tunnel.get_or_insert(t);
    }
    let retention = obj.get("retentionTimeout").and_then(int);
    note_dropped(obj, path, CLOUD_KNOWN, CLOUD_DROPPED, notes);
    let list = obj
        .get("templates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut renamed = Renamed::new();
    let mut named = Vec::new();
    for (j, t) in list.iter().enumerate() {
        let raw = t
            .get("templateName")
            .and_then(text)
            .unwrap_or_else(|| format!("{name}-{j}"));
        let ours = unique_name(sanitize_name(&raw), &mut converted.used_names);
        if ours != raw {
            notes.add(
                &format!("{path}.templates[{j}].templateName"),
                format!("`{raw}` renamed `{ours}` (names are a-z, 0-9, -)"),
            );
        }
        renamed.insert(raw, ours.clone());
        named.push((j, t, ours));
    }
    let context = CloudContext {
        cluster: &cluster,
        retention,
        renamed: &renamed,
    };
    let templates: Vec<OutTemplate> = named
        .into_iter()
        .map(|(j, t, ours)| template(t, &format!("{path}.templates[{j}]"), ours, &context, notes))
        .collect();
    if templates.is_empty() {
        notes.add(path, "skipped: no templates");
        return;
    }
    converted.clouds.push(OutCloud {
        name: or_default(sanitize_name(&name), "ecs"),
        kind: "fargate",
        region: obj.get("regionName").and_then(text),
        clusters: vec![cluster],
        templates,
    });
}

struct CloudContext<'a> {
    cluster: &'a str,
    retention: Option<i64>,
    renamed: &'a Renamed,
}

fn template(
    t: &Value,
    tpath: &str,
    name: String,
    cloud: &CloudContext<'_>,
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
        out.spec.insert("cluster".into(), json!(cloud.cluster));
        match cloud.retention {
            Some(0) => out.idle_timeout = Some("never".into()),
            Some(r) if r > 0 => out.idle_timeout = Some(format!("{r}m")),
            _ => {}
        }
    }
    let memory = obj.get("memory").and_then(int).unwrap_or(0);
    for (k, v) in obj {
        let fpath = format!("{tpath}.{k}");
        if super::values::is_unset(v) && k != "assignPublicIp" {
            continue;
        }
        field(k, v, obj, &fpath, memory, cloud, &mut out, notes);
    }
    if out.labels.is_none() && inherits.is_none() {
        notes.add(
            tpath,
            "no `label`: the template only takes builds without a label",
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn field(
    k: &str,
    v: &Value,
    obj: &Map<String, Value>,
    fpath: &str,
    memory: i64,
    cloud: &CloudContext<'_>,
    out: &mut OutTemplate,
    notes: &mut Notes,
) {
    let mut spec = |key: &str, value: Value| {
        out.spec.insert(key.into(), value);
    };
    match k {
        "templateName" => {}
        "image" => spec("image", json!(text(v))),
        "cpu" => spec("cpu", json!(int(v))),
        "memory" => spec("memory", json!(int(v))),
        "memoryReservation" if memory > 0 => notes.add(
            fpath,
            "not carried: the agent is the task's only container, so it gets all of the task `memory` (a soft reservation below it changes nothing)",
        ),
        "memoryReservation" => {
            spec("memory", json!(int(v)));
            notes.add(fpath, "used as the task `memory` (no hard `memory` was set)");
        }
        "launchType" => match text(v).as_deref() {
            Some("FARGATE") => {}
            other => notes.add(
                fpath,
                format!(
                    "`{}`: only Fargate is supported by the fargate backend; imported as Fargate (use an `ec2` cloud for VMs)",
                    other.unwrap_or("?")
                ),
            ),
        },
        "networkMode" => {
            if text(v).as_deref() != Some("awsvpc") {
                notes.add(fpath, "not carried: Fargate always uses awsvpc");
            }
        }
        "subnets" => spec("subnets", json!(split_list(v))),
        "securityGroups" => spec("security_groups", json!(split_list(v))),
        "assignPublicIp" => spec("assign_public_ip", json!(boolean(v).unwrap_or(false))),
        "executionRole" => spec("execution_role_arn", json!(text(v))),
        "taskrole" => spec("task_role_arn", json!(text(v))),
        "environments" => {
            for (name, value) in pairs(v) {
                out.environment.insert(name, value);
            }
        }
        "logDriver" => {
            if text(v).as_deref() != Some("awslogs") {
                notes.add(fpath, "not carried: only the awslogs driver is supported");
            }
        }
        "logDriverOptions" => logs(v, obj, fpath, out, notes),
        "remoteFSRoot" => out.remote_fs = text(v),
        "label" => out.labels = text(v),
        "privileged" => notes.add(fpath, "not carried: Fargate does not run privileged containers"),
        "defaultCapacityProvider" => notes.add(
            fpath,
            "not carried: the cluster's default strategy is used when `capacityProviderStrategies` are not given",
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
            spec("capacity_providers", json!(list));
        }
        "inheritFrom" => {
            let parent = text(v).unwrap_or_default();
            match cloud.renamed.get(&parent) {
                Some(p) => out.inherit_from = Some(p.clone()),
                None => notes.add(fpath, format!("not carried: no template `{parent}` in this cloud")),
            }
        }
        "operatingSystemFamily" => spec("operating_system", json!(text(v))),
        "cpuArchitecture" => spec("cpu_architecture", json!(text(v))),
        "platformVersion" => spec("platform_version", json!(text(v))),
        "ephemeralStorageSizeInGiB" => spec("ephemeral_storage_gib", json!(int(v))),
        "enableExecuteCommand" => spec("enable_execute_command", json!(boolean(v))),
        "tags" => spec("tags", tags(v)),
        "taskDefinitionOverride" => spec("task_definition", json!(text(v))),
        "agentContainerName" => spec("container_name", json!(text(v))),
        "efsMountPoints" => efs(v, fpath, out, notes),
        "uniqueRemoteFSRoot" => notes.add(fpath, "not carried: each agent runs in its own task, so the workspace root is already unique"),
        "repositoryCredentials" => notes.add(fpath, "not carried: give the execution role access to the registry (secretsmanager) instead"),
        "jvmArgs" | "entrypoint" => notes.add(fpath, "not carried: the agent command is built by jenkins-cloud; bake JVM options into the image (JAVA_OPTS) or set them in `environment`"),
        "mountPoints" => notes.add(fpath, "not carried: host mounts do not exist on Fargate; use `efs_volumes`"),
        "portMappings" | "extraHosts" | "ulimits" | "dnsSearchDomains" | "sharedMemorySize" | "kernelCapabilities" | "containerUser" => {
            notes.add(fpath, "not carried: no equivalent container setting in the fargate spec")
        }
        "placementStrategies" => notes.add(fpath, "not carried: placement strategies do not apply to Fargate"),
        "dynamicTaskDefinitionOverride" => notes.add(fpath, "not carried: use `spec.task_definition` with a fixed ARN"),
        _ => notes.add(fpath, "not carried: no equivalent"),
    }
}

fn logs(
    v: &Value,
    obj: &Map<String, Value>,
    fpath: &str,
    out: &mut OutTemplate,
    notes: &mut Notes,
) {
    if obj.get("logDriver").and_then(text).as_deref() != Some("awslogs") {
        notes.add(fpath, "not carried: only awslogs options are converted");
        return;
    }
    let (mut group, mut region, mut prefix) = (None, None, None);
    for (name, value) in pairs(v) {
        match name.as_str() {
            "awslogs-group" => group = Some(value),
            "awslogs-region" => region = Some(value),
            "awslogs-stream-prefix" => prefix = Some(value),
            other => notes.add(
                fpath,
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
            fpath,
            "not carried: awslogs needs both awslogs-group and awslogs-region",
        ),
    }
}

/// `efsMountPoints` (`EFSMountPointEntry`: name, containerPath, readOnly,
/// fileSystemId, rootDirectory, accessPointId, transitEncryption, iam).
fn efs(v: &Value, fpath: &str, out: &mut OutTemplate, notes: &mut Notes) {
    let mut volumes = Vec::new();
    for (i, e) in v.as_array().into_iter().flatten().enumerate() {
        let at = format!("{fpath}[{i}]");
        let (Some(fs), Some(path)) = (
            e.get("fileSystemId").and_then(text),
            e.get("containerPath").and_then(text),
        ) else {
            notes.add(&at, "not carried: needs `fileSystemId` and `containerPath`");
            continue;
        };
        let name = e
            .get("name")
            .and_then(text)
            .map(|n| sanitize_name(&n))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("efs-{i}"));
        let mut vol = json!({"name": name, "file_system_id": fs, "container_path": path});
        let access_point = e.get("accessPointId").and_then(text);
        match e.get("rootDirectory").and_then(text) {
            // ECS: with an access point the root directory must be omitted or `/`
            // (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_EFSVolumeConfiguration.html).
            Some(root) if access_point.is_some() && root != "/" => notes.add(
                &format!("{at}.rootDirectory"),
                format!("not carried: with an access point ECS takes the directory from the access point (`{root}` must be set there)"),
            ),
            Some(root) => vol["root_directory"] = json!(root),
            None => {}
        }
        if let Some(ap) = access_point {
            vol["access_point_id"] = json!(ap);
        }
        if let Some(ro) = e.get("readOnly").and_then(boolean) {
            vol["read_only"] = json!(ro);
        }
        if let Some(tls) = e.get("transitEncryption").and_then(boolean) {
            vol["transit_encryption"] = json!(tls);
        }
        if e.get("iam").and_then(boolean) == Some(true) {
            notes.add(
                &format!("{at}.iam"),
                "not carried: EFS IAM authorization is not set by the fargate spec; the file system policy must allow the task role without it",
            );
        }
        volumes.push(vol);
    }
    if !volumes.is_empty() {
        out.spec.insert("efs_volumes".into(), Value::Array(volumes));
    }
}
