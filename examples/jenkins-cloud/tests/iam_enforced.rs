//! The generated IAM policy is enough, proven on moto with IAM enforced:
//! both backends' lifecycles run under credentials that hold only the
//! policy's actions, with zero denials; without any one of the actions the
//! lifecycle calls, that call is denied.
//!
//! Moto enforces IAM after `INITIAL_NO_AUTH_ACTION_COUNT` requests and checks
//! actions only (every request is evaluated against resource `*`; a statement
//! with a condition counts as a deny), so the users get the policy's actions
//! on `*` without conditions. Resources and condition keys are checked against
//! AWS's documentation in `iam_policy.rs`. Needs moto in `.venv`
//! (`./scripts/test` installs it); this test starts its own server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_credential_types::Credentials;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use jenkins_cloud_cli::commands::aws::AwsHooks;
use jenkins_cloud_cli::commands::check::{self, Level};
use jenkins_cloud_cli::commands::iam;
use jenkins_cloud_cli::config::Config;
use jenkins_cloud_core::backend::{
    AgentLaunch, AgentTransport, Backend, CloudId, JenkinsEndpoint, LaunchBatch, OwnerId,
};
use jenkins_cloud_core::iam::{AwsOperation, Need};
use jenkins_cloud_core::label::LabelSet;
use jenkins_cloud_core::template::AgentTemplate;
use jenkins_cloud_core::testkit::moto::{own_moto, MotoServer};
use jenkins_cloud_core::Secret;
use jenkins_cloud_ec2::sdk::SdkApi;
use jenkins_cloud_ec2::Ec2Backend;
use jenkins_cloud_fargate::{FargateBackend, FargateConfig};
use serde_json::{json, Value};

const AMI_PARAMETER: &str = "/test/jenkins-agent-ami";
/// The name of the security group `network` creates (templates may name it).
const AGENTS_GROUP: &str = "agents";

/// The configuration whose policy is tested: a Fargate cloud (plain and
/// batched templates) and an EC2 cloud (warm pool, SSM secrets, AMI by SSM,
/// a security group by name).
fn config(subnet: &str, sg: &str, image: &str, endpoint: &str) -> Config {
    let text = format!(
        r#"owner: ci-iam
jenkins: {{url: "https://jenkins.example.com/", user: bot, token_env: JC_IAM_ENFORCED_TOKEN}}
clouds:
  - name: fargate
    kind: fargate
    region: us-east-1
    endpoint_url: "{endpoint}"
    clusters: [iam]
    defaults: {{cluster: iam, subnets: [{subnet}], security_groups: [{sg}]}}
    templates:
      - name: linux
        labels: linux
        spec: {{cpu: 512, memory: 1024}}
      - name: batched
        labels: batched
        spec: {{cpu: 512, memory: 1024, agent_secret: fetched_by_agent, launch_batching: true, execution_role_arn: "arn:aws:iam::123456789012:role/exec", secrets: {{JENKINS_CONNECT_TOKEN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:connect"}}}}
  - name: vm
    kind: ec2
    region: us-east-1
    endpoint_url: "{endpoint}"
    templates:
      - name: pooled
        labels: pooled
        spec: {{ami: {{ssm_parameter: "{AMI_PARAMETER}"}}, instance_types: [t3.micro], subnets: [{subnet}], security_groups: [{AGENTS_GROUP}], warm_pool: true}}
      - name: byid
        labels: byid
        spec: {{ami: {{id: "{image}"}}, root_volume: {{size_gib: 30}}, spot: {{fallback_to_on_demand: true}}, instance_types: [t3.micro], subnets: [{subnet}], security_groups: [{sg}]}}
"#
    );
    Config::parse(&text, "iam-enforced.yaml").unwrap_or_else(|e| panic!("{e}"))
}

/// The policy's actions (what moto can check).
fn actions(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// An unsigned-in-spirit IAM query call (moto does not check signatures in
/// its first, unauthenticated requests; the credential scope routes it).
async fn iam_call(endpoint: &str, params: &[(&str, &str)]) -> String {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.push(("Version", "2010-05-08"));
    let resp = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .form(&form)
        .send()
        .await
        .expect("IAM call");
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "IAM {params:?}: {status} {body}");
    body
}

fn xml_value(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = body.find(&open).map(|i| i + open.len()).expect(tag);
    let end = body[start..].find("</").expect(tag) + start;
    body[start..end].to_owned()
}

/// A moto IAM user allowed exactly `actions` on `*`; returns its keys.
async fn user_with(endpoint: &str, name: &str, actions: &BTreeSet<String>) -> Credentials {
    iam_call(endpoint, &[("Action", "CreateUser"), ("UserName", name)]).await;
    let document = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": "*"}
    ]})
    .to_string();
    iam_call(
        endpoint,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "jenkins-cloud"),
            ("PolicyDocument", &document),
        ],
    )
    .await;
    let keys = iam_call(
        endpoint,
        &[("Action", "CreateAccessKey"), ("UserName", name)],
    )
    .await;
    Credentials::new(
        xml_value(&keys, "AccessKeyId"),
        xml_value(&keys, "SecretAccessKey"),
        None,
        None,
        "moto-iam",
    )
}

