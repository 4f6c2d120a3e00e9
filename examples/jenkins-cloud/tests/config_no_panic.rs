//! Damaged configurations: thousands of seeded mutations of the example files
//! (byte flips, truncations, deleted, duplicated and swapped lines, values
//! replaced by hostile ones) never make `Config::parse` panic, every error
//! names the file and its problems, and no error shows a raw control character.

use jenkins_cloud_cli::config::Config;

fn mutate(text: &str, rng: &mut fastrand::Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    match rng.u8(..6) {
        0 if !lines.is_empty() => {
            lines.remove(rng.usize(..lines.len()));
        }
        1 if !lines.is_empty() => {
            let i = rng.usize(..lines.len());
            lines.insert(i, lines[i].clone());
        }
        2 if lines.len() > 1 => {
            let (a, b) = (rng.usize(..lines.len()), rng.usize(..lines.len()));
            lines.swap(a, b);
        }
        3 if !lines.is_empty() => {
            let i = rng.usize(..lines.len());
            let cut = rng.usize(..=lines[i].len());
            let cut = (0..=cut)
                .rev()
                .find(|c| lines[i].is_char_boundary(*c))
                .unwrap_or(0);
            lines[i].truncate(cut);
        }
        4 => {
            let mut bytes = lines.join("\n").into_bytes();
            if !bytes.is_empty() {
                let i = rng.usize(..bytes.len());
                bytes[i] = b"-:[]{}'\"#&*!|>%@` \t0a"[rng.usize(..21)];
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        _ => {
            let all = lines.join("\n");
            let cut = rng.usize(..=all.len());
            let cut = (0..=cut)
                .rev()
                .find(|c| all.is_char_boundary(*c))
                .unwrap_or(0);
            return all[..cut].to_owned();
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_example_configs_never_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "example configs found: {files:?}");
    let mut rng = fastrand::Rng::with_seed(20261128);
    let (mut rejected, mut accepted) = (0, 0);
    for file in &files {
        let original = std::fs::read_to_string(file).unwrap();
        for _ in 0..1500 {
            let mut text = original.clone();
            for _ in 0..rng.usize(1..4) {
                text = mutate(&text, &mut rng);
            }
            match Config::parse(&text, "damaged.yaml") {
                Ok(_) => accepted += 1,
                Err(e) => {
                    rejected += 1;
                    assert!(!e.problems.is_empty(), "an error with no problem listed");
                    assert!(e.to_string().contains("damaged.yaml"), "{e}");
                    assert_shown_safely(&e.to_string());
                }
            }
        }
    }
    assert!(
        rejected > 0 && accepted > 0,
        "mutations both break and keep configs: {rejected}/{accepted}"
    );
}

/// Only newlines separate what is shown; no other control character is raw.
fn assert_shown_safely(text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "raw control character in {text:?}"
    );
}

/// Values a hostile or careless file may hold: huge and negative numbers,
/// control characters, brackets, credentials, wrong types.
const HOSTILE: [&str; 18] = [
    "4294967295",
    "18446744073709551616",
    "-1",
    "1e400",
    "\"\\e[2J\\e[31mred\"",
    "\"nul\\0byte\"",
    "\"two\\nlines\"",
    "\"bell\\a\\u202e\"",
    "\"x].executors: oops [y\"",
    "\"http://bot:s3cr3t@host/?q=1#f\"",
    "[]",
    "{}",
    "~",
    "\"\"",
    "[1, [2, [3]]]",
    "{a: {b: {c: 1}}}",
    "999999999999999999d",
    "true",
];

#[test]
fn hostile_values_never_panic_and_are_never_shown_raw() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut rng = fastrand::Rng::with_seed(20261204);
    let mut rejected = 0;
    for file in &files {
        let original = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = original.lines().collect();
        let values: Vec<usize> = (0..lines.len())
            .filter(|&i| {
                let t = lines[i].trim_start();
                !t.starts_with('#')
                    && t.split_once(": ")
                        .is_some_and(|(_, v)| !v.trim().is_empty())
            })
            .collect();
        assert!(!values.is_empty(), "{}", file.display());
        for _ in 0..1500 {
            let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            for _ in 0..rng.usize(1..4) {
                let i = values[rng.usize(..values.len())];
                let (key, _) = out[i]
                    .split_once(": ")
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .unwrap_or_default();
                out[i] = format!("{key}: {}", HOSTILE[rng.usize(..HOSTILE.len())]);
            }
            let text = out.join("\n");
            if let Err(e) = Config::parse(&text, "hostile.yaml") {
                rejected += 1;
                assert!(!e.problems.is_empty(), "an error with no problem listed");
                let shown = e.to_string();
                assert_shown_safely(&shown);
                for p in e.problems.iter().filter(|p| p.field.ends_with("url")) {
                    assert!(
                        !p.message.contains("s3cr3t"),
                        "a URL password is shown: {shown}"
                    );
                }
            }
        }
    }
    assert!(rejected > 1000, "hostile values are refused: {rejected}");
}
