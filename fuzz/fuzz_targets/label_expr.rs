//! Arbitrary UTF-8 as a label expression and label set: no panic, and printed
//! expressions parse back to equal ones.
#![no_main]

#[path = "../../jenkins-cloud-core/tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::label_expr(data));
