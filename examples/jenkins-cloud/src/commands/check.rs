//! `check`: the configuration is valid; now probe what it points at. Jenkins:
//! reachable, credentials, the demand mode its permissions allow, version,
//! placeholders. Each cloud: Fargate clusters, subnets, security groups, image;
//! EC2 AMIs, subnets, security groups (names with the ids they resolve to).
//! Read-only: nothing is created.
//!
//! Every [`Finding`] is OK, WARN or FAIL with what to fix; any FAIL makes the
//! command exit non-zero.

use std::fmt;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use jenkins_cloud_core::jenkins::client::{placeholder_name, DemandMode, JenkinsClient};
use jenkins_cloud_core::jenkins::{JenkinsApi, JenkinsError};
use jenkins_cloud_ec2::groups::{is_group_id, resolve_names};
use jenkins_cloud_ec2::sdk::SdkApi;
use jenkins_cloud_ec2::spec::AmiSelector;
use jenkins_cloud_ec2::Ec2Spec;
use jenkins_cloud_fargate::FargateSpec;
use serde::Serialize;

use super::aws::{self, AwsClients, AwsHooks};
use super::{open_jenkins_client, permissions, Access};
use crate::config::{CloudKind, CloudSettings, Config};

/// Outcome of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Works.
    Ok,
    /// Works, or could not be verified, but deserves a look.
    Warn,
    /// Will not work as configured.
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        })
    }
}

/// One result of `check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// OK, WARN or FAIL.
    pub level: Level,
    /// What was checked (`jenkins`, `clouds[0] fargate: cluster ci`…).
    pub subject: String,
    /// What was found.
    pub message: String,
    /// What to do about it (WARN and FAIL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub(crate) fn ok(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            level: Level::Ok,
            subject: subject.into(),
            message: message.into(),
            fix: None,
        }
    }

    pub(crate) fn warn(
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Warn,
            subject: subject.into(),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn fail(
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Fail,
            subject: subject.into(),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every finding of a `check` run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// In probe order.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Number of findings at `level`.
    pub fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }

    /// Whether any finding is a FAIL.
    pub fn has_failures(&self) -> bool {
        self.count(Level::Fail) > 0
    }

    /// The findings about `subject_prefix` (for tests and filtering).
    pub fn about<'a>(&'a self, subject_prefix: &'a str) -> impl Iterator<Item = &'a Finding> {
        self.findings
            .iter()
            .filter(move |f| f.subject.starts_with(subject_prefix))
    }

    /// Human-readable: one line per finding, the fix indented below.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&format!("{:<4} {}: {}\n", f.level, f.subject, f.message));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("     fix: {fix}\n"));
            }
        }
        out.push_str(&format!(
            "{} ok, {} warning(s), {} failure(s)\n",
            self.count(Level::Ok),
            self.count(Level::Warn),
            self.count(Level::Fail)
        ));
        out
    }
}

/// Probes Jenkins and every cloud of `config`.
pub async fn check(config: &Config, hooks: &AwsHooks) -> CheckReport {
    let mut report = CheckReport::default();
    report.findings.extend(check_jenkins(config).await);
    for i in 0..config.clouds.len() {
        report.findings.extend(check_cloud(config, i, hooks).await);
    }
    report
}

fn jenkins_failure(e: &JenkinsError, config: &Config) -> Finding {
    let url = &config.jenkins.url;
    match e {
        JenkinsError::Unauthorized => Finding::fail(
            "jenkins: credentials",
            format!("{url} rejected user `{}` and its API token (401)", config.jenkins.user),
            "check user/token: `jenkins.user` must be the user id and the token (from `token_env`/`token_file`) one of its API tokens (User › Configure › API Token)",
        ),
        JenkinsError::Forbidden { permission } => Finding::fail(
            "jenkins: permissions",
            format!("listing nodes was refused (403): {permission}"),
            "grant the user Overall/Read (and the Agent permissions; see docs/operations.md)",
        ),
        JenkinsError::Transport { .. } | JenkinsError::Timeout { .. } => Finding::fail(
            "jenkins: reachable",
            format!("{url}: {e}"),
            "check `jenkins.url`, DNS, TLS and that this host can reach the controller",
        ),
        JenkinsError::NotFound { .. } | JenkinsError::BadResponse { .. } => Finding::fail(
            "jenkins: reachable",
            format!("{url} answered, but not like Jenkins: {e}"),
            "`jenkins.url` must be the controller's root URL (with its path prefix, if any)",
        ),
        other => Finding::fail(
            "jenkins: reachable",
            format!("{url}: {other}"),
            "see the message; retry once the controller is healthy",
        ),
    }
}