/// Records every operation sent (`service`, name) and those moto answered
/// with 403 (denied).
#[derive(Debug, Clone, Default)]
struct Denials {
    denied: Arc<Mutex<BTreeMap<String, usize>>>,
    called: Arc<Mutex<BTreeSet<(String, String)>>>,
}

impl Denials {
    fn get(&self) -> BTreeMap<String, usize> {
        self.denied.lock().unwrap().clone()
    }

    fn called(&self) -> BTreeSet<(String, String)> {
        self.called.lock().unwrap().clone()
    }
}

impl Intercept for Denials {
    fn name(&self) -> &'static str {
        "Denials"
    }
    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let (service, op) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_ascii_lowercase(), m.name().to_owned()))
            .unwrap_or_default();
        if context.response().status().as_u16() == 403 {
            *self.denied.lock().unwrap().entry(op.clone()).or_default() += 1;
        }
        self.called.lock().unwrap().insert((service, op));
        Ok(())
    }
}

struct Clients {
    ecs: aws_sdk_ecs::Client,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
}

fn clients(endpoint: &str, creds: Credentials, denials: &Denials) -> Clients {
    let ecs = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds.clone())
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .interceptor(denials.clone())
        .build();
    let ec2 = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .credentials_provider(creds.clone())
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
        .interceptor(denials.clone())
        .build();
    let ssm = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
        .interceptor(denials.clone())
        .build();
    Clients {
        ecs: aws_sdk_ecs::Client::from_conf(ecs),
        ec2: aws_sdk_ec2::Client::from_conf(ec2),
        ssm: aws_sdk_ssm::Client::from_conf(ssm),
    }
}

fn agents(prefix: &str, n: usize) -> Vec<AgentLaunch> {
    (0..n)
        .map(|i| AgentLaunch {
            agent_name: format!("{prefix}-{i}"),
            secret: Secret::new(format!("{:064x}", i + 7)),
            client_token: format!("{prefix}-token-{i}"),
        })
        .collect()
}

fn endpoint_of_jenkins() -> JenkinsEndpoint {
    JenkinsEndpoint {
        url: "https://jenkins.example.com/".into(),
        transport: AgentTransport::WebSocket,
    }
}

fn template_of(config: &Config, name: &str) -> AgentTemplate {
    let mut t = config
        .templates()
        .map(|(_, t)| t.clone())
        .find(|t| t.name == name)
        .unwrap();
    t.labels = LabelSet::parse(name);
    t
}

