//! [`Setting`]: a tri-state field (inherit / unset / set) and its serde form.

use serde::{Deserialize, Serialize};

/// A field of a [`TemplateConfig`](super::TemplateConfig): inherited, explicitly
/// unset, or set.
///
/// In YAML/JSON an absent field is [`Setting::Inherit`], `null` is
/// [`Setting::Unset`] and any other value is [`Setting::Set`]. Fields of this type
/// must carry `#[serde(default, skip_serializing_if = "Setting::is_inherit")]` so
/// that absence deserializes to `Inherit` and `Inherit` serializes as absence;
/// `Unset` serializes as `null`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Setting<T> {
    /// Not given: inherit the parent's value.
    #[default]
    Inherit,
    /// Explicitly unset (`null`): drop the parent's value, back to the default.
    Unset,
    /// Given.
    Set(T),
}

impl<T> Setting<T> {
    /// Whether the field was absent.
    pub fn is_inherit(&self) -> bool {
        matches!(self, Setting::Inherit)
    }

    /// The value, if set.
    pub fn get(&self) -> Option<&T> {
        match self {
            Setting::Set(v) => Some(v),
            _ => None,
        }
    }

    /// `self` unless it is `Inherit`, else the parent's setting.
    pub fn or_inherit(&self, parent: &Setting<T>) -> Setting<T>
    where
        T: Clone,
    {
        match self {
            Setting::Inherit => parent.clone(),
            other => other.clone(),
        }
    }
}

impl<T> From<T> for Setting<T> {
    fn from(v: T) -> Self {
        Setting::Set(v)
    }
}

impl<T: Serialize> Serialize for Setting<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Setting::Set(v) => s.serialize_some(v),
            Setting::Inherit | Setting::Unset => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Setting<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Setting::Set(v),
            None => Setting::Unset,
        })
    }
}
