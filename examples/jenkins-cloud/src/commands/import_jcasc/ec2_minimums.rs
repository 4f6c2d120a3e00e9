//! The ec2 plugin's warm agents → `min_idle` and `min_idle_windows`:
//! `minimumNumberOfInstances`, `minimumNumberOfSpareInstances` and
//! `minimumNumberOfInstancesTimeRangeConfig` on a template, and the cloud's
//! `hotSpareConfigsByLabel` rules.
//!
//! Sources (ec2 plugin): `util/MinimumNumberOfInstancesTimeRangeConfig.java`
//! (times parsed as `h:mm a` in English, else `HH:mm`; day flags `monday`…
//! `sunday`, unset meaning false; the old `minimumNoInstancesActiveTimeRangeDays`
//! map), `util/MinimumInstanceChecker.java` (a range whose end is before its
//! start runs past midnight and belongs to the day it starts on, in the
//! controller's time zone) and `HotSpareConfigByLabel.java` (a rule's
//! `baseHotSpares` and `idleTimeoutMinutes`, default 15, win over the
//! templates that carry its label), in
//! <https://github.com/jenkinsci/ec2-plugin/tree/master/src/main/java/hudson/plugins/ec2>.

use jenkins_cloud_core::label::{LabelExpr, LabelSet};
use serde_json::{json, Map, Value};

use super::output::OutTemplate;
use super::values::{boolean, count, int, text, Notes};

const DAYS: [(&str, &str); 7] = [
    ("monday", "Mon"),
    ("tuesday", "Tue"),
    ("wednesday", "Wed"),
    ("thursday", "Thu"),
    ("friday", "Fri"),
    ("saturday", "Sat"),
    ("sunday", "Sun"),
];

/// Minutes after midnight of a time the plugin accepts: `h:mm a`
/// (`1:00 PM`, `12:30 AM`) or `HH:mm` (`01:00`, `23:45`).
fn plugin_time(raw: &str) -> Option<u32> {
    let raw = raw.trim();
    if let Some((clock, half)) = raw.rsplit_once(' ') {
        let pm = match half.to_ascii_uppercase().as_str() {
            "AM" => false,
            "PM" => true,
            _ => return None,
        };
        let (h, m) = clock.split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        if !(1..=12).contains(&h) || m > 59 {
            return None;
        }
        return Some((h % 12 + if pm { 12 } else { 0 }) * 60 + m);
    }
    let (h, m) = raw.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 23 && m <= 59).then_some(h * 60 + m)
}

/// The time range as one of our windows (`Tue,Thu 01:00-13:00`), or why not.
fn window(range: &Map<String, Value>) -> Result<String, String> {
    let time = |key: &str| {
        let raw = range.get(key).and_then(text).unwrap_or_default();
        plugin_time(&raw).ok_or_else(|| {
            format!("`{key}` `{raw}` is not a time the plugin accepts (`1:00 PM` or `13:00`)")
        })
    };
    let (from, to) = (
        time("minimumNoInstancesActiveTimeRangeFrom")?,
        time("minimumNoInstancesActiveTimeRangeTo")?,
    );
    if from == to {
        return Err("from and to are the same time: the plugin never applies the minimum".into());
    }
    let legacy = range
        .get("minimumNoInstancesActiveTimeRangeDays")
        .and_then(Value::as_object);
    let days: Vec<&str> = DAYS
        .iter()
        .filter(|(long, _)| {
            range
                .get(*long)
                .or_else(|| legacy.and_then(|m| m.get(*long)))
                .and_then(boolean)
                == Some(true)
        })
        .map(|(_, short)| *short)
        .collect();
    if days.is_empty() {
        return Err("no day is selected: the plugin never applies the minimum".into());
    }
    let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
    let times = format!("{}-{}", hhmm(from), hhmm(to));
    Ok(if days.len() == 7 {
        times
    } else {
        format!("{} {times}", days.join(","))
    })
}

