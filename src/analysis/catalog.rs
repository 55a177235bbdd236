//! `Catalog`: the dated per-million-token price table (PROTOCOL.md §4). The built-in one is the
//! data file `prices.json` beside this module; `ENCLAVE_PRICES=path.json` replaces it. Records
//! without `cost_usd` are priced with the catalog in force at analysis time.

use std::collections::HashMap;

use serde::Deserialize;

use crate::usage::record::UsageRecord;

const BUILTIN: &str = include_str!("prices.json");

/// Tokens per price unit.
const MTOK: f64 = 1_000_000.0;

/// One model's prices per million tokens, which costing and the optimisations' savings use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelPrice {
    pub model: String,
    pub provider: Option<String>,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    pub cached_input_per_mtok: Option<f64>,
    /// Fraction of the cost a batch API saves.
    pub batch_discount: Option<f64>,
    /// The cheaper model to route simple traffic to.
    pub substitute: Option<String>,
}

#[derive(Deserialize)]
struct CatalogFile {
    as_of: String,
    currency: String,
    models: Vec<ModelPrice>,
}

/// Why a price catalog file was refused; the server does not start with a bad one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("price catalog is not valid JSON: {0}")]
    Json(String),
    #[error("price catalog: {0}")]
    Invalid(String),
    #[error("cannot read price catalog {path}: {reason}")]
    Read { path: String, reason: String },
}

/// The prices in force, shared by the summary route and the analysis agents, so every
/// number of one server is priced alike.
#[derive(Debug, Clone)]
pub struct Catalog {
    as_of: String,
    currency: String,
    models: HashMap<String, ModelPrice>,
}

impl Catalog {
    /// The catalog shipped with enclave.
    pub fn builtin() -> Self {
        Self::from_json(BUILTIN).expect("the built-in catalog is valid (tested)")
    }

    /// Reads a catalog file (blocking).
    pub fn load(path: &str) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|e| CatalogError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_json(&text)
    }

    /// Reads and checks a catalog's JSON text: a date, at least one model, prices of at least 0,
    /// no model twice, and substitutes that are other models of the catalog.
    pub fn from_json(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile =
            serde_json::from_str(text).map_err(|e| CatalogError::Json(e.to_string()))?;
        let invalid = |m: String| Err(CatalogError::Invalid(m));
        if file.as_of.trim().is_empty() {
            return invalid("`as_of` must name the date the prices are from".into());
        }
        if file.models.is_empty() {
            return invalid("`models` is empty".into());
        }
        let mut models = HashMap::new();
        for price in &file.models {
            let name = &price.model;
            let amounts = [
                Some(price.input_per_mtok),
                Some(price.output_per_mtok),
                price.cached_input_per_mtok,
            ];
            if amounts.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
                return invalid(format!("{name:?}: prices must be numbers of at least 0"));
            }
            if price
                .batch_discount
                .is_some_and(|d| !(0.0..=1.0).contains(&d))
            {
                return invalid(format!("{name:?}: batch_discount must be between 0 and 1"));
            }
            if models.insert(name.clone(), price.clone()).is_some() {
                return invalid(format!("{name:?} is listed twice"));
            }
        }
        for price in &file.models {
            if let Some(sub) = &price.substitute
                && (sub == &price.model || !models.contains_key(sub))
            {
                return invalid(format!(
                    "{:?}: substitute {sub:?} must be another model of the catalog",
                    price.model
                ));
            }
        }
        Ok(Self {
            as_of: file.as_of,
            currency: file.currency,
            models,
        })
    }

    /// The date the prices are from, which summaries and reports state beside their numbers.
    pub fn as_of(&self) -> &str {
        &self.as_of
    }

    /// The currency the prices are in, as the catalog file names it.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The prices of `model`; `None` for a model the catalog does not know (left unpriced).
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(model)
    }

    /// What `record` cost: its own `cost_usd`, else its tokens at the catalog's prices; `None`
    /// for a model the catalog does not know.
    pub fn cost(&self, record: &UsageRecord) -> Option<f64> {
        if let Some(cost) = record.cost_usd {
            return Some(cost);
        }
        self.price(&record.model).map(|p| {
            p.token_cost(
                record.prompt_tokens,
                record.cached_tokens,
                record.completion_tokens,
            )
        })
    }
}

impl ModelPrice {
    /// `(prompt − cached) × input + cached × cached_input + completion × output`, per million;
    /// without a cached price, cached tokens cost the input price.
    pub fn token_cost(&self, prompt: i64, cached: i64, completion: i64) -> f64 {
        let cached_price = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        ((prompt - cached) as f64 * self.input_per_mtok
            + cached as f64 * cached_price
            + completion as f64 * self.output_per_mtok)
            / MTOK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, prompt: i64, cached: i64, completion: i64) -> UsageRecord {
        UsageRecord {
            external_id: None,
            ts: 0,
            model: model.into(),
            provider: None,
            workload: "default".into(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: cached,
            latency_ms: 0,
            max_tokens: None,
            cost_usd: None,
            prompt_prefix_hash: None,
            interactive: true,
            is_error: false,
        }
    }

    #[test]
    fn the_builtin_catalog_is_valid_and_dated() {
        let catalog = Catalog::builtin();
        assert_eq!(catalog.as_of(), "2026-11-01");
        assert_eq!(catalog.currency(), "USD");
        assert!(catalog.price("gpt-4o").is_some());
    }

    #[test]
    fn prices_by_the_protocol_formula() {
        let catalog = Catalog::builtin();
        // gpt-4o: 1,000 prompt of which 400 cached, 200 completion:
        // 600 × 2.50 + 400 × 1.25 + 200 × 10.00 = 1500 + 500 + 2000 = 4000 per million = $0.004.
        let cost = catalog
            .cost(&record("gpt-4o", 1_000, 400, 200))
            .expect("priced");
        assert!((cost - 0.004).abs() < 1e-12, "{cost}");
        assert_eq!(catalog.cost(&record("unknown-model", 10, 0, 10)), None);
        let mut own = record("unknown-model", 10, 0, 10);
        own.cost_usd = Some(1.5);
        assert_eq!(catalog.cost(&own), Some(1.5));
    }

    #[test]
    fn refuses_bad_catalogs() {
        let bad = [
            r#"{"as_of":"","currency":"USD","models":[]}"#,
            r#"{"as_of":"x","currency":"USD","models":[]}"#,
            r#"{"as_of":"x","currency":"USD","models":[{"model":"a","input_per_mtok":-1,"output_per_mtok":1}]}"#,
            r#"{"as_of":"x","currency":"USD","models":[{"model":"a","input_per_mtok":1,"output_per_mtok":1,"substitute":"b"}]}"#,
            r#"{"as_of":"x","currency":"USD","models":[{"model":"a","input_per_mtok":1,"output_per_mtok":1,"batch_discount":2}]}"#,
            "not json",
        ];
        for text in bad {
            assert!(Catalog::from_json(text).is_err(), "{text}");
        }
    }
}