/// Probes the controller: reachability and credentials (`GET /computer/api/json`),
/// version, the demand mode (a read-only script-console query), placeholders.
pub async fn check_jenkins(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let configured = config.jenkins.demand_mode;
    let probe_mode = match configured {
        DemandMode::WhyParsing => DemandMode::WhyParsing,
        _ => DemandMode::ScriptConsole,
    };
    let client = match open_jenkins_client(config, probe_mode, Access::ReadOnly) {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::fail(
                "jenkins: settings",
                e.0,
                "set the token source (`jenkins.token_env` or `jenkins.token_file`) and a usable `jenkins.url`",
            ));
            return out;
        }
    };
    match client.nodes().await {
        Ok(nodes) => out.push(Finding::ok(
            "jenkins: reachable",
            format!(
                "{} answered; user `{}` authenticated; {} node(s) of owner `{}`",
                config.jenkins.url,
                config.jenkins.user,
                nodes.len(),
                config.owner
            ),
        )),
        Err(e) => {
            out.push(jenkins_failure(&e, config));
            return out;
        }
    }
    out.push(version_finding(&client, config));
    match probe_mode {
        DemandMode::WhyParsing => out.push(Finding::ok(
            "jenkins: demand mode",
            "why-parsing (configured): labels are read from the queue's `why` texts, with one placeholder node per template",
        )),
        _ => out.push(demand_finding(&client, configured).await),
    }
    let why_mode = match out.last() {
        Some(f) => f.message.starts_with("why-parsing"),
        None => false,
    };
    if why_mode {
        out.extend(placeholder_findings(config).await);
    }
    out
}

fn version_finding(client: &JenkinsClient, config: &Config) -> Finding {
    let websocket = config.jenkins.tunnel.is_none();
    match client.version() {
        Some(v) if websocket && v < jenkins_cloud_core::jenkins::client::JenkinsVersion::parse("2.217").expect("valid") => {
            Finding::fail(
                "jenkins: version",
                format!("Jenkins {v} has no WebSocket agents (2.217+)"),
                "upgrade Jenkins, or set `jenkins.tunnel: host:port` for TCP agents",
            )
        }
        Some(v) => Finding::ok(
            "jenkins: version",
            format!(
                "Jenkins {v}; nodes created {}",
                if v.has_xml_create() {
                    "as XML (2.539+)"
                } else {
                    "through the form API"
                }
            ),
        ),
        None => Finding::warn(
            "jenkins: version",
            "no `X-Jenkins` header in the answer",
            "is `jenkins.url` the controller itself? A proxy may strip the header; the form API will be used",
        ),
    }
}

async fn demand_finding(client: &JenkinsClient, configured: DemandMode) -> Finding {
    match client.demand().await {
        Ok(d) => Finding::ok(
            "jenkins: demand mode",
            format!(
                "script console (exact labels; the user has Overall/Administer); {} queued item(s) now",
                d.items.len()
            ),
        ),
        Err(JenkinsError::Forbidden { .. }) if configured == DemandMode::Auto => Finding::warn(
            "jenkins: demand mode",
            "why-parsing: the script console was refused (no Overall/Administer), so labels are read from the queue's `why` texts with placeholder nodes",
            "fine as is; grant Overall/Administer for exact labels, or set `jenkins.demand_mode: why_parsing` to say so",
        ),
        Err(JenkinsError::Forbidden { .. }) => Finding::fail(
            "jenkins: demand mode",
            "`demand_mode: script_console` but the script console was refused (403): the user lacks Overall/Administer",
            "grant Overall/Administer, or set `jenkins.demand_mode: why_parsing` (or `auto`)",
        ),
        Err(e) => Finding::fail(
            "jenkins: demand mode",
            format!("reading the queue failed: {e}"),
            "see the message; `GET /queue/api/json` and `POST /scriptText` must work for the user",
        ),
    }
}

