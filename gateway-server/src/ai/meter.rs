//! Usage, prices and cost.
//!
//! A [`Price`] is USD per million tokens for uncached input, output, cache reads and cache
//! writes, plus a token `multiplier` that weights the model's tokens in token budgets (an
//! expensive model can count 10× against a team's token allowance). Prices come from a small
//! built-in table of well-known models, then `[[ai.models]]` entries, then the admin API (the
//! store), later sources winning. A model without a price costs 0 and is logged once.

use std::collections::BTreeMap;

use gatehouse_ai::Usage;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// USD per million tokens.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_per_mtok: Option<f64>,
    /// Output tokens (reasoning included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_per_mtok: Option<f64>,
    /// Input tokens read from the prompt cache (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_per_mtok: Option<f64>,
    /// Input tokens written to the prompt cache (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
    /// Weight of this model's tokens in token budgets (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
}

impl Price {
    /// True when no figure is set.
    pub fn is_empty(&self) -> bool {
        self.input_per_mtok.is_none() && self.output_per_mtok.is_none() && self.cache_read_per_mtok.is_none()
    }

    /// Cost of `u` in USD: each kind of token at its own price.
    pub fn cost(&self, u: &Usage) -> f64 {
        let input = self.input_per_mtok.unwrap_or(0.0);
        let per = |tokens: u64, price: f64| tokens as f64 * price / 1_000_000.0;
        per(u.input, input)
            + per(u.output, self.output_per_mtok.unwrap_or(0.0))
            + per(u.cache_read, self.cache_read_per_mtok.unwrap_or(input))
            + per(u.cache_write, self.cache_write_per_mtok.unwrap_or(input))
    }

    /// Tokens of `u` weighted by the model's multiplier, for token budgets.
    pub fn weighted_tokens(&self, u: &Usage) -> u64 {
        let m = self.multiplier.unwrap_or(1.0).max(0.0);
        (u.total_tokens() as f64 * m).round() as u64
    }

    fn checked(&self) -> Result<(), String> {
        for (name, v) in [
            ("input_per_mtok", self.input_per_mtok),
            ("output_per_mtok", self.output_per_mtok),
            ("cache_read_per_mtok", self.cache_read_per_mtok),
            ("cache_write_per_mtok", self.cache_write_per_mtok),
            ("multiplier", self.multiplier),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && (0.0..=100_000_000.0).contains(&v))
            {
                return Err(format!("{name}: must be a number from 0 to 100000000"));
            }
        }
        Ok(())
    }
}

/// Validates a price given in config or through the admin API.
pub fn validate_price(p: &Price) -> Result<(), String> {
    p.checked()
}

/// Published list prices (USD per million tokens) of a few common models, so a hub without
/// any price configured still reports a cost. Matched by prefix; config and the admin API
/// override them.
const BUILT_IN: &[(&str, f64, f64, f64, f64)] = &[
    // (model prefix, input, output, cache read, cache write)
    ("gpt-4o-mini", 0.15, 0.60, 0.075, 0.15),
    ("gpt-4o", 2.50, 10.00, 1.25, 2.50),
    ("gpt-4.1-mini", 0.40, 1.60, 0.10, 0.40),
    ("gpt-4.1", 2.00, 8.00, 0.50, 2.00),
    ("o3-mini", 1.10, 4.40, 0.55, 1.10),
    ("o4-mini", 1.10, 4.40, 0.275, 1.10),
    ("claude-opus-4", 15.00, 75.00, 1.50, 18.75),
    ("claude-sonnet-4", 3.00, 15.00, 0.30, 3.75),
    ("claude-3-7-sonnet", 3.00, 15.00, 0.30, 3.75),
    ("claude-3-5-haiku", 0.80, 4.00, 0.08, 1.00),
    ("claude-haiku-4", 1.00, 5.00, 0.10, 1.25),
    ("gemini-2.5-pro", 1.25, 10.00, 0.31, 1.25),
    ("gemini-2.5-flash", 0.30, 2.50, 0.075, 0.30),
];

/// The price table in force.
#[derive(Debug, Default)]
pub struct Prices {
    /// Exact model name → price (config and store).
    table: RwLock<BTreeMap<String, Price>>,
}

impl Prices {
    /// Replaces the configured prices.
    pub fn set_all(&self, table: BTreeMap<String, Price>) {
        *self.table.write() = table;
    }

    /// The price of `model` (exact configured name first, then the built-in prefixes).
    pub fn price(&self, model: &str) -> Price {
        if let Some(p) = self.table.read().get(model) {
            return p.clone();
        }
        BUILT_IN
            .iter()
            .find(|(prefix, ..)| model.starts_with(prefix))
            .map(|&(_, i, o, cr, cw)| Price {
                input_per_mtok: Some(i),
                output_per_mtok: Some(o),
                cache_read_per_mtok: Some(cr),
                cache_write_per_mtok: Some(cw),
                multiplier: None,
            })
            .unwrap_or_default()
    }

    /// Whether `model` has a configured price.
    pub fn has(&self, model: &str) -> bool {
        self.table.read().contains_key(model)
    }

    /// Every configured price.
    pub fn all(&self) -> BTreeMap<String, Price> {
        self.table.read().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_each_kind_of_token_separately() {
        let p = Price {
            input_per_mtok: Some(3.0),
            output_per_mtok: Some(15.0),
            cache_read_per_mtok: Some(0.3),
            cache_write_per_mtok: Some(3.75),
            multiplier: Some(2.0),
        };
        let u = Usage { input: 1_000_000, output: 100_000, cache_read: 2_000_000, cache_write: 1_000_000, reasoning: 0 };
        let cost = p.cost(&u);
        assert!((cost - (3.0 + 1.5 + 0.6 + 3.75)).abs() < 1e-9, "{cost}");
        assert_eq!(p.weighted_tokens(&u), 8_200_000);
    }

    #[test]
    fn built_in_prices_match_by_prefix_and_config_wins() {
        let prices = Prices::default();
        assert_eq!(prices.price("gpt-4o-mini-2024-07-18").input_per_mtok, Some(0.15));
        assert_eq!(prices.price("gpt-4o-2024-08-06").input_per_mtok, Some(2.5));
        assert!(prices.price("unknown").is_empty());
        prices.set_all([("gpt-4o".to_owned(), Price { input_per_mtok: Some(1.0), ..Price::default() })].into());
        assert_eq!(prices.price("gpt-4o").input_per_mtok, Some(1.0));
    }

    #[test]
    fn rejects_negative_and_non_finite_prices() {
        assert!(validate_price(&Price { input_per_mtok: Some(-1.0), ..Price::default() }).is_err());
        assert!(validate_price(&Price { multiplier: Some(f64::NAN), ..Price::default() }).is_err());
    }
}
