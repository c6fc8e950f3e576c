//! Helpers for the clap argument structs that each command defines next to
//! the code it configures (`src/main.rs` only parses and dispatches).

/// `T` as the command line fills it from `args`: clap's defaults for
/// everything not given. Code that builds options by hand (tests, a command
/// that reuses another's settings) starts from here, so the defaults are
/// written once, in the `#[arg]` attributes.
pub fn parse<T: clap::Args>(args: &[&str]) -> T {
    let command = T::augment_args(clap::Command::new("spider-bench").no_binary_name(true));
    let matches = command.try_get_matches_from(args).unwrap_or_else(|e| panic!("{e}"));
    T::from_arg_matches(&matches).unwrap_or_else(|e| panic!("{e}"))
}

/// `T` with every option at its default.
pub fn defaults<T: clap::Args>() -> T {
    parse(&[])
}
