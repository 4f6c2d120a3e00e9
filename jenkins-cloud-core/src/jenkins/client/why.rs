//! Parser for the English `why` text of queue items (`Accept-Language: en`).
//!
//! The messages come from Jenkins core's `hudson/model/Messages.properties`
//! (`Queue.*`, `Node.*`) and `CauseOfBlockage`. Recent Jenkins versions wrap
//! labels and node names in typographic quotes (`‘…’`, U+2018/U+2019); older ones
//! print them bare. Both are accepted. Several reasons are joined with `; `.

/// One reason in a `why` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhyReason {
    /// `Waiting for next available executor` (no label, or no agent nodes at all).
    WaitingForExecutor,
    /// `Waiting for next available executor on ‘x’`: a label, or the one node
    /// carrying the label.
    WaitingOn(String),
    /// `There are no nodes with the label ‘x’`.
    NoNodesWithLabel(String),
    /// `All nodes of label ‘x’ are offline`.
    AllNodesOffline(String),
    /// `‘x’ is offline`: a node (the only one carrying the label, or one of many).
    NodeOffline(String),
    /// `‘x’ is not accepting tasks`.
    NodeNotAccepting(String),
    /// `‘node’ doesn’t have label ‘label’`.
    NodeLacksLabel {
        /// The node.
        node: String,
        /// The label expression it lacks.
        label: String,
    },
    /// `‘x’ is reserved for jobs with matching label expression`: an EXCLUSIVE
    /// node refused an item without label.
    NodeReserved(String),
    /// Quiet period, blocked by another build, shutting down: not waiting for a node.
    NotWaitingForNode(String),
    /// Anything else, verbatim.
    Other(String),
}

/// Splits a `why` text into reasons. Never fails: unknown text becomes
/// [`WhyReason::Other`].
pub fn parse(why: &str) -> Vec<WhyReason> {
    why.split("; ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_one)
        .collect()
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('\u{2018}')
        .and_then(|r| r.strip_suffix('\u{2019}'))
        .unwrap_or(s)
        .to_owned()
}

fn parse_one(text: &str) -> WhyReason {
    const WAITING: &str = "Waiting for next available executor";
    if text == WAITING {
        return WhyReason::WaitingForExecutor;
    }
    if let Some(rest) = text.strip_prefix("Waiting for next available executor on ") {
        return WhyReason::WaitingOn(unquote(rest));
    }
    if let Some(rest) = text.strip_prefix("There are no nodes with the label ") {
        return WhyReason::NoNodesWithLabel(unquote(rest));
    }
    if let Some(rest) = text
        .strip_prefix("All nodes of label ")
        .and_then(|r| r.strip_suffix(" are offline"))
    {
        return WhyReason::AllNodesOffline(unquote(rest));
    }
    if let Some(node) = text.strip_suffix(" is reserved for jobs with matching label expression") {
        return WhyReason::NodeReserved(unquote(node));
    }
    if let Some(node) = text.strip_suffix(" is not accepting tasks") {
        return WhyReason::NodeNotAccepting(unquote(node));
    }
    if let Some(node) = text.strip_suffix(" is offline") {
        return WhyReason::NodeOffline(unquote(node));
    }
    for sep in [" doesn\u{2019}t have label ", " doesn't have label "] {
        if let Some((node, label)) = text.split_once(sep) {
            return WhyReason::NodeLacksLabel {
                node: unquote(node),
                label: unquote(label),
            };
        }
    }
    if text.starts_with("In the quiet period")
        || text.starts_with("Blocked by ")
        || text.starts_with("Jenkins is about to shut down")
        || text.starts_with("A build is already in progress")
        || text.starts_with("Build #")
    {
        return WhyReason::NotWaitingForNode(text.to_owned());
    }
    WhyReason::Other(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::WhyReason::*;
    use super::*;

    #[test]
    fn every_documented_message_parses() {
        let cases = [
            ("Waiting for next available executor", WaitingForExecutor),
            (
                "Waiting for next available executor on ‘linux&&docker’",
                WaitingOn("linux&&docker".into()),
            ),
            (
                "Waiting for next available executor on linux",
                WaitingOn("linux".into()),
            ),
            (
                "There are no nodes with the label ‘gpu’",
                NoNodesWithLabel("gpu".into()),
            ),
            (
                "All nodes of label ‘linux’ are offline",
                AllNodesOffline("linux".into()),
            ),
            (
                "‘ci-linux-placeholder’ is offline",
                NodeOffline("ci-linux-placeholder".into()),
            ),
            ("‘n1’ is not accepting tasks", NodeNotAccepting("n1".into())),
            (
                "‘n1’ doesn’t have label ‘arm64’",
                NodeLacksLabel {
                    node: "n1".into(),
                    label: "arm64".into(),
                },
            ),
            (
                "‘n1’ is reserved for jobs with matching label expression",
                NodeReserved("n1".into()),
            ),
            (
                "In the quiet period. Expires in 4.9 sec",
                NotWaitingForNode("In the quiet period. Expires in 4.9 sec".into()),
            ),
            (
                "Blocked by ‘upstream’",
                NotWaitingForNode("Blocked by ‘upstream’".into()),
            ),
            (
                "Jenkins is about to shut down",
                NotWaitingForNode("Jenkins is about to shut down".into()),
            ),
            ("Finished waiting", Other("Finished waiting".into())),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), vec![want], "{text}");
        }
    }

    #[test]
    fn joined_reasons_split() {
        assert_eq!(
            parse("‘a’ is offline; ‘b’ doesn’t have label ‘x&&y’; ‘c’ is reserved for jobs with matching label expression"),
            vec![
                NodeOffline("a".into()),
                NodeLacksLabel { node: "b".into(), label: "x&&y".into() },
                NodeReserved("c".into()),
            ]
        );
        assert!(parse("").is_empty());
        assert_eq!(parse("‘"), vec![Other("‘".into())]);
    }
}
