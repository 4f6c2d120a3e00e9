//! Serde support: a [`LabelExpr`] is (de)serialized as its canonical string,
//! a [`LabelSet`] as its label string.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{LabelExpr, LabelSet};

/// Serializes as the canonical text ([`Display`](fmt::Display)).
///
/// ```
/// use jenkins_cloud_core::label::LabelExpr;
///
/// let e: LabelExpr = "linux && ( docker )".parse()?;
/// assert_eq!(serde_json::to_string(&e).unwrap(), r#""linux&&(docker)""#);
/// # Ok::<(), jenkins_cloud_core::label::LabelParseError>(())
/// ```
impl Serialize for LabelExpr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct LabelExprVisitor;

impl Visitor<'_> for LabelExprVisitor {
    type Value = LabelExpr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Jenkins label expression string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<LabelExpr, E> {
        v.parse().map_err(E::custom)
    }
}

/// Deserializes from a string with [`str::parse`]; a syntax error is
/// reported with its position. Blank strings are rejected; for an optional
/// field where blank means "any node" use [`blank_as_none`].
///
/// ```
/// use jenkins_cloud_core::label::LabelExpr;
///
/// let e: LabelExpr = serde_json::from_str(r#""a || b""#).unwrap();
/// assert_eq!(e.to_string(), "a||b");
/// let err = serde_json::from_str::<LabelExpr>(r#""a ||""#).unwrap_err();
/// assert!(err.to_string().contains("at position 4"), "{err}");
/// ```
impl<'de> Deserialize<'de> for LabelExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LabelExpr, D::Error> {
        deserializer.deserialize_str(LabelExprVisitor)
    }
}

/// `#[serde(with = "…")]` helpers for an `Option<LabelExpr>` field where a
/// missing value, `null` or a blank string all mean "no label restriction",
/// as in a Jenkins job's label field (see [`LabelExpr::parse_optional`]).
///
/// ```
/// use jenkins_cloud_core::label::LabelExpr;
///
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Template {
///     #[serde(default, with = "jenkins_cloud_core::label::blank_as_none")]
///     label: Option<LabelExpr>,
/// }
///
/// let t: Template = serde_json::from_str(r#"{"label": "  "}"#).unwrap();
/// assert!(t.label.is_none());
/// let t: Template = serde_json::from_str(r#"{}"#).unwrap();
/// assert!(t.label.is_none());
/// let t: Template = serde_json::from_str(r#"{"label": "linux && docker"}"#).unwrap();
/// assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"label":"linux&&docker"}"#);
/// ```
pub mod blank_as_none {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::LabelExpr;

    /// Writes `None` as a serializer's none value (`null` in JSON) and
    /// `Some(e)` as the canonical string of `e`.
    pub fn serialize<S: Serializer>(
        value: &Option<LabelExpr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    /// Reads `null` or a string; blank strings become `None`, others are
    /// parsed with [`LabelExpr::parse_optional`].
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<LabelExpr>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(s) => LabelExpr::parse_optional(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Serializes as the label string ([`Display`](fmt::Display)): labels in
/// sorted order separated by spaces, quoted where needed.
///
/// ```
/// use jenkins_cloud_core::label::LabelSet;
///
/// let s = LabelSet::parse("linux \"big disk\"");
/// assert_eq!(serde_json::to_string(&s).unwrap(), r#""\"big disk\" linux""#);
/// ```
impl Serialize for LabelSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct LabelSetVisitor;

impl<'de> Visitor<'de> for LabelSetVisitor {
    type Value = LabelSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Jenkins label string or a list of labels")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<LabelSet, E> {
        Ok(LabelSet::parse(v))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<LabelSet, A::Error> {
        let mut labels = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(label) = seq.next_element::<String>()? {
            labels.push(label);
        }
        Ok(labels.into_iter().collect())
    }
}

/// Deserializes from either a Jenkins label string, split with
/// [`LabelSet::parse`] (never fails), or a list of label strings taken
/// verbatim (no splitting or unquoting).
///
/// ```
/// use jenkins_cloud_core::label::LabelSet;
///
/// let a: LabelSet = serde_json::from_str(r#""linux docker""#).unwrap();
/// let b: LabelSet = serde_json::from_str(r#"["docker", "linux"]"#).unwrap();
/// assert_eq!(a, b);
/// ```
impl<'de> Deserialize<'de> for LabelSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LabelSet, D::Error> {
        deserializer.deserialize_any(LabelSetVisitor)
    }
}
