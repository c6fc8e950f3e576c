//! Steps: each does one thing to a [`QuestionState`]. A strategy is an
//! ordered list of steps ([`StepSpec`]s, each a step kind and its
//! parameters); [`steps::STEPS`](super::steps::STEPS) lists every kind.
//!
//! Composition (`a+b`, and `extends` in TOML files) follows two rules:
//! 1. a step of a kind already in the list merges into the first step of
//!    that kind, parameter by parameter, the later strategy's value winning;
//! 2. a step of a new kind is inserted before the first step that comes
//!    later in the flow (each kind has a place in the flow: schema,
//!    link-tables, classify, examples, subquestions, prompt, generate,
//!    extract, self-correct, execute, repair, vote).

use super::Env;
use super::state::QuestionState;
use crate::llm::LlmError;
use crate::retrieval::pool::ExamplePool;
use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Explicitly given parameters of a step (defaults are the step's own).
pub type Params = serde_json::Map<String, serde_json::Value>;

/// One thing done to the state, asynchronously.
///
/// `Err(LlmError::Request)` fails the question at this step (recorded in the
/// trace and the record; later steps do not run; the run goes on).
/// `Err(LlmError::Fatal)` stops the run (bad key, cache miss in replay).
#[async_trait::async_trait]
pub trait Step: Send + Sync {
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError>;
}

/// A step kind: its name, its place in the flow, and how to build it.
pub struct StepKind {
    pub name: &'static str,
    /// Where a composition inserts it (smaller is earlier).
    pub place: u32,
    /// Kinds that must come before it.
    pub needs: &'static [&'static str],
    pub summary: &'static str,
    /// The parameters with defaults filled in (called with the step's
    /// name); an error names what is wrong. Usually `resolved::<TheParams>`.
    pub resolve: fn(&str, &Params) -> Result<serde_json::Value>,
    pub build: fn(&Params, &BuildContext) -> Result<Built>,
}

/// A built step and its resolved parameters (defaults filled in, template
/// texts included), as config.json records them.
pub struct Built {
    pub step: Arc<dyn Step>,
    pub parameters: serde_json::Value,
}

impl Built {
    pub fn new(step: impl Step + 'static, parameters: &impl Serialize) -> Built {
        Built {
            step: Arc::new(step),
            parameters: serde_json::to_value(parameters).expect("parameters serialize"),
        }
    }
}

/// What building a step may need besides its parameters.
pub struct BuildContext<'a> {
    pub resources: &'a Resources,
    /// Relative template paths are looked up here first (the strategies folder).
    pub base_dir: &'a Path,
    /// The step list of a strategy named inside a step (a preliminary).
    pub resolve: &'a dyn Fn(&str) -> Result<super::spec::StrategySpec>,
}

/// What building strategies may need besides their steps.
#[derive(Default, Clone)]
pub struct Resources {
    /// Train examples, for steps that show examples.
    pub pool: Option<Arc<ExamplePool>>,
    /// Dense similarities over the pool, by their `similarity` name.
    pub dense: BTreeMap<String, Arc<crate::retrieval::select::Similarity>>,
    /// The strategies folder (templates named by a relative path).
    pub strategies_dir: PathBuf,
}

impl Resources {
    /// The similarity named `name` ("bm25", or a prepared embedding model).
    pub fn similarity(&self, name: &str) -> Result<Arc<crate::retrieval::select::Similarity>> {
        if name == "bm25" {
            return Ok(Arc::new(crate::retrieval::select::Similarity::Bm25));
        }
        match self.dense.get(name) {
            Some(s) => Ok(s.clone()),
            None => bail!("similarity {name:?} is not prepared: use \"bm25\" or \"openai:MODEL\""),
        }
    }
}

/// The step's parameters: its defaults, overridden by what was given;
/// unknown names are refused with the step's name.
pub fn parse_params<T: DeserializeOwned>(step: &str, given: &Params) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(given.clone()))
        .with_context(|| format!("parameters of step `{step}`"))
}

/// The parameters of a step that takes none (any given is refused).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoParams {}

/// [`parse_params`], then back to JSON: what [`StepKind::resolve`] does for
/// a step whose parameters are `T`.
pub fn resolved<T: DeserializeOwned + Serialize>(step: &str, given: &Params) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(parse_params::<T>(step, given)?)?)
}

/// One step of a strategy: its kind and explicitly given parameters.
/// Written in TOML as `"kind"` or `{ step = "kind", param = value }`.
#[derive(Clone, Debug, PartialEq)]
pub struct StepSpec {
    pub step: String,
    pub params: Params,
}

