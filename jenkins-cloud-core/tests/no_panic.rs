//! The fuzz targets' properties (`tests/fuzz_checks`) over a seeded random
//! corpus, so that every `cargo test` checks them without cargo-fuzz: a few
//! thousand structured, mutated and random inputs per target.

mod fuzz_checks;

use jenkins_cloud_core::backend::OwnerId;
use jenkins_cloud_core::jenkins::{
    Demand, JenkinsNode, NodeMarker, QueueItem, Requirement, UnattributedItem,
};
use jenkins_cloud_core::label::LabelExpr;

const CASES: usize = 4000;

/// Pieces label expressions are made of, valid and not.
const LABEL_PIECES: &[&str] = &[
    "a",
    "b",
    "linux",
    "docker",
    "x86_64",
    "arm-64",
    "&&",
    "||",
    "!",
    "->",
    "<->",
    "(",
    ")",
    " ",
    "  ",
    "\t",
    "\n",
    "\"",
    "\\",
    "'",
    "-",
    ">",
    "<",
    "&",
    "|",
    "é",
    "\u{1F600}",
    "\"a b\"",
    "\"q\\\"uote\"",
    "\\u0041",
    "\"\\n\"",
    "\u{0}",
    "\u{7f}",
    "\u{a0}",
    "=",
];

const MARKER_PIECES: &[&str] = &[
    "[jenkins-cloud ",
    "owner=",
    "template=",
    "created=",
    "]",
    " ",
    "ci-prod",
    "X",
    "-",
    "=",
    "1764000000123",
    "18446744073709551616",
    "linux-small",
    "Elastic agent ",
    "[",
    "é",
];

const WINDOW_PIECES: &[&str] = &[
    "Mon",
    "Tue",
    "Fri",
    "sun",
    "Xyz",
    "-",
    ",",
    " ",
    "08",
    "8",
    ":",
    "00",
    "24",
    "60",
    "18",
    "22:00",
    "06:00",
    "\t",
    "99999999999",
    "-1",
];

fn compose(rng: &mut fastrand::Rng, pieces: &[&str], max: usize) -> Vec<u8> {
    let n = rng.usize(0..=max);
    (0..n)
        .flat_map(|_| pieces[rng.usize(..pieces.len())].bytes())
        .collect()
}

fn random_bytes(rng: &mut fastrand::Rng, max: usize) -> Vec<u8> {
    let n = rng.usize(0..=max);
    (0..n).map(|_| rng.u8(..)).collect()
}

