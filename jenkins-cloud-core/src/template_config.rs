//! Placeholder for the user-facing template form (being written).
use serde::{Deserialize, Serialize};

/// A field of a [`TemplateConfig`]: inherited, explicitly unset, or set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Setting<T> {
    /// Not given: inherit the parent's value.
    #[default]
    Inherit,
    /// Explicitly unset (`null`): drop the parent's value.
    Unset,
    /// Given.
    Set(T),
}

/// A template as users write it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TemplateConfig {
    /// Template name.
    pub name: String,
}

/// Problems found in a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid template")]
pub struct TemplateError {
    /// Each problem, naming the field.
    pub problems: Vec<String>,
}
