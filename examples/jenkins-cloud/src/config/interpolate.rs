//! Environment variables in configuration text, the way Jenkins
//! Configuration-as-Code resolves them: `${VAR}`, `${VAR:-default}` (the
//! default may itself hold `${…}`), and `^${` for a literal `${`.
//!
//! The grammar follows JCasC's `SecretSourceResolver` (an Apache Commons
//! `StringSubstitutor` with prefix `${`, suffix `}`, escape `^` and value
//! delimiter `:-`):
//! <https://github.com/jenkinsci/configuration-as-code-plugin/blob/master/plugin/src/main/java/io/jenkins/plugins/casc/SecretSourceResolver.java>,
//! documented in
//! <https://github.com/jenkinsci/configuration-as-code-plugin/blob/master/docs/features/secrets.adoc>.
//! Two deliberate differences: a variable that is not set is an error
//! (JCasC substitutes an empty string and logs a warning, unless
//! `CASC_STRICT_SECRET_RESOLUTION` is set), and the value of a variable is
//! used as it is, never expanded again (no cycles, no blow-up). An unclosed
//! `${` is left as written, as JCasC leaves it.

use std::fmt;

use serde_json::Value;

/// Keys whose strings the configuration loader uses as written: user data
/// is a script template of its own, and `environment` values reach the agent
/// as written.
pub const NOT_EXPANDED: &[&str] = &["user_data_template", "environment"];

/// Most `${…:-${…}}` levels inside one another.
const MAX_DEPTH: usize = 8;

/// JCasC lookups other than the environment (`${base64:…}`); they are
/// refused with a clear message rather than read as a variable name.
const LOOKUPS: &[&str] = &[
    "base64",
    "fileBase64",
    "readFileBase64",
    "file",
    "readFile",
    "sysProp",
    "decodeBase64",
    "json",
    "trim",
];

/// One `${…}` reference as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef<'a> {
    /// The variable name.
    pub name: &'a str,
    /// The default after `:-`, as written (not yet expanded).
    pub default: Option<&'a str>,
    /// The whole reference, `${` to `}`.
    pub raw: &'a str,
}

/// Why a reference could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// The variable is not set and has no default.
    Unset(String),
    /// `${}` or `${:-x}`.
    EmptyName,
    /// A JCasC lookup such as `${base64:…}` or `${readFile:…}`.
    Lookup(String),
    /// Defaults nested deeper than the limit.
    TooDeep,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unset(name) => write!(
                f,
                "`${{{name}}}` is not set in the environment and has no default (`${{{name}:-…}}`)"
            ),
            Self::EmptyName => f.write_str("`${}` names no variable"),
            Self::Lookup(prefix) => write!(
                f,
                "`${{{prefix}:…}}` lookups are not supported: resolve the value by hand"
            ),
            Self::TooDeep => write!(f, "defaults nested more than {MAX_DEPTH} levels deep"),
        }
    }
}

/// The end (exclusive) of the reference starting at `start` (at `${`), or
/// `None` when it is not closed.
fn closing(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        if b[i] == b'$' && b.get(i + 1) == Some(&b'{') && (i == 0 || b[i - 1] != b'^') {
            depth += 1;
            i += 2;
            continue;
        }
        if b[i] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

fn parse_ref(raw: &str) -> VarRef<'_> {
    let inner = &raw[2..raw.len() - 1];
    let (name, default) = match inner.find(":-") {
        Some(at) => (&inner[..at], Some(&inner[at + 2..])),
        None => (inner, None),
    };
    VarRef { name, default, raw }
}

/// Rewrites `text`, replacing each reference with what `resolve` gives and
/// each `^${` with `${`.
pub fn rewrite(
    text: &str,
    resolve: &mut dyn FnMut(&VarRef<'_>) -> Result<String, ExpandError>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(off) = text[i..].find("${") {
        let at = i + off;
        if at > 0 && text.as_bytes()[at - 1] == b'^' {
            out.push_str(&text[i..at - 1]);
            out.push_str("${");
            i = at + 2;
            continue;
        }
        out.push_str(&text[i..at]);
        let Some(end) = closing(text, at) else {
            out.push_str(&text[at..]);
            return Ok(out);
        };
        let var = parse_ref(&text[at..end]);
        if var.name.is_empty() {
            return Err(ExpandError::EmptyName);
        }
        if let Some((prefix, _)) = var.name.split_once(':') {
            if LOOKUPS.contains(&prefix) {
                return Err(ExpandError::Lookup(prefix.to_owned()));
            }
        }
        out.push_str(&resolve(&var)?);
        i = end;
    }
    out.push_str(&text[i..]);
    Ok(out)
}