/// Which placeholder nodes exist (`GET /computer/api/json?tree=computer[displayName]`).
async fn placeholder_findings(config: &Config) -> Vec<Finding> {
    let names: Vec<String> = config
        .templates()
        .map(|(_, t)| placeholder_name(&config.owner, &t.name))
        .collect();
    let existing = match list_computer_names(config).await {
        Ok(n) => n,
        Err(e) => {
            return vec![Finding::warn(
                "jenkins: placeholders",
                format!("could not list nodes: {e}"),
                "retry; `run` creates missing placeholders itself",
            )]
        }
    };
    names
        .into_iter()
        .map(|name| {
            if existing.contains(&name) {
                Finding::ok(format!("jenkins: placeholder {name}"), "exists")
            } else {
                Finding::warn(
                    format!("jenkins: placeholder {name}"),
                    "missing (why-parsing needs it to attribute queue items to its template)",
                    "`run` and `plan` create it on their first pass: the user needs Agent/Create and Agent/Delete",
                )
            }
        })
        .collect()
}

async fn list_computer_names(config: &Config) -> Result<Vec<String>, String> {
    let token = config.jenkins.token()?;
    let mut url = config.jenkins.url.clone();
    if !url.ends_with('/') {
        url.push('/');
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let response = http
        .get(format!("{url}computer/api/json"))
        .query(&[("tree", "computer[displayName]")])
        .basic_auth(&config.jenkins.user, Some(token.expose()))
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    Ok(body["computer"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|c| c["displayName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Probes one cloud (the memory backend needs nothing).
pub async fn check_cloud(config: &Config, index: usize, hooks: &AwsHooks) -> Vec<Finding> {
    let cloud = &config.clouds[index];
    let prefix = format!("clouds[{index}] {}", cloud.name);
    match cloud.kind {
        CloudKind::Memory => vec![Finding::ok(
            prefix,
            "memory backend: nothing to probe (nothing really runs)",
        )],
        CloudKind::Fargate => {
            let clients = aws::clients(cloud, hooks).await;
            let mut out = check_fargate(cloud, &prefix, &clients).await;
            out.push(permissions::ecs(config, &prefix));
            out
        }
        CloudKind::Ec2 => {
            let clients = aws::clients(cloud, hooks).await;
            let mut out = check_ec2(cloud, &prefix, &clients).await;
            out.extend(permissions::ec2(config, cloud, &prefix, &clients).await);
            out
        }
    }
}

/// An SDK error as `Code: message`, never the request (no credentials in it).
fn aws_error<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(e).to_string(),
    }
}

fn is_not_found(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.contains("NotFound") || c.contains("Malformed"))
}

const AWS_FIX: &str =
    "check the AWS credentials, `region` and `endpoint_url` of the cloud, and the IAM policy (`jenkins-cloud iam-policy`)";

async fn check_network(
    prefix: &str,
    clients: &AwsClients,
    subnets: &[String],
    groups: &[String],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in subnets {
        let subject = format!("{prefix}: subnet {s}");
        match clients.ec2.describe_subnets().subnet_ids(s).send().await {
            Ok(r) if !r.subnets().is_empty() => {
                let sub = &r.subnets()[0];
                out.push(Finding::ok(
                    subject,
                    format!(
                        "exists (vpc {}, zone {}, {} free address(es))",
                        sub.vpc_id().unwrap_or("?"),
                        sub.availability_zone().unwrap_or("?"),
                        sub.available_ip_address_count().unwrap_or(0)
                    ),
                ))
            }
            Ok(_) => out.push(Finding::fail(
                subject,
                "not found",
                "use an existing subnet id of this region",
            )),
            Err(e) if is_not_found(e.code()) => out.push(Finding::fail(
                subject,
                format!("not found ({})", aws_error(&e)),
                "use an existing subnet id of this account and region",
            )),
            Err(e) => out.push(Finding::fail(subject, aws_error(&e), AWS_FIX)),
        }
    }
    for g in groups {
        let subject = format!("{prefix}: security group {g}");
        match clients
            .ec2
            .describe_security_groups()
            .group_ids(g)
            .send()
            .await
        {
            Ok(r) if !r.security_groups().is_empty() => out.push(Finding::ok(
                subject,
                format!(
                    "exists (`{}`, vpc {})",
                    r.security_groups()[0].group_name().unwrap_or("?"),
                    r.security_groups()[0].vpc_id().unwrap_or("?")
                ),
            )),
            Ok(_) => out.push(Finding::fail(
                subject,
                "not found",
                "use an existing security group id",
            )),
            Err(e) if is_not_found(e.code()) => out.push(Finding::fail(
                subject,
                format!("not found ({})", aws_error(&e)),
                "use an existing security group id of this account and region",
            )),
            Err(e) => out.push(Finding::fail(subject, aws_error(&e), AWS_FIX)),
        }
    }
    out
}

fn push_unique(list: &mut Vec<String>, items: &[String]) {
    for i in items {
        if !list.contains(i) {
            list.push(i.clone());
        }
    }
}

async fn check_fargate(cloud: &CloudSettings, prefix: &str, clients: &AwsClients) -> Vec<Finding> {
    let mut out = Vec::new();
    match clients
        .ecs
        .describe_clusters()
        .set_clusters(Some(cloud.clusters.clone()))
        .send()
        .await
    {
        Ok(r) => {
            for name in &cloud.clusters {
                let subject = format!("{prefix}: cluster {name}");
                let found = r.clusters().iter().find(|c| {
                    c.cluster_name() == Some(name.as_str())
                        || c.cluster_arn() == Some(name.as_str())
                });
                match found {
                    Some(c) if c.status() == Some("ACTIVE") => out.push(Finding::ok(
                        subject,
                        format!("ACTIVE, {} running task(s)", c.running_tasks_count()),
                    )),
                    Some(c) => out.push(Finding::fail(
                        subject,
                        format!("status {}", c.status().unwrap_or("unknown")),
                        "use an ACTIVE cluster (recreate it or fix `clusters`)",
                    )),
                    None => out.push(Finding::fail(
                        subject,
                        "not found in this account and region",
                        "create the cluster (`aws ecs create-cluster --cluster-name …`) or fix `clusters`",
                    )),
                }
            }
        }
        Err(e) => out.push(Finding::fail(
            format!("{prefix}: clusters"),
            format!("DescribeClusters failed: {}", aws_error(&e)),
            AWS_FIX,
        )),
    }
    let mut subnets = Vec::new();
    let mut groups = Vec::new();
    let mut roles = Vec::new();
    for (j, t) in cloud.templates.iter().enumerate() {
        let tsubject = format!("{prefix}: templates[{j}] {}", t.name);
        let spec = match FargateSpec::from_value(&t.spec) {
            Ok(s) => s,
            Err(p) => {
                out.push(Finding::fail(
                    tsubject,
                    p.join("; "),
                    "fix the template spec",
                ));
                continue;
            }
        };
        push_unique(&mut subnets, &spec.subnets);
        push_unique(&mut groups, &spec.security_groups);
        for r in [&spec.execution_role_arn, &spec.task_role_arn]
            .into_iter()
            .flatten()
        {
            push_unique(&mut roles, std::slice::from_ref(r));
        }
        if spec.is_external() {
            out.push(Finding::ok(
                format!("{tsubject}: image"),
                "external task definition: its image is not checked here",
            ));
        } else {
            out.push(image_finding(&format!("{tsubject}: image"), spec.image()));
        }
    }
    out.extend(check_network(prefix, clients, &subnets, &groups).await);
    for r in roles {
        let name = r.rsplit('/').next().unwrap_or(&r).to_owned();
        out.push(Finding::warn(
            format!("{prefix}: role {r}"),
            "not checked: needs iam:GetRole, which jenkins-cloud neither has nor needs",
            format!("verify with `aws iam get-role --role-name {name}`"),
        ));
    }
    out
}

/// A container image reference: `[registry/]repository[:tag][@digest]`.
pub fn image_problem(image: &str) -> Option<String> {
    if image.trim().is_empty() {
        return Some("empty".into());
    }
    if image.chars().any(char::is_whitespace) {
        return Some(format!("`{image}` contains whitespace"));
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        if !d.starts_with("sha256:") || d.len() != 71 {
            return Some(format!("`{image}`: the digest must be sha256:<64 hex>"));
        }
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo_last, tag) = match last.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (last, None),
    };
    let path = &name[..name.len() - last.len()];
    let repo_path = path.split_once('/').map(|(first, rest)| {
        if first.contains('.') || first.contains(':') || first == "localhost" {
            rest
        } else {
            path
        }
    });
    let repo = format!("{}{repo_last}", repo_path.unwrap_or(""));
    if repo.is_empty() || repo_last.is_empty() {
        return Some(format!("`{image}` has no repository name"));
    }
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Some(format!("`{image}`: repository names are lowercase"));
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !t.starts_with(['.', '-']);
        if !ok {
            return Some(format!("`{image}`: `{t}` is not a valid tag"));
        }
    }
    None
}

