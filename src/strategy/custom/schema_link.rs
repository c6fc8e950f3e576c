//! `schema-link`: a strategy written in Rust, the worked example of the
//! README. It is a step list made in code: the model names the tables the
//! question needs (`link-tables`), then writes the query seeing only those
//! (the plain prompt, answers up to 1024 tokens), which is run and voted on
//! like any rung's, so `schema-link+exec-retry` composes.

use crate::strategy::spec::StrategySpec;
use crate::strategy::step::StepSpec;

pub fn spec() -> StrategySpec {
    StrategySpec {
        name: "schema-link".into(),
        description: "two steps: the model names the tables it needs, then writes the query seeing only them".into(),
        steps: vec![
            StepSpec::new("schema"),
            StepSpec::new("link-tables"),
            StepSpec::new("prompt"),
            StepSpec::new("generate").with("max_tokens", 1024),
            StepSpec::new("extract"),
            StepSpec::new("execute"),
            StepSpec::new("vote"),
        ],
        model: None,
    }
}