/// Flips, deletes, inserts and truncates a few bytes.
fn mutate(rng: &mut fastrand::Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.usize(1..=4) {
        if bytes.is_empty() {
            bytes.push(rng.u8(..));
            continue;
        }
        let at = rng.usize(..bytes.len());
        match rng.u8(0..4) {
            0 => bytes[at] = rng.u8(..),
            1 => {
                bytes.remove(at);
            }
            2 => {
                const JSONISH: &[u8] = b"{}[]\",:0-tfn\\ ";
                bytes.insert(at, JSONISH[rng.usize(..JSONISH.len())])
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

fn sample_label(rng: &mut fastrand::Rng) -> String {
    loop {
        let bytes = compose(rng, LABEL_PIECES, 8);
        if let Ok(text) = String::from_utf8(bytes) {
            if text.parse::<LabelExpr>().is_ok() {
                return text;
            }
        }
    }
}

fn sample_documents(rng: &mut fastrand::Rng) -> Vec<Vec<u8>> {
    let owner = OwnerId::new("ci-prod").unwrap();
    let label: LabelExpr = sample_label(rng).parse().unwrap();
    let demand = Demand {
        items: vec![
            QueueItem {
                id: rng.u64(..),
                task: "part of pipeline #12".into(),
                requirement: Requirement::Label(label),
                in_queue_since_ms: rng.u64(..),
            },
            QueueItem {
                id: 2,
                task: "job".into(),
                requirement: Requirement::AnyNode,
                in_queue_since_ms: 0,
            },
            QueueItem {
                id: 3,
                task: "job".into(),
                requirement: Requirement::Template("linux".into()),
                in_queue_since_ms: 0,
            },
        ],
        unattributed: vec![UnattributedItem {
            id: 4,
            task: "x".into(),
            why: "Waiting for next available executor on ‘a’".into(),
        }],
    };
    let node = JenkinsNode {
        name: "agent-1".into(),
        marker: NodeMarker {
            owner,
            template: "linux".into(),
            created_at_ms: rng.u64(..),
        },
        executors: rng.u32(..),
        offline: rng.bool(),
        temporarily_offline: rng.bool(),
        busy_executors: 1,
        current_builds: vec!["http://j/job/x/1/".into()],
    };
    vec![
        serde_json::to_vec(&demand).unwrap(),
        serde_json::to_vec(&demand.items[0]).unwrap(),
        serde_json::to_vec(&node).unwrap(),
        serde_json::to_vec(&vec![node.clone(), node]).unwrap(),
    ]
}

#[test]
fn label_expr_target_holds_on_a_seeded_corpus() {
    let mut rng = fastrand::Rng::with_seed(0x1abe1);
    let mut parsed = 0;
    for i in 0..CASES {
        let input = match i % 4 {
            0 | 1 => compose(&mut rng, LABEL_PIECES, 12),
            2 => {
                let valid = sample_label(&mut rng).into_bytes();
                mutate(&mut rng, valid)
            }
            _ => random_bytes(&mut rng, 24),
        };
        if std::str::from_utf8(&input).is_ok_and(|t| t.parse::<LabelExpr>().is_ok()) {
            parsed += 1;
        }
        fuzz_checks::label_expr(&input);
    }
    for deep in [
        "(".repeat(10_000),
        format!("{}a{}", "(".repeat(5_000), ")".repeat(5_000)),
        "!(".repeat(5_000),
        format!("{}a", "a&&".repeat(20_000)),
        format!("{}a", "a<->".repeat(20_000)),
    ] {
        fuzz_checks::label_expr(deep.as_bytes());
    }
    assert!(
        parsed > CASES / 10,
        "corpus too weak: {parsed} of {CASES} parsed"
    );
}

#[test]
fn jenkins_json_target_holds_on_a_seeded_corpus() {
    let mut rng = fastrand::Rng::with_seed(0x15_0b);
    let mut read = 0;
    for i in 0..CASES {
        let input = match i % 6 {
            0..=2 => {
                let docs = sample_documents(&mut rng);
                let doc = docs[rng.usize(..docs.len())].clone();
                if i % 6 == 0 {
                    doc
                } else {
                    mutate(&mut rng, doc)
                }
            }
            3 => compose(&mut rng, MARKER_PIECES, 10),
            4 => compose(&mut rng, WINDOW_PIECES, 8),
            _ => random_bytes(&mut rng, 32),
        };
        if serde_json::from_slice::<Demand>(&input).is_ok()
            || serde_json::from_slice::<JenkinsNode>(&input).is_ok()
        {
            read += 1;
        }
        fuzz_checks::jenkins_json(&input);
    }
    for deep in ["[".repeat(10_000), "{\"items\":".repeat(5_000)] {
        fuzz_checks::jenkins_json(deep.as_bytes());
    }
    assert!(read > CASES / 20, "corpus too weak: {read} of {CASES} read");
}

#[test]
fn plan_target_holds_on_a_seeded_corpus() {
    let mut rng = fastrand::Rng::with_seed(0x91a2);
    for i in 0..CASES {
        let len = if i % 4 == 0 { 512 } else { 96 };
        let mut input = random_bytes(&mut rng, len);
        // Extremes (u32::MAX, 70,000,000…) are drawn from bytes 250–253.
        for b in input.iter_mut() {
            if rng.u8(..) < 40 {
                *b = rng.u8(250..=253);
            }
        }
        fuzz_checks::plan_inputs(&input);
    }
    // The probe's findings, as inputs: min_idle u32::MAX; 64 executors with
    // 70,000,000 idle; two agents at u32::MAX executors each.
    fuzz_checks::plan_inputs(&[0, 0, 253, 250, 1, 0, 2, 2, 0, 250, 3, 0, 0, 0, 1, 0, 250]);
    fuzz_checks::plan_inputs(&[0, 0, 12, 252, 1]);
}
