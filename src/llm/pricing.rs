//! Cost per token, per model. Defaults are OpenAI's list prices (USD per
//! million tokens, standard tier); `--prices FILE` (TOML: `[models."name"]
//! input = 0.15, output = 0.6`) adds or overrides entries.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// USD per million tokens.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, serde::Serialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    prices: BTreeMap<String, Price>,
}

const DEFAULT_PRICES: &[(&str, f64, f64)] = &[
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-5", 1.25, 10.00),
    ("gpt-5-mini", 0.25, 2.00),
    ("gpt-5-nano", 0.05, 0.40),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
];

#[derive(Deserialize)]
struct PriceFile {
    models: BTreeMap<String, Price>,
}

impl PriceTable {
    pub fn with_defaults() -> Self {
        PriceTable {
            prices: DEFAULT_PRICES
                .iter()
                .map(|(m, i, o)| (m.to_string(), Price { input: *i, output: *o }))
                .collect(),
        }
    }

    /// Adds the entries of a TOML price file.
    pub fn load_overrides(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read prices {}", path.display()))?;
        let file: PriceFile = toml::from_str(&text).with_context(|| {
            format!(
                "{}: expected [models.\"NAME\"] tables with input and output prices",
                path.display()
            )
        })?;
        self.prices.extend(file.models);
        Ok(())
    }

    /// The price of `model`: an exact entry, else the longest entry that is a
    /// prefix of it (so dated snapshots such as `gpt-4o-mini-2024-07-18` are
    /// priced), else none (local and unknown models cost nothing here).
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.prices.get(model) {
            return Some(*p);
        }
        self.prices
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()) && model[name.len()..].starts_with('-'))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }

    pub fn cost(&self, model: &str, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        self.price(model)
            .map(|p| (prompt_tokens as f64 * p.input + completion_tokens as f64 * p.output) / 1e6)
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_snapshots_use_the_base_price() {
        let t = PriceTable::with_defaults();
        assert_eq!(t.price("gpt-4o-mini-2024-07-18"), t.price("gpt-4o-mini"));
        assert_ne!(t.price("gpt-4o-2024-08-06"), t.price("gpt-4o-mini"));
        assert_eq!(t.price("my-local-model"), None);
        assert!((t.cost("gpt-4o-mini", 1_000_000, 1_000_000) - 0.75).abs() < 1e-12);
    }
}
