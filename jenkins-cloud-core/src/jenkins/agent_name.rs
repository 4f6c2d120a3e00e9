//! Agent node names: `<prefix>-<template>-<short random>`, valid for Jenkins.

/// Characters Jenkins' `checkGoodName` refuses in a name.
const FORBIDDEN: &[char] = &[
    '?', '*', '/', '\\', '%', '!', '@', '#', '$', '^', '&', '|', '<', '>', '[', ']', ':', ';',
];

/// Checks `name` by the rules of Jenkins' `Jenkins.checkGoodName`: not empty, not
/// `.` or `..`, no trailing dot, no control characters and none of
/// `?*/\%!@#$^&|<>[]:;`. The error says which rule and where.
pub fn check_good_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a node name must not be empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a valid node name"));
    }
    if name.ends_with('.') {
        return Err(format!("node name `{name}` must not end with a dot"));
    }
    for (pos, c) in name.chars().enumerate() {
        if c.is_control() {
            return Err(format!(
                "node name has a control character at position {pos}"
            ));
        }
        if FORBIDDEN.contains(&c) {
            return Err(format!(
                "node name `{name}` has the forbidden character `{c}` at position {pos}"
            ));
        }
    }
    Ok(())
}

const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A fresh agent name `<prefix>-<template>-<6 random characters>` from `rng`.
///
/// Prefix and template are assumed valid (owner ids and template names only use
/// `a-z0-9-`); the result always passes [`check_good_name`] then.
pub fn generate(prefix: &str, template: &str, rng: &mut fastrand::Rng) -> String {
    let suffix: String = (0..6)
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}-{template}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_good_and_distinct() {
        let mut rng = fastrand::Rng::with_seed(7);
        let names: std::collections::HashSet<_> = (0..1000)
            .map(|_| generate("ci", "linux-small", &mut rng))
            .collect();
        assert_eq!(names.len(), 1000);
        for n in &names {
            assert!(n.starts_with("ci-linux-small-") && n.len() == "ci-linux-small-".len() + 6);
            check_good_name(n).unwrap();
        }
    }

    #[test]
    fn jenkins_rules_are_enforced() {
        for bad in [
            "", " ", ".", "..", "agent.", "a/b", "a:b", "a;b", "a[1]", "x\u{7}y", "50%",
        ] {
            assert!(check_good_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "agent-1", "a.b", "名前", "with space"] {
            check_good_name(good).unwrap();
        }
        assert_eq!(
            check_good_name("ab#c").unwrap_err(),
            "node name `ab#c` has the forbidden character `#` at position 2"
        );
    }
}
