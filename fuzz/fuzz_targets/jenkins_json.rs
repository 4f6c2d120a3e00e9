//! Arbitrary bytes into the Jenkins-facing JSON types, node markers and time
//! windows: no panic, and what reads also writes back to an equal value.
#![no_main]

#[path = "../../jenkins-cloud-core/tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::jenkins_json(data));
