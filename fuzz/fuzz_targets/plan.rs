//! Arbitrary templates, agents, demand and caps into the pure plan step: no
//! panic, no overflow, never past the global cap or the per-pass bound.
#![no_main]

#[path = "../../jenkins-cloud-core/tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::plan_inputs(data));
