//! Durations as users write them: `"90s"`, `"5m"`, `"1h30m"`, `"2d"`, or an
//! integer number of seconds; `"never"` where a limit may be switched off.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A malformed duration; the message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {reason}")]
pub struct DurationParseError {
    /// The text given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses `"1h30m"`-style durations: one or more `<integer><unit>` parts with
/// units `d`, `h`, `m`, `s`, each at most once and largest first; whitespace
/// between parts is allowed. A bare integer string is rejected (the unit is
/// required in text; integers in YAML/JSON are seconds).
pub fn parse_duration(input: &str) -> Result<Duration, DurationParseError> {
    let err = |reason: String| DurationParseError {
        input: input.to_owned(),
        reason,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(err("empty (write e.g. `90s`, `5m`, `1h30m`)".into()));
    }
    let mut total: u64 = 0;
    let mut last_unit: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err(format!("expected a number at `{rest}`")));
        }
        let (number, after) = rest.split_at(digits);
        let Some(unit) = after.chars().next() else {
            return Err(err(format!(
                "missing unit after `{number}` (use s, m, h or d)"
            )));
        };
        let Some(index) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(err(format!("unknown unit `{unit}` (use s, m, h or d)")));
        };
        if matches!(last_unit, Some(prev) if prev >= index) {
            return Err(err(format!(
                "unit `{unit}` repeated or out of order (write largest first)"
            )));
        }
        last_unit = Some(index);
        let value: u64 = number
            .parse()
            .map_err(|_| err(format!("number `{number}` too large")))?;
        total = value
            .checked_mul(UNITS[index].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("too large".into()))?;
        rest = after[unit.len_utf8()..].trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// Formats whole seconds as `parse_duration` reads them (`5400 s` → `1h30m`,
/// `0` → `0s`); sub-second parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// A duration written as text (`"5m"`) or integer seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = DurationParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(HumanDuration)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Text or integer, as found in the document.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawDuration::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration: text such as `5m` or integer seconds")
        })? {
            RawDuration::Seconds(s) => Ok(HumanDuration(Duration::from_secs(s))),
            RawDuration::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A limit that can be switched off: `"never"` or a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// No limit.
    Never,
    /// After this long.
    After(HumanDuration),
}

impl Expiry {
    /// The limit as the resolved template holds it (`None`: never).
    pub fn as_option(self) -> Option<Duration> {
        match self {
            Expiry::Never => None,
            Expiry::After(d) => Some(d.0),
        }
    }
}

impl FromStr for Expiry {
    type Err = DurationParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("never") {
            Ok(Expiry::Never)
        } else {
            s.parse().map(Expiry::After)
        }
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Never => f.write_str("never"),
            Expiry::After(d) => d.fmt(f),
        }
    }
}

impl Serialize for Expiry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawDuration::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected `never`, text such as `5m`, or integer seconds")
        })? {
            RawDuration::Seconds(s) => Ok(Expiry::After(HumanDuration(Duration::from_secs(s)))),
            RawDuration::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_humane_forms() {
        for (text, secs) in [
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("2d", 172_800),
            ("1d2h3m4s", 93_784),
            (" 0s ", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (text, needle) in [
            ("", "empty"),
            ("90", "missing unit after `90`"),
            ("5x", "unknown unit `x`"),
            ("m5", "expected a number at `m5`"),
            ("30m1h", "out of order"),
            ("5m5m", "repeated"),
            ("-5s", "expected a number"),
            ("99999999999999999999s", "too large"),
            ("999999999999999999d", "too large"),
        ] {
            let e = parse_duration(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn format_round_trips() {
        for secs in [0, 1, 59, 60, 90, 3600, 5400, 86_400, 93_784] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{secs}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn serde_accepts_text_integers_and_never() {
        let d: HumanDuration = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(d.0, Duration::from_secs(5400));
        let d: HumanDuration = serde_json::from_str("45").unwrap();
        assert_eq!(d.0, Duration::from_secs(45));
        assert!(serde_json::from_str::<HumanDuration>("\"never\"").is_err());
        assert!(serde_json::from_str::<HumanDuration>("-3").is_err());
        let e: Expiry = serde_json::from_str("\"never\"").unwrap();
        assert_eq!(e.as_option(), None);
        let e: Expiry = serde_json::from_str("\"10m\"").unwrap();
        assert_eq!(e.as_option(), Some(Duration::from_secs(600)));
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"10m\"");
    }
}
