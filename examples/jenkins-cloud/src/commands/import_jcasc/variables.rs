//! JCasC variables in the file being imported: resolved from the
//! environment, or (with `--keep-variables`) written into the output as our
//! own `${VAR}` references where the field is copied as text.

use serde_json::Value;

use crate::config::interpolate::{expand, rewrite, walk, ExpandError};

/// Marks a kept reference inside a string while it is converted; private-use
/// characters, which a JCasC file has no reason to hold.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// JCasC keys whose value is copied into the output as text, so a variable
/// in it can stay a variable. Everything else is split, counted, renamed or
/// matched while converting and needs its value now.
const COPIED: &[&str] = &[
    "url",
    "jenkinsUrl",
    "cluster",
    "regionName",
    "region",
    "image",
    "label",
    "labelString",
    "executionRole",
    "taskrole",
    "remoteFSRoot",
    "remoteFS",
    "ami",
    "iamInstanceProfile",
    "taskDefinitionOverride",
    "fileSystemId",
    "accessPointId",
];

fn copied(path: &str) -> bool {
    let key = path.rsplit('.').next().unwrap_or(path);
    let key = key.split('[').next().unwrap_or(key);
    COPIED.contains(&key)
        || (key == "value" && (path.contains(".tags[") || path.contains(".logDriverOptions[")))
}

/// Marks a string whose variables could not be resolved: it is an error
/// only if a converter reads it (a field the import drops may hold
/// `${PRIVATE_KEY}` or `${readFile:…}` without harm).
const BAD_OPEN: char = '\u{E002}';
const BAD_CLOSE: char = '\u{E003}';

/// The references kept, in token order, and the strings that could not be
/// resolved.
#[derive(Debug, Default)]
pub(super) struct Kept {
    kept: Vec<String>,
    failures: Vec<String>,
}

/// The indexes of the markers `open`…`close` in `s`.
fn markers(s: &str, open: char, close: char) -> Vec<usize> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find(open) {
        let after = &rest[at + open.len_utf8()..];
        let Some(end) = after.find(close) else {
            break;
        };
        if let Ok(i) = after[..end].parse() {
            found.push(i);
        }
        rest = &after[end + close.len_utf8()..];
    }
    found
}

/// The failures marked in `s` (empty for a resolved string).
pub(super) fn failures_in(s: &str) -> Vec<usize> {
    if s.contains(BAD_OPEN) {
        markers(s, BAD_OPEN, BAD_CLOSE)
    } else {
        Vec::new()
    }
}

impl Kept {
    /// The kept references as written (`${SUBNET:-subnet-1}`).
    pub(super) fn references(&self) -> &[String] {
        &self.kept
    }

    /// The messages of failures `indexes` (each names its field).
    pub(super) fn failures(&self, indexes: &[usize]) -> Vec<String> {
        indexes
            .iter()
            .filter_map(|i| self.failures.get(*i).cloned())
            .collect()
    }

    /// Puts the kept references back into `s`, which is output text: a
    /// literal `${` becomes `^${` first, so our loader leaves it as it is.
    pub(super) fn finish(&self, s: &mut String) {
        if !s.contains("${") && !s.contains(OPEN) {
            return;
        }
        let escaped = s.replace("${", "^${");
        let mut out = String::with_capacity(escaped.len());
        let mut rest = escaped.as_str();
        while let Some(at) = rest.find(OPEN) {
            out.push_str(&rest[..at]);
            let after = &rest[at + OPEN.len_utf8()..];
            let Some(end) = after.find(CLOSE) else {
                break;
            };
            let raw = after[..end]
                .parse::<usize>()
                .ok()
                .and_then(|i| self.kept.get(i));
            out.push_str(raw.map_or("", String::as_str));
            rest = &after[end + CLOSE.len_utf8()..];
        }
        out.push_str(rest);
        *s = out;
    }
}

/// Resolves the variables of every string in `root`; with `keep`, the
/// references in copied fields are kept instead. A string that cannot be
/// resolved is marked (see [`failures_in`]) with a message naming its field.
pub(super) fn resolve(root: &mut Value, env: &dyn Fn(&str) -> Option<String>, keep: bool) -> Kept {
    let mut kept = Kept::default();
    walk(root, String::new(), &[], &mut |path, s| {
        if s.contains([OPEN, CLOSE, BAD_OPEN, BAD_CLOSE]) {
            kept.failures.push(format!(
                "{path}: holds private-use characters (U+E000 to U+E003); remove them"
            ));
            *s = format!("{BAD_OPEN}{}{BAD_CLOSE}", kept.failures.len() - 1);
            return;
        }
        if !s.contains("${") {
            return;
        }
        let result = if keep && copied(path) {
            rewrite(s, &mut |var| {
                kept.kept.push(var.raw.to_owned());
                Ok(format!("{OPEN}{}{CLOSE}", kept.kept.len() - 1))
            })
        } else {
            expand(s, env)
        };
        let message = match result {
            Ok(new) => {
                *s = new;
                return;
            }
            Err(e @ ExpandError::Unset(_)) if keep => format!(
                "{path}: {e}; --keep-variables cannot keep it here, as this field is converted (split, counted or matched), not copied: set it for the import"
            ),
            Err(e @ ExpandError::Unset(_)) => format!(
                "{path}: {e}; set it for the import, or use --keep-variables to keep variables in fields copied as text"
            ),
            Err(e) => format!("{path}: {e}"),
        };
        kept.failures.push(message);
        *s = format!("{BAD_OPEN}{}{BAD_CLOSE}", kept.failures.len() - 1);
    });
    kept
}

/// The kept references whose variables are not set here (so the output
/// cannot be validated here).
pub(super) fn unset_here(kept: &Kept, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    kept.references()
        .iter()
        .filter(|raw| expand(raw, env).is_err())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn copied_fields_keep_references_and_literals_are_escaped() {
        let mut v = json!({"ecs": {"cluster": "${CLUSTER:-ci}", "subnets": "${SUBNETS}", "image": "a^${b}"}});
        let env = |n: &str| (n == "SUBNETS").then(|| "subnet-1,subnet-2".to_owned());
        let kept = resolve(&mut v, &env, true);
        let mut cluster = v["ecs"]["cluster"].as_str().unwrap().to_owned();
        kept.finish(&mut cluster);
        assert_eq!(cluster, "${CLUSTER:-ci}");
        assert_eq!(v["ecs"]["subnets"], "subnet-1,subnet-2");
        let mut image = v["ecs"]["image"].as_str().unwrap().to_owned();
        kept.finish(&mut image);
        assert_eq!(image, "a^${b}");
    }

    #[test]
    fn converted_fields_need_their_value() {
        let mut v = json!({"t": {"subnets": "${SUBNETS}"}});
        let kept = resolve(&mut v, &|_| None, true);
        let marked = failures_in(v["t"]["subnets"].as_str().unwrap());
        let errors = kept.failures(&marked);
        assert!(
            errors[0].starts_with("t.subnets: `${SUBNETS}` is not set"),
            "{errors:?}"
        );
        assert!(errors[0].contains("converted"), "{errors:?}");
    }
}
