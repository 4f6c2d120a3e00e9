//! Error classes shared by every fallible operation: what retrying does.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a caller should do about an error. Every error in this workspace has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// The cloud has no capacity for this request (instance type, zone, spot pool):
    /// try the next fallback (another type, subnet, on-demand) or retry later.
    Capacity,
    /// The API rate limit was hit: back off with jitter, then retry.
    Throttled,
    /// A passing fault (5xx, timeout, connection reset): retry with backoff.
    Transient,
    /// Configuration or permission problem (unknown subnet, missing role, bad
    /// image, invalid credentials): surface it once, do not retry.
    Permanent,
}

impl ErrorClass {
    /// Whether repeating the same request unchanged may succeed.
    pub fn is_retryable(self) -> bool {
        !matches!(self, ErrorClass::Permanent)
    }

    /// A short lowercase name, stable for metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Capacity => "capacity",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
