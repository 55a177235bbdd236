//! The optimisations core agent: runs the rules of PROTOCOL.md §4 over the user's records in
//! the data agent's window (tool `find_optimizations`) and reports every priced candidate.
//! For a model-selection request only substitutions are candidates.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};

use super::{Agent, AgentContext, AgentError, AgentInput, AgentOutput};
use crate::analysis::catalog::Catalog;
use crate::analysis::optimize::{Kind, Recommendation, Thresholds, recommend};
use crate::store::user_store::Window;
use crate::usage::record::UsageRecord;

pub struct OptimizationsCore;

/// What the candidates were computed from, read from earlier agents' results.
#[derive(Debug, Clone)]
pub struct CandidateScope {
    pub since: i64,
    pub until: i64,
    pub window_days: f64,
    pub substitutions_only: bool,
}

impl CandidateScope {
    /// The data agent's window and the triage agent's intent.
    pub fn of(input: &AgentInput) -> Option<Self> {
        let data = input.results.get("data")?;
        let intent = input
            .results
            .get("triage")
            .and_then(|t| t["intent"].as_str());
        Some(Self {
            since: data["window"]["since"].as_i64()?,
            until: data["window"]["until"].as_i64()?,
            window_days: data["window_days"].as_f64().unwrap_or(1.0),
            substitutions_only: intent == Some("model_selection"),
        })
    }
}

/// The candidates `records` support in `scope`.
pub fn candidates(
    records: &[UsageRecord],
    catalog: &Catalog,
    thresholds: &Thresholds,
    scope: &CandidateScope,
) -> Vec<Recommendation> {
    let mut recs = recommend(records, catalog, thresholds, scope.window_days);
    if scope.substitutions_only {
        recs.retain(|r| r.kind == Kind::ModelSubstitution);
    }
    recs
}

/// Reads the user's records in scope and computes the candidates they support (on the
/// blocking pool).
pub async fn load_candidates(
    ctx: &AgentContext,
    scope: CandidateScope,
) -> Result<(Vec<UsageRecord>, Vec<Recommendation>), AgentError> {
    let window = Window::Between {
        since: scope.since,
        until: scope.until,
    };
    let records = ctx.store().usage_in(window).await?.records;
    let catalog: Arc<Catalog> = ctx.catalog().clone();
    let thresholds = ctx.config().thresholds.clone();
    ctx.compute(move || {
        let recs = candidates(&records, &catalog, &thresholds, &scope);
        (records, recs)
    })
    .await
}

fn money(x: f64) -> String {
    format!("${x:.2}")
}

impl Agent for OptimizationsCore {
    fn name(&self) -> &'static str {
        "optimizations_core"
    }

    fn execute(
        &self,
        ctx: AgentContext,
        input: AgentInput,
    ) -> LocalBoxFuture<'static, Result<AgentOutput, AgentError>> {
        Box::pin(async move {
            let scope = CandidateScope::of(&input)
                .ok_or_else(|| AgentError::Failed("no usage window from the data agent".into()))?;
            let input = json!({ "since": scope.since, "until": scope.until });
            let ((_, recs), duration_ms) = ctx
                .tool("find_optimizations", input, load_candidates(&ctx, scope))
                .await?;
            let kinds: Vec<Value> = recs.iter().map(|r| json!(r.kind)).collect();
            let output = json!({ "candidates": recs.len(), "kinds": kinds });
            ctx.tool_completed("find_optimizations", output, duration_ms, true);
            for rec in &recs {
                ctx.thinking(format!(
                    "{}: {} for {} on {} saves {} of {} ({:.1}%)",
                    rec.id,
                    json!(rec.kind).as_str().unwrap_or("?"),
                    rec.workload,
                    rec.model,
                    money(rec.savings_usd),
                    money(rec.current_cost_usd),
                    rec.savings_pct
                ));
            }
            if recs.is_empty() {
                ctx.thinking("no optimisation is supported by this data");
            }
            Ok(AgentOutput::result(json!({
                "recommendations": recs,
                "catalog_as_of": ctx.catalog().as_of(),
            })))
        })
    }
}
