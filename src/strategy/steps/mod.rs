//! Every step kind, one file each. To add a step: write a file here with
//! its parameters, its [`Step`](super::step::Step) implementation and its
//! `KIND` (name, place in the flow, steps it needs before it, summary), then
//! add the file's name to the list below.

use super::step::StepKind;

macro_rules! steps {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every step kind, in the order of the flow.
        pub const STEPS: &[&StepKind] = &[$(&$module::KIND),*];
    };
}

steps!(
    schema,
    link_tables,
    classify,
    examples,
    subquestions,
    prompt,
    constrained,
    generate,
    extract,
    self_correct,
    execute,
    repair,
    vote,
);