fn image_finding(subject: &str, image: &str) -> Finding {
    if let Some(p) = image_problem(image) {
        return Finding::fail(
            subject,
            format!("not a valid image reference: {p}"),
            "write `[registry/]repository[:tag][@sha256:digest]`, e.g. `jenkins/inbound-agent:latest-jdk21`",
        );
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if !image.contains('@') && !last.contains(':') {
        return Finding::warn(
            subject,
            format!("`{image}` has no tag: `latest` is implied and may change under you"),
            "pin a tag (or a digest)",
        );
    }
    Finding::ok(
        subject,
        format!("`{image}` is a well-formed reference (not pulled)"),
    )
}

async fn check_ec2(cloud: &CloudSettings, prefix: &str, clients: &AwsClients) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut subnets = Vec::new();
    let mut groups = Vec::new();
    let mut profiles = Vec::new();
    for (j, t) in cloud.templates.iter().enumerate() {
        let tsubject = format!("{prefix}: templates[{j}] {}", t.name);
        let spec = match Ec2Spec::parse(&t.spec) {
            Ok(s) => s,
            Err(p) => {
                out.push(Finding::fail(
                    tsubject,
                    p.join("; "),
                    "fix the template spec",
                ));
                continue;
            }
        };
        push_unique(&mut subnets, &spec.subnets);
        let (ids, names): (Vec<String>, Vec<String>) = spec
            .security_groups
            .iter()
            .cloned()
            .partition(|g| is_group_id(g));
        push_unique(&mut groups, &ids);
        if let (Some(subnet), false) = (spec.subnets.first(), names.is_empty()) {
            out.extend(group_name_findings(&tsubject, clients, subnet, &names).await);
        }
        if let Some(p) = &spec.instance_profile {
            push_unique(&mut profiles, std::slice::from_ref(p));
        }
        out.push(ami_finding(&format!("{tsubject}: ami"), &spec.ami, clients).await);
    }
    out.extend(check_network(prefix, clients, &subnets, &groups).await);
    for p in profiles {
        out.push(Finding::warn(
            format!("{prefix}: instance profile {p}"),
            "not checked: needs iam:GetInstanceProfile, which jenkins-cloud neither has nor needs",
            format!("verify with `aws iam get-instance-profile --instance-profile-name {p}`"),
        ));
    }
    out
}