/// Launch, template change (new revision, the stale one deregistered), list,
/// retire, batched launch (RunTask + TagResource). Returns the failures seen.
async fn fargate_lifecycle(config: &Config, c: &Clients, owner: &str) -> Vec<String> {
    let mut fc = FargateConfig::new(OwnerId::new(owner).unwrap(), vec!["iam".into()]);
    fc.region = Some("us-east-1".into());
    let backend = FargateBackend::with_client(fc, c.ecs.clone()).expect("backend");
    let mut failures = Vec::new();
    let mut ids: Vec<CloudId> = Vec::new();
    let linux = template_of(config, "linux");
    let mut bigger = linux.clone();
    bigger.spec["memory"] = json!(2048);
    let batched = template_of(config, "batched");
    for (t, prefix, n) in [(&linux, "a", 2), (&bigger, "b", 1), (&batched, "c", 2)] {
        let agents = agents(&format!("{owner}-{prefix}"), n);
        for o in backend
            .launch(LaunchBatch {
                template: t,
                jenkins: &endpoint_of_jenkins(),
                agents: &agents,
            })
            .await
        {
            match o.result {
                Ok(id) => ids.push(id),
                Err(e) => failures.push(format!("launch {}: {e}", t.name)),
            }
        }
    }
    if let Err(e) = backend.list_owned().await {
        failures.push(format!("list: {e}"));
    }
    for o in backend.terminate(&ids, "iam test").await {
        if let Err(e) = o.result {
            failures.push(format!("terminate: {e}"));
        }
    }
    failures
}

/// Launch with an AMI from SSM and an SSM secret, list, retire into the warm
/// pool (stop, clear tags), launch again from the pool (tag, start), prune
/// the pool (terminate, delete the secret). Returns the failures seen.
async fn ec2_lifecycle(config: &Config, c: &Clients, owner: &str) -> Vec<String> {
    let api = Arc::new(SdkApi::new(c.ec2.clone(), c.ssm.clone()));
    let backend = Ec2Backend::with_api(OwnerId::new(owner).unwrap(), api);
    let pooled = template_of(config, "pooled");
    let mut failures = Vec::new();
    // A spot instance from an image by id with a root volume (DescribeImages
    // for its root device), launched and terminated for good.
    let byid = template_of(config, "byid");
    let agents_by_id = agents(&format!("{owner}-id"), 1);
    for o in backend
        .launch(LaunchBatch {
            template: &byid,
            jenkins: &endpoint_of_jenkins(),
            agents: &agents_by_id,
        })
        .await
    {
        match o.result {
            Ok(id) => {
                for t in backend.terminate(&[id], "iam test").await {
                    if let Err(e) = t.result {
                        failures.push(format!("ec2 terminate: {e}"));
                    }
                }
            }
            Err(e) => failures.push(format!("ec2 launch by id: {e}")),
        }
    }
    for round in 0..2 {
        let agents = agents(&format!("{owner}-vm{round}"), 1);
        let outcomes = backend
            .launch(LaunchBatch {
                template: &pooled,
                jenkins: &endpoint_of_jenkins(),
                agents: &agents,
            })
            .await;
        let mut ids = Vec::new();
        for o in outcomes {
            match o.result {
                Ok(id) => ids.push(id),
                Err(e) => failures.push(format!("ec2 launch: {e}")),
            }
        }
        if let Err(e) = backend.list_owned().await {
            failures.push(format!("ec2 list: {e}"));
        }
        for o in backend.terminate(&ids, "iam test").await {
            if let Err(e) = o.result {
                failures.push(format!("ec2 terminate: {e}"));
            }
        }
    }
    if let Err(e) = backend.prune_pools(&BTreeSet::new()).await {
        failures.push(format!("ec2 prune: {e}"));
    }
    failures
}

/// The set-up requests made before IAM is enforced, in order; their number
/// is moto's `INITIAL_NO_AUTH_ACTION_COUNT`.
struct Setup {
    users: Vec<(String, BTreeSet<String>)>,
}

impl Setup {
    /// Network (4), cluster (1), AMI lookup and parameter (2), 3 per user.
    fn requests(&self) -> usize {
        4 + 1 + 2 + 3 * self.users.len()
    }
}