/// A template's minimums and time range → `min_idle` / `min_idle_windows`.
pub(super) fn template(
    obj: &Map<String, Value>,
    tpath: &str,
    out: &mut OutTemplate,
    notes: &mut Notes,
) {
    let min = obj
        .get("minimumNumberOfInstances")
        .and_then(count)
        .unwrap_or(0);
    let spare = obj
        .get("minimumNumberOfSpareInstances")
        .and_then(count)
        .unwrap_or(0);
    let n = min.max(spare);
    if min > 0 {
        notes.add(
            &format!("{tpath}.minimumNumberOfInstances"),
            "carried as the warm-agent count (`min_idle`, or the `min_idle_windows` count with a time range): that many agents are kept idle (the plugin counts busy agents too, so at least as many are ready here)",
        );
    }
    if spare > 0 {
        notes.add(
            &format!("{tpath}.minimumNumberOfSpareInstances"),
            "carried as the warm-agent count (`min_idle`, or the `min_idle_windows` count with a time range): idle agents kept ready, as spare instances are",
        );
    }
    let Some(range) = obj
        .get("minimumNumberOfInstancesTimeRangeConfig")
        .and_then(Value::as_object)
    else {
        if n > 0 {
            out.min_idle = Some(n);
        }
        return;
    };
    let rpath = format!("{tpath}.minimumNumberOfInstancesTimeRangeConfig");
    if n == 0 {
        notes.add(&rpath, "not carried: no minimum is set for it to apply to");
        return;
    }
    match window(range) {
        Ok(w) => {
            notes.add(
                &rpath,
                format!("carried as `min_idle_windows` `{w}` with count {n}; our windows are in UTC while the plugin used the controller's time zone: shift the hours if Jenkins does not run on UTC"),
            );
            out.min_idle_windows.push(json!({"window": w, "count": n}));
        }
        Err(why) => notes.add(&rpath, format!("not carried: {why}")),
    }
}

/// The cloud's `hotSpareConfigsByLabel` rules applied to its templates.
pub(super) fn hot_spares(
    rules: &Value,
    path: &str,
    templates: &mut [OutTemplate],
    notes: &mut Notes,
) {
    for (i, rule) in rules.as_array().into_iter().flatten().enumerate() {
        let rpath = format!("{path}.hotSpareConfigsByLabel[{i}]");
        let Some(label) = rule.get("label").and_then(text) else {
            notes.add(&rpath, "not carried: no `label`");
            continue;
        };
        let expr = match label.parse::<LabelExpr>() {
            Ok(e) => e,
            Err(e) => {
                notes.add(
                    &rpath,
                    format!("not carried: `{label}` is not a label expression: {e}"),
                );
                continue;
            }
        };
        let matching: Vec<usize> = templates
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.labels
                    .as_deref()
                    .is_some_and(|l| expr.matches(&LabelSet::parse(l)))
            })
            .map(|(j, _)| j)
            .collect();
        let Some(&first) = matching.first() else {
            notes.add(
                &rpath,
                format!("not carried: no template carries `{label}`"),
            );
            continue;
        };
        let base = rule.get("baseHotSpares").and_then(count).unwrap_or(0);
        if base > 0 {
            let t = &mut templates[first];
            t.min_idle = Some(t.min_idle.unwrap_or(0).max(base));
            notes.add(
                &format!("{rpath}.baseHotSpares"),
                format!("carried as `min_idle` of `{}`, the first template with `{label}` (the plugin counts the spares of all of them together)", t.name),
            );
        }
        let idle = rule.get("idleTimeoutMinutes").map_or(Some(15), int);
        let template_wins = rule
            .get("allowTemplateIdleTimeoutOverride")
            .and_then(boolean)
            .unwrap_or(false);
        if let Some(minutes) = idle {
            let timeout = if minutes <= 0 {
                "never".to_owned()
            } else {
                format!("{minutes}m")
            };
            for &j in &matching {
                let t = &mut templates[j];
                if !(template_wins && t.idle_timeout.is_some()) {
                    t.idle_timeout = Some(timeout.clone());
                }
            }
            notes.add(
                &format!("{rpath}.idleTimeoutMinutes"),
                format!("carried as `idle_timeout: {timeout}` on the templates with `{label}`"),
            );
        }
        for key in ["scalingFactor", "maxHotSpares"] {
            if rule.get(key).is_some_and(|v| !v.is_null()) {
                notes.add(
                    &format!("{rpath}.{key}"),
                    "not carried: the spare target does not grow with demand here; every queued build gets its agent at once (`no-delay`), and `min_idle` keeps the base",
                );
            }
        }
        if rule.get("gracePeriodMinutes").and_then(int).unwrap_or(0) > 0 {
            notes.add(
                &format!("{rpath}.gracePeriodMinutes"),
                "not carried: `launch_timeout` and `connect_timeout` bound how long an agent may take to come online",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_the_plugin_parses_them() {
        assert_eq!(plugin_time("01:00"), Some(60));
        assert_eq!(plugin_time("23:45"), Some(23 * 60 + 45));
        assert_eq!(plugin_time("1:00 PM"), Some(13 * 60));
        assert_eq!(plugin_time("12:30 AM"), Some(30));
        assert_eq!(plugin_time("12:00 PM"), Some(12 * 60));
        for bad in ["1:00", "24:00", "13:00 PM", "0:30 AM", "noon", "01:5", ""] {
            assert_eq!(plugin_time(bad), None, "{bad}");
        }
    }
}