/// Each security group name of a template with the id it resolves to in
/// the first subnet's VPC, as launches resolve it.
async fn group_name_findings(
    tsubject: &str,
    clients: &AwsClients,
    subnet: &str,
    names: &[String],
) -> Vec<Finding> {
    let api = SdkApi::new(clients.ec2.clone(), clients.ssm.clone());
    match resolve_names(&api, subnet, names).await {
        Ok(r) => r
            .groups
            .into_iter()
            .map(|(name, id)| {
                let subject = format!("{tsubject}: security group `{name}`");
                match id {
                    Some(id) => Finding::ok(subject, format!("resolves to {id} (vpc {})", r.vpc_id)),
                    None => Finding::fail(
                        subject,
                        format!("no group of that name in vpc {} (the VPC of {subnet})", r.vpc_id),
                        "create the group in that VPC, or fix `security_groups` (a name or an sg- id)",
                    ),
                }
            })
            .collect(),
        Err(e) => vec![Finding::fail(
            format!("{tsubject}: security groups {}", names.join(", ")),
            format!("cannot resolve the names: {e}"),
            AWS_FIX,
        )],
    }
}

async fn ami_finding(subject: &str, ami: &AmiSelector, clients: &AwsClients) -> Finding {
    match ami {
        AmiSelector::Id { id } => match clients.ec2.describe_images().image_ids(id).send().await {
            Ok(r) if !r.images().is_empty() => Finding::ok(
                subject,
                format!("{id} exists (`{}`)", r.images()[0].name().unwrap_or("?")),
            ),
            Ok(_) => Finding::fail(subject, format!("{id} not found"), "use an AMI id of this region (AMI ids differ per region)"),
            Err(e) if is_not_found(e.code()) => Finding::fail(
                subject,
                format!("{id} not found ({})", aws_error(&e)),
                "use an AMI id of this region (AMI ids differ per region), shared with this account",
            ),
            Err(e) => Finding::fail(subject, aws_error(&e), AWS_FIX),
        },
        AmiSelector::Filter {
            name,
            owners,
            architecture,
        } => {
            let mut req = clients
                .ec2
                .describe_images()
                .set_owners(Some(owners.clone()))
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("name")
                        .values(name)
                        .build(),
                );
            if let Some(a) = architecture {
                req = req.filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("architecture")
                        .values(a)
                        .build(),
                );
            }
            match req.send().await {
                Ok(r) => {
                    let newest = r
                        .images()
                        .iter()
                        .max_by_key(|i| i.creation_date().unwrap_or_default().to_owned());
                    match newest {
                        Some(i) => Finding::ok(
                            subject,
                            format!(
                                "`{name}` of {} resolves to {} (`{}`, newest of {})",
                                owners.join(","),
                                i.image_id().unwrap_or("?"),
                                i.name().unwrap_or("?"),
                                r.images().len()
                            ),
                        ),
                        None => Finding::fail(
                            subject,
                            format!("no image named `{name}` owned by {}", owners.join(",")),
                            "fix `ami.name` / `ami.owners` (wildcards * and ?), or build the AMI in this region",
                        ),
                    }
                }
                Err(e) => Finding::fail(subject, aws_error(&e), AWS_FIX),
            }
        }
        AmiSelector::SsmParameter { ssm_parameter } => {
            match clients.ssm.get_parameter().name(ssm_parameter).send().await {
                Ok(r) => {
                    let value = r.parameter().and_then(|p| p.value()).unwrap_or_default();
                    if value.starts_with("ami-") {
                        Finding::ok(subject, format!("`{ssm_parameter}` resolves to {value}"))
                    } else {
                        Finding::fail(
                            subject,
                            format!("`{ssm_parameter}` does not hold an AMI id"),
                            "point `ami.ssm_parameter` at a parameter whose value is `ami-…`",
                        )
                    }
                }
                Err(e) => {
                    let code = e.code().unwrap_or_default().to_owned();
                    let fix = if code.contains("ParameterNotFound") {
                        "fix `ami.ssm_parameter` (public AMI parameters live under /aws/service/…)"
                    } else {
                        "the role needs ssm:GetParameter on it; see `jenkins-cloud iam-policy`"
                    };
                    Finding::fail(subject, format!("`{ssm_parameter}`: {}", aws_error(&e)), fix)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::image_problem;

    #[test]
    fn image_references() {
        for ok in [
            "jenkins/inbound-agent:latest-jdk21",
            "inbound-agent",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/ci/agent:2024.1",
            "localhost:5000/agent:1",
            "ghcr.io/org/agent@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "jenkins/inbound agent",
            "Jenkins/Agent:1",
            "agent:",
            "agent:-x",
            "agent@sha256:short",
            "registry.example.com/",
        ] {
            assert!(image_problem(bad).is_some(), "{bad} accepted");
        }
    }
}
