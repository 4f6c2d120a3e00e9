//! Reading one section of the document field by field, collecting every
//! problem with its field path and line.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::yaml::{join, Document};
use super::Problem;

pub(super) struct Checker<'a> {
    pub(super) doc: &'a Document,
    pub(super) problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        self.problems.push(Problem {
            line: self.doc.line_of(&field),
            field,
            message: message.into(),
        });
    }

    /// Deserializes the value at `path` (`Null` when absent), naming the exact
    /// field of a type error.
    pub(super) fn section<T: DeserializeOwned>(&mut self, value: &Value, path: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.serde_error(e, path);
                None
            }
        }
    }

    pub(super) fn serde_error(
        &mut self,
        e: serde_path_to_error::Error<serde_json::Error>,
        path: &str,
    ) {
        let inner = e.path().to_string();
        let mut field = if inner == "." || inner.is_empty() {
            path.to_owned()
        } else if inner.starts_with('[') {
            format!("{path}{inner}")
        } else {
            join(path, &inner)
        };
        let message = e.into_inner().to_string();
        if let Some(unknown) = unknown_field(&message) {
            if !field.ends_with(unknown) {
                field = join(&field, unknown);
            }
        }
        self.add(field, message);
    }

    /// Like [`section`](Self::section) for a mapping, but every field is read
    /// on its own first, so that each bad field is reported (with its own path
    /// and line), not only the first one serde meets. Then the fields that
    /// read well are read together, for what only the whole can tell (a
    /// required field missing).
    pub(super) fn fields<T: DeserializeOwned>(&mut self, value: &Value, path: &str) -> Option<T> {
        match self.fields_partial(value, path) {
            (value, None) => value,
            (_, Some(_)) => None,
        }
    }

    /// [`fields`](Self::fields), also giving what the fields that read well
    /// make on their own: `(value, refused)`, where `refused` is `None` when
    /// every field read well, else the keys that did (for the value).
    pub(super) fn fields_partial<T: DeserializeOwned>(
        &mut self,
        value: &Value,
        path: &str,
    ) -> (Option<T>, Option<HashSet<String>>) {
        let Some(obj) = value.as_object() else {
            return (self.section(value, path), None);
        };
        let mut good = Map::new();
        let mut bad = false;
        for (key, v) in obj {
            let one = Value::Object(Map::from_iter([(key.clone(), v.clone())]));
            match serde_path_to_error::deserialize::<_, T>(one) {
                Ok(_) => {}
                // The other fields are missing from a one-field mapping, of course.
                Err(e) if e.path().iter().next().is_none() && is_missing_field(e.inner()) => {}
                Err(e) => {
                    self.serde_error(e, path);
                    bad = true;
                    continue;
                }
            }
            good.insert(key.clone(), v.clone());
        }
        if !bad {
            return (self.section(&Value::Object(good), path), None);
        }
        let keys: HashSet<String> = good.keys().cloned().collect();
        let partial = match serde_path_to_error::deserialize::<_, T>(Value::Object(good)) {
            Ok(v) => Some(v),
            // Missing because its value was refused: already reported.
            Err(e)
                if e.path().iter().next().is_none()
                    && missing_field(&e.inner().to_string())
                        .is_some_and(|f| obj.contains_key(f) && !keys.contains(f)) =>
            {
                None
            }
            Err(e) => {
                self.serde_error(e, path);
                None
            }
        };
        (partial, Some(keys))
    }
}

pub(super) fn is_missing_field(e: &serde_json::Error) -> bool {
    missing_field(&e.to_string()).is_some()
}

/// The field of serde's "missing field `x`" message.
pub(super) fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

pub(super) fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

pub(super) fn get<'v>(obj: &'v Value, key: &str) -> &'v Value {
    obj.get(key).unwrap_or(&Value::Null)
}