impl StepSpec {
    pub fn new(step: &str) -> StepSpec {
        StepSpec {
            step: step.to_string(),
            params: Params::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> StepSpec {
        self.params.insert(key.to_string(), value.into());
        self
    }

    /// `kind` or `kind(k=3, selector="fixed")`, for listings.
    pub fn display(&self) -> String {
        if self.params.is_empty() {
            return self.step.clone();
        }
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}({})", self.step, params.join(", "))
    }
}

impl Serialize for StepSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = Params::new();
        m.insert("step".into(), self.step.clone().into());
        m.extend(self.params.clone());
        m.serialize(s)
    }
}

impl<'de> Deserialize<'de> for StepSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(step) => Ok(StepSpec::new(&step)),
            serde_json::Value::Object(mut params) => match params.remove("step") {
                Some(serde_json::Value::String(step)) => Ok(StepSpec { step, params }),
                _ => Err(D::Error::custom("a step table needs `step = \"name\"`")),
            },
            other => Err(D::Error::custom(format!(
                "a step is a name or a table {{ step = \"name\", ... }}, not {other}"
            ))),
        }
    }
}

/// The kind named `name`.
pub fn kind(name: &str) -> Result<&'static StepKind> {
    super::steps::STEPS
        .iter()
        .copied()
        .find(|k| k.name == name)
        .with_context(|| {
            format!(
                "no step named {name:?}; steps are {}",
                super::steps::STEPS
                    .iter()
                    .map(|k| k.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// `a` then `b`, by the composition rules of this module.
pub fn compose(a: &[StepSpec], b: &[StepSpec]) -> Result<Vec<StepSpec>> {
    let mut out = a.to_vec();
    for s in b {
        if let Some(same) = out.iter_mut().find(|x| x.step == s.step) {
            same.params.extend(s.params.clone());
            continue;
        }
        let place = kind(&s.step)?.place;
        let mut at = out.len();
        for (i, x) in out.iter().enumerate() {
            if kind(&x.step)?.place > place {
                at = i;
                break;
            }
        }
        out.insert(at, s.clone());
    }
    Ok(out)
}

/// Every step is known, has valid parameters and finds the steps it needs
/// before it.
pub fn check_order(steps: &[StepSpec]) -> Result<()> {
    if steps.is_empty() {
        bail!("a strategy needs at least one step");
    }
    for (i, s) in steps.iter().enumerate() {
        let k = kind(&s.step)?;
        (k.resolve)(k.name, &s.params)?;
        for need in k.needs {
            if !steps[..i].iter().any(|x| x.step == *need) {
                bail!("step `{}` needs a `{need}` step before it", s.step);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(steps: &[StepSpec]) -> Vec<String> {
        steps.iter().map(StepSpec::display).collect()
    }

    #[test]
    fn composition_merges_same_kinds_and_places_new_ones_in_the_flow() {
        let base: Vec<StepSpec> = ["schema", "prompt", "generate", "extract", "execute", "vote"]
            .iter()
            .map(|s| StepSpec::new(s))
            .collect();
        let cot = vec![
            StepSpec::new("prompt").with("template", "cot"),
            StepSpec::new("generate").with("max_tokens", 1024),
        ];
        let sc = vec![
            StepSpec::new("generate").with("samples", 5).with("temperature", 0.8),
            StepSpec::new("repair").with("rounds", 3),
        ];
        let few = vec![StepSpec::new("examples").with("selector", "fixed").with("k", 3)];
        let c = compose(&compose(&compose(&base, &cot).unwrap(), &sc).unwrap(), &few).unwrap();
        assert_eq!(
            names(&c),
            [
                "schema",
                "examples(k=3, selector=\"fixed\")",
                "prompt(template=\"cot\")",
                "generate(max_tokens=1024, samples=5, temperature=0.8)",
                "extract",
                "execute",
                "repair(rounds=3)",
                "vote"
            ]
        );
        // The later value wins.
        let c = compose(&c, &[StepSpec::new("generate").with("samples", 2)]).unwrap();
        assert_eq!(c[3].params["samples"], 2);
        assert!(compose(&base, &[StepSpec::new("telepathy")]).is_err());
    }

    #[test]
    fn steps_need_what_they_read() {
        let e = check_order(&[StepSpec::new("generate")]).unwrap_err();
        assert!(e.to_string().contains("needs a `prompt` step"), "{e}");
    }

    #[test]
    fn specs_read_from_toml_names_or_tables() {
        #[derive(Deserialize)]
        struct F {
            steps: Vec<StepSpec>,
        }
        let f: F = toml::from_str("steps = [\"schema\", { step = \"generate\", samples = 3 }]").unwrap();
        assert_eq!(names(&f.steps), ["schema", "generate(samples=3)"]);
        assert!(toml::from_str::<F>("steps = [{ samples = 3 }]").is_err());
    }
}
