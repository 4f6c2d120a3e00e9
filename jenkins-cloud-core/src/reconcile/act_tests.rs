//! The act step against mocked Jenkins and backend: what is called, in which
//! order, and what a partial failure leaves behind.

use std::sync::Arc;

use async_trait::async_trait;
use mockall::{mock, Sequence};

use super::*;
use crate::backend::BackendError;
use crate::backend::{
    AgentTransport, Capabilities, CloudId, CloudInstance, LaunchBatch, LaunchOutcome,
    TerminateOutcome,
};
use crate::error::ErrorClass;
use crate::jenkins::{JenkinsNode, NodeSpec, QueueItem, Requirement};
use crate::label::LabelSet;
use crate::lifecycle::AgentState;
use crate::secret::Secret;
use crate::strategy::NoDelay;

mock! {
    Jenkins {}
    #[async_trait]
    impl JenkinsApi for Jenkins {
        fn owner(&self) -> &OwnerId;
        async fn demand(&self) -> Result<Demand, JenkinsError>;
        async fn nodes(&self) -> Result<Vec<JenkinsNode>, JenkinsError>;
        async fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError>;
        async fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError>;
        async fn drain_node(&self, name: &str, reason: &str) -> Result<(), JenkinsError>;
        async fn delete_node(&self, name: &str) -> Result<(), JenkinsError>;
    }
}

/// A backend whose answers are scripted and whose calls are recorded.
/// (mockall cannot mock `launch`, whose argument borrows.)
#[derive(Debug)]
struct ScriptedCloud {
    owner: OwnerId,
    listed: Vec<CloudInstance>,
    fail_launch_at: Option<(usize, BackendError)>,
    refuse_terminate: Option<BackendError>,
    calls: std::sync::Mutex<Vec<String>>,
}

impl ScriptedCloud {
    fn new() -> Self {
        Self {
            owner: owner(),
            listed: vec![],
            fail_launch_at: None,
            refuse_terminate: None,
            calls: Default::default(),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Backend for ScriptedCloud {
    fn kind(&self) -> &str {
        "scripted"
    }
    fn owner(&self) -> &OwnerId {
        &self.owner
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(10, 100, 100)
    }
    fn validate_template(&self, _: &AgentTemplate) -> Result<(), Vec<String>> {
        Ok(())
    }
    async fn launch(&self, batch: LaunchBatch<'_>) -> Vec<LaunchOutcome> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("launch {}", batch.agents.len()));
        batch
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| LaunchOutcome {
                agent_name: a.agent_name.clone(),
                result: match &self.fail_launch_at {
                    Some((at, e)) if *at == i => Err(e.clone()),
                    _ => Ok(CloudId(format!("task-{i}"))),
                },
            })
            .collect()
    }
    async fn describe(&self, _: &[CloudId]) -> Result<Vec<CloudInstance>, BackendError> {
        Ok(vec![])
    }
    async fn terminate(&self, ids: &[CloudId], _reason: &str) -> Vec<TerminateOutcome> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("terminate {}", ids.len()));
        ids.iter()
            .map(|id| TerminateOutcome {
                id: id.clone(),
                result: self.refuse_terminate.clone().map_or(Ok(()), Err),
            })
            .collect()
    }
    async fn list_owned(&self) -> Result<Vec<CloudInstance>, BackendError> {
        Ok(self.listed.clone())
    }
}

impl std::fmt::Debug for MockJenkins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockJenkins")
    }
}

fn owner() -> OwnerId {
    OwnerId::new("ci").unwrap()
}

fn queue(n: u64) -> Demand {
    Demand {
        items: (1..=n)
            .map(|id| QueueItem {
                id,
                task: format!("job-{id}"),
                requirement: Requirement::Label("linux".parse().unwrap()),
                in_queue_since_ms: id,
            })
            .collect(),
        unattributed: vec![],
    }
}

fn reconciler(jenkins: MockJenkins, cloud: Arc<ScriptedCloud>) -> Reconciler {
    let endpoint = JenkinsEndpoint {
        url: "https://jenkins.example/".into(),
        transport: AgentTransport::WebSocket,
    };
    let mut config = ReconcileConfig::new(owner(), endpoint);
    config.seed = Some(1);
    let pool = Pool {
        template: Arc::new(AgentTemplate::new("linux", LabelSet::parse("linux"))),
        backend: cloud,
    };
    Reconciler::new(config, Arc::new(jenkins), vec![pool], Box::new(NoDelay))
}

fn jenkins_with(demand: Demand) -> MockJenkins {
    let mut jenkins = MockJenkins::new();
    jenkins
        .expect_demand()
        .returning(move || Ok(demand.clone()));
    jenkins.expect_nodes().returning(|| Ok(vec![]));
    jenkins
}

