//! Configuration.
pub mod yaml;