/// Expands `text` with `env` (a variable's value, `None` when unset).
pub fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    expand_at(text, env, 0)
}

fn expand_at(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, ExpandError> {
    if depth > MAX_DEPTH {
        return Err(ExpandError::TooDeep);
    }
    rewrite(text, &mut |var| match (env(var.name), var.default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => expand_at(default, env, depth + 1),
        (None, None) => Err(ExpandError::Unset(var.name.to_owned())),
    })
}

/// Expands every string in `value` (keys stay as written), except below a
/// key in `skip`. Each failure comes with the path of its string
/// (`clouds[0].templates[1].spec.cluster`).
pub fn expand_tree(
    value: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
    skip: &[&str],
) -> Vec<(String, ExpandError)> {
    let mut errors = Vec::new();
    walk(value, String::new(), skip, &mut |path, s| {
        if s.contains("${") {
            match expand(s, env) {
                Ok(new) => *s = new,
                Err(e) => errors.push((path.to_owned(), e)),
            }
        }
    });
    errors
}

/// Calls `f` with the path and text of every string in `value`, except
/// below a key in `skip`.
pub fn walk(value: &mut Value, path: String, skip: &[&str], f: &mut dyn FnMut(&str, &mut String)) {
    match value {
        Value::String(s) => f(&path, s),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{path}[{i}]"), skip, f);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if skip.contains(&key.as_str()) {
                    continue;
                }
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(item, p, skip, f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "CLUSTER" => Some("agents".into()),
            "EMPTY" => Some(String::new()),
            "REF" => Some("${CLUSTER}".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_defaults_and_escapes() {
        let cases = [
            ("${CLUSTER}", "agents"),
            ("arn:${CLUSTER}/x", "arn:agents/x"),
            ("${MISSING:-fallback}", "fallback"),
            ("${MISSING:-}", ""),
            ("${MISSING:-${CLUSTER}-b}", "agents-b"),
            ("${MISSING:-${ALSO:-deep}}", "deep"),
            ("${EMPTY:-unused}", ""),
            ("^${CLUSTER}", "${CLUSTER}"),
            ("a^b", "a^b"),
            ("${REF}", "${CLUSTER}"),
            ("cost: $5 {x}", "cost: $5 {x}"),
            ("${UNCLOSED", "${UNCLOSED"),
            ("${CLUSTER}${CLUSTER}", "agentsagents"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn failures_name_the_variable() {
        assert_eq!(
            expand("x-${SUBNETS}", &env),
            Err(ExpandError::Unset("SUBNETS".into()))
        );
        assert!(expand("${SUBNETS}", &env)
            .unwrap_err()
            .to_string()
            .contains("`${SUBNETS}` is not set"));
        assert_eq!(expand("${}", &env), Err(ExpandError::EmptyName));
        assert_eq!(
            expand("${readFile:/run/secrets/x}", &env),
            Err(ExpandError::Lookup("readFile".into()))
        );
        let deep = format!("{}x{}", "${A:-".repeat(20), "}".repeat(20));
        assert_eq!(expand(&deep, &env), Err(ExpandError::TooDeep));
    }

    #[test]
    fn tree_paths_and_skipped_keys() {
        let mut v = serde_json::json!({
            "a": {"b": ["${CLUSTER}", "${NOPE}"]},
            "environment": {"X": "${NOPE}"},
            "n": 1
        });
        let errors = expand_tree(&mut v, &env, &["environment"]);
        assert_eq!(
            errors,
            vec![("a.b[1]".to_owned(), ExpandError::Unset("NOPE".into()))]
        );
        assert_eq!(v["a"]["b"][0], "agents");
        assert_eq!(v["environment"]["X"], "${NOPE}");
    }

    #[test]
    fn hostile_text_never_panics_and_stays_bounded() {
        let pieces = [
            "${",
            "}",
            "^",
            ":-",
            "$",
            "{",
            "A",
            "é",
            "CLUSTER",
            "readFile:",
            " ",
        ];
        let mut rng = fastrand::Rng::with_seed(17);
        for _ in 0..20_000 {
            let text: String = (0..rng.usize(0..24))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            if let Ok(out) = expand(&text, &env) {
                // Each reference gives at most one variable's value.
                assert!(out.len() <= text.len() * 4 + 16, "{text:?} → {out:?}");
            }
        }
    }
}
