//! Time windows for warm agents: `"Mon-Fri 08:00-18:00"`, in UTC.
//!
//! Grammar: `[DAYS ]HH:MM-HH:MM` where `DAYS` is a comma-separated list of days
//! (`Mon`) or ranges (`Mon-Fri`, `Sat-Sun`, wrapping ranges such as `Fri-Mon`
//! allowed); without days, every day. A window whose end is before its start
//! runs past midnight (`22:00-06:00`) and belongs to the day it starts on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A recurring weekly time window, in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Window {
    days: [bool; 7],
    start_min: u32,
    end_min: u32,
    text: String,
}

/// A malformed window; the message names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time window `{input}`: {reason}")]
pub struct WindowParseError {
    /// The text given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

fn parse_day(s: &str) -> Option<usize> {
    DAYS.iter().position(|d| d.eq_ignore_ascii_case(s))
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    // Range checks first: the arithmetic must not overflow on huge hours.
    if h > 24 || m >= 60 || h * 60 + m > 24 * 60 {
        return None;
    }
    Some(h * 60 + m)
}

impl FromStr for Window {
    type Err = WindowParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| WindowParseError {
            input: input.to_owned(),
            reason,
        };
        let parts: Vec<&str> = input.split_whitespace().collect();
        let (days_part, time_part) = match parts.as_slice() {
            [t] => (None, *t),
            [d, t] => (Some(*d), *t),
            _ => return Err(err("expected `[DAYS ]HH:MM-HH:MM`".into())),
        };
        let mut days = [days_part.is_none(); 7];
        if let Some(list) = days_part {
            for item in list.split(',') {
                let (a, b) = item.split_once('-').unwrap_or((item, item));
                let (a, b) = match (parse_day(a), parse_day(b)) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Err(err(format!("unknown day in `{item}` (use Mon…Sun)"))),
                };
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
        }
        let (s, e) = time_part
            .split_once('-')
            .ok_or_else(|| err(format!("expected HH:MM-HH:MM, found `{time_part}`")))?;
        let start_min = parse_hhmm(s).ok_or_else(|| err(format!("bad start time `{s}`")))?;
        let end_min = parse_hhmm(e).ok_or_else(|| err(format!("bad end time `{e}`")))?;
        if start_min == end_min {
            return Err(err("start and end are equal: the window is empty".into()));
        }
        Ok(Self {
            days,
            start_min,
            end_min,
            text: input.trim().to_owned(),
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Window {
    /// Whether the instant `at_unix_secs` (UTC) falls in the window.
    pub fn contains(&self, at_unix_secs: u64) -> bool {
        let day_index = at_unix_secs / 86_400;
        // 1970-01-01 was a Thursday (index 3 with Monday = 0).
        let weekday = ((day_index + 3) % 7) as usize;
        let minute = ((at_unix_secs % 86_400) / 60) as u32;
        if self.start_min < self.end_min {
            self.days[weekday] && (self.start_min..self.end_min).contains(&minute)
        } else {
            let yesterday = (weekday + 6) % 7;
            (self.days[weekday] && minute >= self.start_min)
                || (self.days[yesterday] && minute < self.end_min)
        }
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Keep `count` agents idle during `window`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MinIdleWindow {
    /// When.
    pub window: Window,
    /// How many idle agents to keep then.
    pub count: u32,
}

impl MinIdleWindow {
    /// Whether `at_unix_secs` falls in the window.
    pub fn contains(&self, at_unix_secs: u64) -> bool {
        self.window.contains(at_unix_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-30 is a Monday.
    const MON_0000: u64 = 1_795_996_800;

    fn at(day: u64, h: u64, m: u64) -> u64 {
        MON_0000 + day * 86_400 + h * 3600 + m * 60
    }

    #[test]
    fn weekday_office_hours() {
        let w: Window = "Mon-Fri 08:00-18:00".parse().unwrap();
        assert!(w.contains(at(0, 8, 0)));
        assert!(w.contains(at(4, 17, 59)));
        assert!(!w.contains(at(4, 18, 0)));
        assert!(!w.contains(at(0, 7, 59)));
        assert!(!w.contains(at(5, 12, 0)), "Saturday");
    }

    #[test]
    fn overnight_and_wrapping_days() {
        let w: Window = "Fri-Mon 22:00-06:00".parse().unwrap();
        assert!(w.contains(at(4, 23, 0)), "Fri night");
        assert!(w.contains(at(5, 5, 0)), "Sat early belongs to Fri's window");
        assert!(
            w.contains(at(1, 5, 59)),
            "Tue early belongs to Mon's window"
        );
        assert!(!w.contains(at(2, 5, 0)), "Wed early: Tue has no window");
        let every: Window = "00:00-24:00".parse().unwrap();
        assert!(every.contains(at(6, 23, 59)));
    }

    #[test]
    fn errors_name_the_part() {
        for (input, needle) in [
            ("Mon-Fry 08:00-18:00", "unknown day"),
            ("Mon 0818", "expected HH:MM-HH:MM"),
            ("Mon 25:00-26:00", "bad start time"),
            ("08:00-08:00", "empty"),
            // Found by the fuzzer: an hour that overflows when turned into minutes.
            ("1111151111:1-", "bad start time"),
            ("", "expected"),
        ] {
            let e = input.parse::<Window>().unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
    }
}
