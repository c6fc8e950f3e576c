//! Strategies written in Rust: each file makes a step list in code (its
//! `spec()`), which may use every step kind. To add one: write the file,
//! then add its name to the list below.

use super::spec::StrategySpec;

macro_rules! rust_strategies {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every strategy written in Rust.
        pub const RUST_STRATEGIES: &[fn() -> StrategySpec] = &[$($module::spec),*];
    };
}

rust_strategies!(schema_link);
