//! Sandboxed execution of untrusted SQL.
pub mod sandbox;
