//! Latency and cost models: data (a JSON file), not code.
//!
//! A model has price tables (Fargate per vCPU-hour and GB-hour for x86 and ARM,
//! EC2 per instance-hour by type, spot discounts, the minimum billed seconds)
//! and named *profiles*, each a kind of agent: its price inputs, start latency
//! range, connect and stop latencies, for spot an interruption rate and, for
//! EC2, the restart latency of a stopped instance and the volume billed while
//! stopped (a warm pool). The built-in model is `models/aws.json`; keys
//! starting with `_` are comments.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The built-in model (`models/aws.json`, us-east-1 prices).
pub const BUILTIN_MODEL: &str = include_str!("../models/aws.json");

/// A model file that could not be used; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError(pub String);

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "model: {}", self.0)
    }
}

impl std::error::Error for ModelError {}

/// Fargate prices of one architecture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FargateRate {
    /// Dollars per vCPU-hour.
    pub vcpu_hour: f64,
    /// Dollars per GB-hour.
    pub gb_hour: f64,
}

/// Fargate price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FargatePrices {
    /// x86_64 rates.
    pub x86: FargateRate,
    /// ARM64 (Graviton) rates.
    pub arm: FargateRate,
    /// Fraction taken off for Fargate Spot (0.7 = 70 % off).
    pub spot_discount: f64,
}

/// EC2 price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Prices {
    /// Dollars per instance-hour, by instance type.
    pub instance_hour: BTreeMap<String, f64>,
    /// Fraction taken off for spot instances.
    pub spot_discount: f64,
    /// Dollars per GB-month of EBS volume: what a stopped instance costs
    /// (times its profile's `volume_gb`). Required when a profile sets
    /// `volume_gb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_gb_month: Option<f64>,
}

/// Hours in a month for GB-month prices (AWS prorates storage over 730 h).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Which service runs the agent (decides what is billed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// ECS on Fargate: billed from the image pull (pending) until stopped.
    Fargate,
    /// EC2: billed while running.
    Ec2,
}

/// One kind of agent: what it costs and how long it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Fargate or EC2.
    pub kind: Kind,
    /// Fargate: `x86` or `arm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Fargate: vCPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<f64>,
    /// Fargate: memory in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gb: Option<f64>,
    /// EC2: instance type (a key of `ec2.instance_hour`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Spot capacity (discounted, interruptible).
    #[serde(default)]
    pub spot: bool,
    /// Launch → running, uniformly between the two values (seconds).
    pub start_latency_s: [f64; 2],
    /// Running → agent connected (seconds).
    pub connect_latency_s: f64,
    /// Terminate → gone (seconds).
    pub stop_latency_s: f64,
    /// Spot interruptions per running hour (probability rate).
    #[serde(default)]
    pub interruptions_per_hour: f64,
    /// EC2 only: restart of a stopped instance → running, uniformly between
    /// the two values (seconds). Without it, the `warm-pool` strategy keeps no
    /// stopped instances for this profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_latency_s: Option<[f64; 2]>,
    /// EC2 only: GB of EBS volume a stopped instance keeps (billed at
    /// `ec2.ebs_gb_month` while stopped). Required with `restart_latency_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_gb: Option<f64>,
    /// Comments and unknown keys (checked: only `_`-prefixed keys allowed).
    #[serde(flatten, skip_serializing)]
    pub extra: BTreeMap<String, Value>,
}

impl Profile {
    /// Shortest and longest start latency.
    pub fn start_range(&self) -> (Duration, Duration) {
        (secs(self.start_latency_s[0]), secs(self.start_latency_s[1]))
    }

    /// Connect latency.
    pub fn connect(&self) -> Duration {
        secs(self.connect_latency_s)
    }

    /// Stop latency.
    pub fn stop(&self) -> Duration {
        secs(self.stop_latency_s)
    }

    /// Shortest and longest restart latency of a stopped instance, if the
    /// profile can be restarted.
    pub fn restart_range(&self) -> Option<(Duration, Duration)> {
        self.restart_latency_s.map(|[lo, hi]| (secs(lo), secs(hi)))
    }
}

/// A latency and cost model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Minimum billed seconds per instance (60 for Fargate and EC2 Linux).
    pub minimum_billed_seconds: f64,
    /// Fargate prices.
    pub fargate: FargatePrices,
    /// EC2 prices.
    pub ec2: Ec2Prices,
    /// Agent profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Comments and unknown keys (checked).
    #[serde(flatten, skip_serializing)]
    pub extra: BTreeMap<String, Value>,
}

pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl Model {
    /// The built-in model.
    pub fn builtin() -> Model {
        Model::parse(BUILTIN_MODEL).expect("the built-in model is valid")
    }

    /// Parses and validates a model file's text.
    pub fn parse(text: &str) -> Result<Model, ModelError> {
        let model: Model = serde_json::from_str(text).map_err(|e| ModelError(e.to_string()))?;
        model.validate()?;
        Ok(model)
    }

    fn validate(&self) -> Result<(), ModelError> {
        let mut problems = Vec::new();
        let unknown = |path: &str, extra: &BTreeMap<String, Value>, problems: &mut Vec<String>| {
            for key in extra.keys().filter(|k| !k.starts_with('_')) {
                problems.push(format!("{path}{key}: unknown key"));
            }
        };
        unknown("", &self.extra, &mut problems);
        let non_negative = |path: String, v: f64, problems: &mut Vec<String>| {
            if !(v.is_finite() && v >= 0.0) {
                problems.push(format!("{path}: must be a non-negative number, found {v}"));
            }
        };
        non_negative(
            "minimum_billed_seconds".into(),
            self.minimum_billed_seconds,
            &mut problems,
        );
        for (what, d) in [
            ("fargate.spot_discount", self.fargate.spot_discount),
            ("ec2.spot_discount", self.ec2.spot_discount),
        ] {
            if !(0.0..1.0).contains(&d) {
                problems.push(format!("{what}: must be in [0, 1), found {d}"));
            }
        }
        for (name, p) in &self.profiles {
            let at = format!("profiles.{name}.");
            unknown(&at, &p.extra, &mut problems);
            let [lo, hi] = p.start_latency_s;
            non_negative(format!("{at}start_latency_s[0]"), lo, &mut problems);
            non_negative(format!("{at}start_latency_s[1]"), hi, &mut problems);
            if lo > hi {
                problems.push(format!(
                    "{at}start_latency_s: minimum {lo} is above maximum {hi}"
                ));
            }
            non_negative(
                format!("{at}connect_latency_s"),
                p.connect_latency_s,
                &mut problems,
            );
            non_negative(
                format!("{at}stop_latency_s"),
                p.stop_latency_s,
                &mut problems,
            );
            non_negative(
                format!("{at}interruptions_per_hour"),
                p.interruptions_per_hour,
                &mut problems,
            );
            if let Err(e) = self.hourly_price(p) {
                problems.push(format!("{at}{e}"));
            }
            self.validate_stopped(name, p, &mut problems);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError(problems.join("; ")))
        }
    }

    /// Checks the warm-pool fields of profile `name`: EC2 only, restart range
    /// valid, a volume (and its price) to bill stopped time with.
    fn validate_stopped(&self, name: &str, p: &Profile, problems: &mut Vec<String>) {
        let at = format!("profiles.{name}.");
        if p.kind == Kind::Fargate {
            for (field, set) in [
                ("restart_latency_s", p.restart_latency_s.is_some()),
                ("volume_gb", p.volume_gb.is_some()),
            ] {
                if set {
                    problems.push(format!(
                        "{at}{field}: only for kind ec2 (a Fargate task cannot be stopped and restarted)"
                    ));
                }
            }
            return;
        }
        if let Some([lo, hi]) = p.restart_latency_s {
            for (i, v) in [lo, hi].into_iter().enumerate() {
                if !(v.is_finite() && v >= 0.0) {
                    problems.push(format!(
                        "{at}restart_latency_s[{i}]: must be a non-negative number, found {v}"
                    ));
                }
            }
            if lo > hi {
                problems.push(format!(
                    "{at}restart_latency_s: minimum {lo} is above maximum {hi}"
                ));
            }
            if p.volume_gb.is_none() {
                problems.push(format!(
                    "{at}volume_gb: required with restart_latency_s (a stopped instance is billed for its volume)"
                ));
            }
        }
        if let Some(gb) = p.volume_gb {
            if !(gb.is_finite() && gb > 0.0) {
                problems.push(format!("{at}volume_gb: must be above zero, found {gb}"));
            }
            match self.ec2.ebs_gb_month {
                None => problems.push(format!(
                    "ec2.ebs_gb_month: required by {at}volume_gb (the price of a stopped instance's volume)"
                )),
                Some(price) if !(price.is_finite() && price >= 0.0) => problems.push(format!(
                    "ec2.ebs_gb_month: must be a non-negative number, found {price}"
                )),
                Some(_) => {}
            }
        }
    }

    /// Dollars per hour one stopped instance of `p` costs (its volume's
    /// storage): `volume_gb × ec2.ebs_gb_month / 730`; zero without a volume.
    pub fn stopped_hourly_price(&self, p: &Profile) -> f64 {
        match (p.kind, p.volume_gb, self.ec2.ebs_gb_month) {
            (Kind::Ec2, Some(gb), Some(price)) => gb * price / HOURS_PER_MONTH,
            _ => 0.0,
        }
    }

    /// A profile by name, or an error naming it.
    pub fn profile(&self, name: &str) -> Result<&Profile, ModelError> {
        self.profiles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            ModelError(format!("no profile `{name}` (known: {})", known.join(", ")))
        })
    }

    /// Dollars per hour one agent of `p` costs while billed. The error names the
    /// missing or wrong field (relative to the profile).
    pub fn hourly_price(&self, p: &Profile) -> Result<f64, String> {
        match p.kind {
            Kind::Fargate => {
                let rate = match p.arch.as_deref() {
                    Some("x86") => self.fargate.x86,
                    Some("arm") => self.fargate.arm,
                    Some(other) => {
                        return Err(format!("arch: expected `x86` or `arm`, found `{other}`"))
                    }
                    None => return Err("arch: required for kind fargate".into()),
                };
                let vcpu = p
                    .vcpu
                    .filter(|v| *v > 0.0)
                    .ok_or("vcpu: required (> 0) for kind fargate")?;
                let gb = p
                    .memory_gb
                    .filter(|v| *v > 0.0)
                    .ok_or("memory_gb: required (> 0) for kind fargate")?;
                let price = rate.vcpu_hour * vcpu + rate.gb_hour * gb;
                Ok(if p.spot {
                    price * (1.0 - self.fargate.spot_discount)
                } else {
                    price
                })
            }
            Kind::Ec2 => {
                let ty = p
                    .instance_type
                    .as_deref()
                    .ok_or("instance_type: required for kind ec2")?;
                let price = *self.ec2.instance_hour.get(ty).ok_or_else(|| {
                    format!("instance_type: `{ty}` has no price in ec2.instance_hour")
                })?;
                Ok(if p.spot {
                    price * (1.0 - self.ec2.spot_discount)
                } else {
                    price
                })
            }
        }
    }

    /// Seconds billed for time spent `pending`, `running` and `stopping` (one
    /// instance or a sum over many): Fargate bills all three (from the image
    /// pull until stopped), EC2 only running. The per-instance minimum is
    /// [`Model::minimum_top_up`]; time stopped in a warm pool is priced apart,
    /// at [`Model::stopped_hourly_price`].
    pub fn billable_seconds(&self, kind: Kind, pending: f64, running: f64, stopping: f64) -> f64 {
        match kind {
            Kind::Fargate => pending + running + stopping,
            Kind::Ec2 => running,
        }
    }

    /// Extra seconds billed for one instance that was billed `billed` seconds:
    /// up to the minimum, nothing for an instance never billed.
    pub fn minimum_top_up(&self, billed: f64) -> f64 {
        if billed > 0.0 {
            (self.minimum_billed_seconds - billed).max(0.0)
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_prices_follow_the_tables() {
        let m = Model::builtin();
        let small = m.profile("fargate-small").unwrap();
        let p = m.hourly_price(small).unwrap();
        assert!((p - (0.04048 + 2.0 * 0.004445)).abs() < 1e-9, "{p}");
        let spot = m.profile("fargate-spot").unwrap();
        let full = 2.0 * 0.04048 + 4.0 * 0.004445;
        assert!((m.hourly_price(spot).unwrap() - full * 0.3).abs() < 1e-9);
        assert_eq!(
            m.hourly_price(m.profile("ec2-m6i-large").unwrap()).unwrap(),
            0.096
        );
        assert_eq!(m.billable_seconds(Kind::Fargate, 20.0, 10.0, 5.0), 35.0);
        assert_eq!(m.billable_seconds(Kind::Ec2, 30.0, 100.0, 10.0), 100.0);
        assert_eq!(m.minimum_top_up(35.0), 25.0);
        assert_eq!(m.minimum_top_up(0.0), 0.0);
        assert_eq!(m.minimum_top_up(100.0), 0.0);
    }

    #[test]
    fn ec2_restart_and_stopped_storage_are_modelled() {
        let m = Model::builtin();
        let ec2 = m.profile("ec2-m6i-large").unwrap();
        assert_eq!(
            ec2.restart_range(),
            Some((Duration::from_secs(19), Duration::from_secs(23)))
        );
        let stopped = m.stopped_hourly_price(ec2);
        assert!((stopped - 30.0 * 0.08 / 730.0).abs() < 1e-12, "{stopped}");
        let small = m.profile("fargate-small").unwrap();
        assert_eq!(small.restart_range(), None);
        assert_eq!(m.stopped_hourly_price(small), 0.0);
    }

    #[test]
    fn restart_and_volume_errors_name_the_field() {
        let mut v: Value = serde_json::from_str(BUILTIN_MODEL).unwrap();
        v["profiles"]["fargate-small"]["restart_latency_s"] = serde_json::json!([10, 20]);
        v["profiles"]["fargate-arm"]["volume_gb"] = 8.into();
        v["profiles"]["ec2-m6i-large"]["restart_latency_s"] = serde_json::json!([-1, -2]);
        let e = Model::parse(&v.to_string()).unwrap_err().to_string();
        for want in [
            "profiles.fargate-small.restart_latency_s: only for kind ec2",
            "profiles.fargate-arm.volume_gb: only for kind ec2",
            "profiles.ec2-m6i-large.restart_latency_s[0]: must be a non-negative number, found -1",
            "profiles.ec2-m6i-large.restart_latency_s: minimum -1 is above maximum -2",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
        let mut v: Value = serde_json::from_str(BUILTIN_MODEL).unwrap();
        v["profiles"]["ec2-m6i-large"]
            .as_object_mut()
            .unwrap()
            .remove("volume_gb");
        let e = Model::parse(&v.to_string()).unwrap_err().to_string();
        assert!(
            e.contains("profiles.ec2-m6i-large.volume_gb: required with restart_latency_s"),
            "{e}"
        );
        let mut v: Value = serde_json::from_str(BUILTIN_MODEL).unwrap();
        v["ec2"].as_object_mut().unwrap().remove("ebs_gb_month");
        v["profiles"]["ec2-m6i-large"]["volume_gb"] = 0.into();
        let e = Model::parse(&v.to_string()).unwrap_err().to_string();
        assert!(
            e.contains("ec2.ebs_gb_month: required by profiles.ec2-m6i-large.volume_gb"),
            "{e}"
        );
        assert!(
            e.contains("profiles.ec2-m6i-large.volume_gb: must be above zero, found 0"),
            "{e}"
        );
        let mut v: Value = serde_json::from_str(BUILTIN_MODEL).unwrap();
        v["profiles"]["ec2-m6i-large"]["restart_latency_s"] = "soon".into();
        let e = Model::parse(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let mut v: Value = serde_json::from_str(BUILTIN_MODEL).unwrap();
        v["profiles"]["fargate-small"]["arch"] = "sparc".into();
        v["profiles"]["fargate-small"]["start_latency_s"] = serde_json::json!([40, 20]);
        v["profiles"]["ec2-m6i-large"]["instance_type"] = "z9.huge".into();
        v["profiles"]["ec2-m6i-large"]["cpu"] = 2.into();
        let e = Model::parse(&v.to_string()).unwrap_err().to_string();
        assert!(
            e.contains("profiles.fargate-small.arch: expected `x86` or `arm`"),
            "{e}"
        );
        assert!(
            e.contains("profiles.fargate-small.start_latency_s: minimum 40 is above maximum 20"),
            "{e}"
        );
        assert!(
            e.contains("profiles.ec2-m6i-large.instance_type: `z9.huge` has no price"),
            "{e}"
        );
        assert!(e.contains("profiles.ec2-m6i-large.cpu: unknown key"), "{e}");
        let e = Model::parse("{\"minimum_billed_seconds\": 60}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `fargate`"), "{e}");
        assert!(Model::builtin()
            .profile("nope")
            .unwrap_err()
            .0
            .contains("known: ec2-m6i-large"));
    }
}
