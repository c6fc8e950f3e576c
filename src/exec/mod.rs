//! Sandboxed execution of untrusted SQL, and the values it returns.
pub mod sandbox;
pub mod value;
