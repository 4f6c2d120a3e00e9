//! Damaged configurations: thousands of seeded mutations of the example files
//! (byte flips, truncations, deleted, duplicated and swapped lines) never make
//! `Config::parse` panic, and every error names the file and its problems.

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
                }
            }
        }
    }
    assert!(
        rejected > 0 && accepted > 0,
        "mutations both break and keep configs: {rejected}/{accepted}"
    );
}