async fn network(server: &MotoServer) -> (String, String, String) {
    let c = clients(
        server.endpoint(),
        Credentials::new("setup", "setup", None, None, "setup"),
        &Denials::default(),
    );
    let vpc = c
        .ec2
        .create_vpc()
        .cidr_block("10.7.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    c.ec2
        .modify_vpc_attribute()
        .vpc_id(&vpc_id)
        .enable_dns_hostnames(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let subnet = c
        .ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.7.0.0/18")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap()
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap()
        .to_owned();
    let sg = c
        .ec2
        .create_security_group()
        .group_name(AGENTS_GROUP)
        .description("agents")
        .vpc_id(&vpc_id)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    c.ecs
        .create_cluster()
        .cluster_name("iam")
        .send()
        .await
        .unwrap();
    let image = c
        .ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .find_map(|i| i.image_id())
        .unwrap()
        .to_owned();
    c.ssm
        .put_parameter()
        .name(AMI_PARAMETER)
        .value(&image)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    (subnet, sg, image)
}

/// The actions moto sees called by the two lifecycles, per operation table:
/// each has an operation of the same name (`ecs:RunTask` ↔ `RunTask`).
fn called_actions(policy_actions: &BTreeSet<String>) -> Vec<String> {
    let tables: [&[AwsOperation]; 2] = [
        jenkins_cloud_fargate::iam::OPERATIONS,
        jenkins_cloud_ec2::iam::OPERATIONS,
    ];
    policy_actions
        .iter()
        .filter(|a| {
            let (service, name) = a.split_once(':').unwrap();
            tables.iter().any(|t| {
                jenkins_cloud_core::iam::find(t, service, name).is_some_and(|op| {
                    // `check`'s probes are not part of the lifecycles.
                    op.actions
                        .iter()
                        .any(|x| x.action == a.as_str() && x.need != Need::Check)
                })
            })
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_lifecycles_run_on_exactly_the_policys_actions() {
    // The policy depends on the subnet and group ids only in its resources,
    // which moto ignores: its actions are known before the network exists.
    let policy = iam::policy(&config(
        "subnet-00000000",
        "sg-00000000",
        "ami-00000000",
        "http://127.0.0.1:1",
    ));
    let granted = actions(&policy);
    let mut users = vec![("full".to_owned(), granted.clone())];
    // Moto can check only what is called by name; implied actions
    // (tag-on-create, iam:PassRole) are checked against AWS's documentation.
    let checkable = called_actions(&granted);
    // `check`'s own probes (DescribeClusters, DescribeSubnets…): proven by
    // running `check` itself.
    let check_only: Vec<String> = granted
        .iter()
        .filter(|a| !checkable.contains(a) && !a.starts_with("iam:"))
        .filter(|a| a.as_str() != "ecs:TagResource")
        .cloned()
        .collect();
    for action in checkable.iter().chain(&check_only) {
        let mut less = granted.clone();
        less.remove(action);
        users.push((format!("without-{}", action.replace(':', "-")), less));
    }
    let setup = Setup { users };
    let count = setup.requests().to_string();
    let server = own_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", &count)]).await;
    let endpoint = server.endpoint().to_owned();
    let (subnet, sg, image) = network(&server).await;
    let config = config(&subnet, &sg, &image, &endpoint);
    assert_eq!(actions(&iam::policy(&config)), granted);
    let mut creds = BTreeMap::new();
    for (name, allowed) in &setup.users {
        creds.insert(name.clone(), user_with(&endpoint, name, allowed).await);
    }

    // Enforcement is on: a key moto does not know is refused.
    let stranger = Denials::default();
    let c = clients(
        &endpoint,
        Credentials::new("AKIASTRANGER", "nope", None, None, "stranger"),
        &stranger,
    );
    assert!(
        c.ecs.list_clusters().send().await.is_err(),
        "moto accepted an unknown key: INITIAL_NO_AUTH_ACTION_COUNT ({count}) is off"
    );

    // With the whole policy: every call is allowed.
    let denials = Denials::default();
    let c = clients(&endpoint, creds["full"].clone(), &denials);
    let mut failures = fargate_lifecycle(&config, &c, "full").await;
    failures.extend(ec2_lifecycle(&config, &c, "full-vm").await);
    assert_eq!(
        denials.get(),
        BTreeMap::new(),
        "denied with the generated policy"
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // Every operation the backends sent has an entry in their tables.
    let tables: [&[AwsOperation]; 2] = [
        jenkins_cloud_fargate::iam::OPERATIONS,
        jenkins_cloud_ec2::iam::OPERATIONS,
    ];
    let called = denials.called();
    assert!(called.len() >= 15, "the lifecycles call little: {called:?}");
    for (service, op) in &called {
        assert!(
            tables
                .iter()
                .any(|t| jenkins_cloud_core::iam::find(t, service, op).is_some()),
            "{service} {op} is called but in no operation table"
        );
    }

    // Without any one called action: that call is denied.
    for action in &checkable {
        let user = format!("without-{}", action.replace(':', "-"));
        let denials = Denials::default();
        let c = clients(&endpoint, creds[&user].clone(), &denials);
        let owner = format!("w{}", user.len() + fastrand::usize(..1000));
        let _ = fargate_lifecycle(&config, &c, &owner).await;
        let _ = ec2_lifecycle(&config, &c, &format!("{owner}-vm")).await;
        let operation = action.split_once(':').unwrap().1;
        assert!(
            denials.get().contains_key(operation),
            "without {action} no {operation} call was denied: {:?}",
            denials.get()
        );
    }
    // `check` proves EC2 permissions by dry runs: all allowed with the
    // policy, each missing one a FAIL naming it. An instance of the
    // configuration's owner gives the stop/terminate/tag probes a target.
    let c = clients(&endpoint, creds["full"].clone(), &Denials::default());
    let api = Arc::new(SdkApi::new(c.ec2.clone(), c.ssm.clone()));
    let owned = Ec2Backend::with_api(config.owner.clone(), api);
    let byid = template_of(&config, "byid");
    let launched = owned
        .launch(LaunchBatch {
            template: &byid,
            jenkins: &endpoint_of_jenkins(),
            agents: &agents("probe", 1),
        })
        .await;
    assert!(launched[0].result.is_ok(), "{:?}", launched[0].result);
    let probed = [
        "ec2:RunInstances",
        "ec2:StopInstances",
        "ec2:TerminateInstances",
        "ec2:CreateTags",
    ];
    // `check` of cloud `index` (0: Fargate, 1: EC2) as `user`.
    let check_as = |user: &str, index: usize| {
        let hooks = AwsHooks {
            credentials: Some(creds[user].clone()),
            no_retries: true,
            ..AwsHooks::default()
        };
        let config = &config;
        async move { check::check_cloud(config, index, &hooks).await }
    };
    let findings = check_as("full", 1).await;
    for action in probed {
        let f = findings
            .iter()
            .find(|f| f.subject.contains(&format!("permission {action}")))
            .unwrap_or_else(|| panic!("no probe of {action}: {findings:#?}"));
        assert_eq!(f.level, Level::Ok, "{f:?}");
    }
    for action in probed {
        let user = format!("without-{}", action.replace(':', "-"));
        let findings = check_as(&user, 1).await;
        assert!(
            findings.iter().any(|f| f.level == Level::Fail
                && f.message.starts_with(&format!("{action} is not allowed"))),
            "check does not name the missing {action}: {findings:#?}"
        );
    }
    // `check` of both clouds with the whole policy: no FAIL; without one of
    // its probes' actions: a FAIL.
    let mut all = findings;
    all.extend(check_as("full", 0).await);
    let fails: Vec<_> = all.iter().filter(|f| f.level == Level::Fail).collect();
    assert!(fails.is_empty(), "check with the whole policy: {fails:#?}");
    for action in &check_only {
        let user = format!("without-{}", action.replace(':', "-"));
        let mut findings = check_as(&user, 0).await;
        findings.extend(check_as(&user, 1).await);
        assert!(
            findings.iter().any(|f| f.level == Level::Fail),
            "check does not fail without {action}: {findings:#?}"
        );
    }
    println!(
        "IAM enforced on moto: {} actions granted, lifecycles and check denied nothing; each of {} called actions removed is denied, each of {} check-only actions removed fails check",
        granted.len(),
        checkable.len(),
        check_only.len()
    );
}
