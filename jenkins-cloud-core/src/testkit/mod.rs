//! Test kit for backends and integrations (cargo feature `testkit`).
//!
//! * [`conformance`]: the behaviour every [`Backend`](crate::backend::Backend) must
//!   pass, one async fn per behaviour.
//! * [`fake_jenkins`]: a protocol-faithful fake Jenkins controller over HTTP.
//! * [`moto`]: a shared moto (AWS emulator) server for the AWS backends' tests.

pub mod conformance;
pub mod fake_jenkins;
pub mod moto;