#[tokio::test(start_paused = true)]
async fn partial_launch_failure_keeps_successes_and_deletes_the_failed_node() {
    let mut jenkins = jenkins_with(queue(3));
    jenkins.expect_create_node().times(3).returning(|_| Ok(()));
    jenkins
        .expect_agent_secret()
        .times(3)
        .returning(|_| Ok(Secret::new("s3cr3t-value")));
    let mut cloud = ScriptedCloud::new();
    cloud.fail_launch_at = Some((1, BackendError::capacity("RESOURCE:ENI")));
    let cloud = Arc::new(cloud);
    // The failed agent's node is deleted at once, and only that one.
    jenkins.expect_delete_node().times(1).returning(|_| Ok(()));
    let mut r = reconciler(jenkins, Arc::clone(&cloud));
    let report = r.run_once().await.unwrap();
    assert_eq!(cloud.calls(), vec!["launch 3"], "one batch for all three");
    assert_eq!(report.act.launched.len(), 2);
    assert_eq!(
        report
            .act
            .launched
            .iter()
            .map(|l| l.serves.clone())
            .collect::<Vec<_>>(),
        vec![vec![1], vec![3]]
    );
    assert_eq!(report.act.errors.len(), 1);
    assert_eq!(report.act.errors[0].class, ErrorClass::Capacity);
    assert_eq!(report.act.errors[0].step, "launch");
    let states: Vec<_> = r.agents().map(|a| a.state.as_str()).collect();
    assert_eq!(states.iter().filter(|s| **s == "launching").count(), 2);
    assert!(
        !format!("{report:?}").contains("s3cr3t-value"),
        "no secret in the report"
    );
}

#[tokio::test(start_paused = true)]
async fn node_is_created_and_its_secret_fetched_before_the_cloud_launch() {
    let mut seq = Sequence::new();
    let mut jenkins = jenkins_with(queue(1));
    jenkins
        .expect_create_node()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|spec| {
            assert!(spec.name.starts_with("ci-linux-"));
            assert!(spec.web_socket);
            assert_eq!(spec.marker.owner.as_str(), "ci");
            Ok(())
        });
    jenkins
        .expect_agent_secret()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Secret::new("x")));
    let cloud = Arc::new(ScriptedCloud::new());
    let mut r = reconciler(jenkins, Arc::clone(&cloud));
    // The mocks have no launch expectation; the scripted cloud records the launch,
    // which can only happen after the sequenced Jenkins calls returned.
    assert_eq!(r.run_once().await.unwrap().act.launched.len(), 1);
    assert_eq!(cloud.calls(), vec!["launch 1"]);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_cannot_be_created_is_not_launched() {
    let mut jenkins = jenkins_with(queue(2));
    let mut first = true;
    jenkins.expect_create_node().times(2).returning(move |_| {
        if std::mem::replace(&mut first, false) {
            Err(JenkinsError::Forbidden {
                permission: "Agent/Create".into(),
            })
        } else {
            Ok(())
        }
    });
    jenkins
        .expect_agent_secret()
        .times(1)
        .returning(|_| Ok(Secret::new("x")));
    let cloud = Arc::new(ScriptedCloud::new());
    let mut r = reconciler(jenkins, Arc::clone(&cloud));
    let report = r.run_once().await.unwrap();
    assert_eq!(cloud.calls(), vec!["launch 1"]);
    assert_eq!(report.act.launched.len(), 1);
    assert_eq!(report.act.errors[0].step, "create_node");
    assert_eq!(report.act.errors[0].class, ErrorClass::Permanent);
}

#[tokio::test(start_paused = true)]
async fn a_failed_observation_changes_nothing() {
    let mut jenkins = MockJenkins::new();
    jenkins.expect_demand().returning(|| Ok(queue(5)));
    jenkins.expect_nodes().returning(|| {
        Err(JenkinsError::Server {
            status: 503,
            message: "Service Unavailable".into(),
        })
    });
    // No create/delete expectations: any such call fails the test.
    let cloud = Arc::new(ScriptedCloud::new());
    let mut r = reconciler(jenkins, Arc::clone(&cloud));
    let err = r.run_once().await.unwrap_err();
    assert!(matches!(
        err,
        ObserveError::Jenkins(JenkinsError::Server { status: 503, .. })
    ));
    assert!(cloud.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn orphaned_resources_are_terminated_and_refusals_keep_the_record() {
    let jenkins = jenkins_with(Demand::default());
    let mut cloud = ScriptedCloud::new();
    cloud.listed = vec![CloudInstance {
        id: CloudId("i-1".into()),
        agent_name: "ci-linux-orphan".into(),
        template: "linux".into(),
        state: crate::backend::CloudState::Running,
        launched_at: None,
    }];
    cloud.refuse_terminate = Some(BackendError::permanent("not owned"));
    let cloud = Arc::new(cloud);
    let mut r = reconciler(jenkins, Arc::clone(&cloud));
    // First pass adopts the instance; the orphan grace (60 s) has not passed.
    let first = r.run_once().await.unwrap();
    assert!(first.plan.actions.is_empty(), "{:?}", first.plan.actions);
    tokio::time::advance(Duration::from_secs(61)).await;
    let report = r.run_once().await.unwrap();
    assert_eq!(cloud.calls(), vec!["terminate 1"]);
    assert_eq!(report.act.errors.len(), 1);
    assert_eq!(report.act.errors[0].step, "terminate");
    assert!(
        report.act.terminated.is_empty(),
        "the node is not deleted while the resource runs"
    );
    let agent = r.agents().next().unwrap();
    assert!(
        matches!(agent.state, AgentState::Failed(_)),
        "{:?}",
        agent.state
    );
}
