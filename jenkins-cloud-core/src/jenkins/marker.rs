//! The ownership marker written into the description of every node we create.

use serde::{Deserialize, Serialize};

use crate::backend::OwnerId;

/// Proof that a node is ours: owner, template and creation time, kept in the
/// node's description as `… [jenkins-cloud owner=<id> template=<name> created=<ms>]`.
///
/// Jenkins does not export a node's creation time, so we keep our own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMarker {
    /// The owning installation.
    pub owner: OwnerId,
    /// The template the node was created from.
    pub template: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

const OPEN: &str = "[jenkins-cloud ";

impl NodeMarker {
    /// The description to give the node: a human sentence plus the marker.
    pub fn to_description(&self) -> String {
        format!(
            "Elastic agent managed by jenkins-cloud; do not edit. {OPEN}owner={} template={} created={}]",
            self.owner, self.template, self.created_at_ms
        )
    }

    /// Finds and parses the marker in a node description; `None` if there is none
    /// or it is malformed (such a node is not ours).
    pub fn parse(description: &str) -> Option<Self> {
        let start = description.rfind(OPEN)? + OPEN.len();
        let rest = &description[start..];
        let body = &rest[..rest.find(']')?];
        let (mut owner, mut template, mut created) = (None, None, None);
        for field in body.split(' ') {
            let (key, value) = field.split_once('=')?;
            match key {
                "owner" => owner = Some(OwnerId::new(value).ok()?),
                "template" => template = Some(value.to_owned()),
                "created" => created = Some(value.parse().ok()?),
                _ => {}
            }
        }
        Some(Self {
            owner: owner?,
            template: template?,
            created_at_ms: created?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_description() {
        let m = NodeMarker {
            owner: OwnerId::new("ci-prod").unwrap(),
            template: "linux-small".into(),
            created_at_ms: 1_764_000_000_123,
        };
        assert_eq!(NodeMarker::parse(&m.to_description()), Some(m));
    }

    #[test]
    fn foreign_or_damaged_descriptions_are_not_ours() {
        for d in [
            "",
            "a static agent",
            "[jenkins-cloud owner=x template=t]",
            "[jenkins-cloud owner=X template=t created=1]",
            "[jenkins-cloud owner=x template=t created=soon]",
            "[jenkins-cloud owner=x template=t created=1",
        ] {
            assert_eq!(NodeMarker::parse(d), None, "{d}");
        }
    }
}
