//! The `jenkins-cloud` program as a library: configuration, commands, metrics.
//!
//! `main.rs` only parses the command line and calls into [`commands`].
#![deny(missing_docs)]

pub mod commands;
pub mod config;
pub mod crashpoint;
pub mod metrics;
