//! The optimisations core agent: runs the rules of PROTOCOL.md §4 over the window's facts the
//! data agent found (tool `find_optimizations`, on the blocking pool) and
//! reports every priced candidate, computed once per run: the actions agent chooses among
//! these. For a model-selection request only substitutions are candidates.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::data::UsageAnalysis;
use super::triage::understanding;
use super::{Agent, AgentContext, AgentError, AgentFuture, AgentInput, AgentOutput};
use crate::analysis::catalog::Catalog;
use crate::analysis::optimize::{Kind, Recommendation, Thresholds, recommend};
use crate::protocol::event_lists::{capped, is_zero};

/// The optimisations core agent (see the module comment).
pub struct OptimizationsCore;

/// The optimisations core agent's typed result (PROTOCOL.md §4): every priced candidate. On
/// the wire, the first `EVENT_LIST_LIMIT` with `recommendations_omitted` counting the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidates {
    /// The candidates, numbered `rec-1`, `rec-2`, … in group (largest spend first) then kind
    /// order.
    pub recommendations: Vec<Recommendation>,
    /// The date of the price catalog they were priced with.
    pub catalog_as_of: String,
}

impl Serialize for Candidates {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (recommendations, recommendations_omitted) = capped(&self.recommendations);
        CandidatesWire {
            recommendations,
            recommendations_omitted,
            catalog_as_of: &self.catalog_as_of,
        }
        .serialize(s)
    }
}

/// `Candidates` as `agent_completed.result` carries it.
#[derive(Serialize)]
struct CandidatesWire<'a> {
    recommendations: &'a [Recommendation],
    #[serde(skip_serializing_if = "is_zero")]
    recommendations_omitted: usize,
    catalog_as_of: &'a str,
}

/// `tool_completed.output` of `find_optimizations` (whose input is the window's bounds): the
/// candidates found, in brief.
#[derive(Serialize)]
struct FindOptimizationsOutput {
    /// How many candidates were priced.
    candidates: usize,
    /// How many of each kind.
    kinds: BTreeMap<Kind, usize>,
}

/// The optimisations core agent's result in this run, if it ran (an error if an agent called
/// `optimizations_core` returned something else).
pub fn candidates_of(input: &AgentInput) -> Result<Option<&Candidates>, AgentError> {
    input.result_of::<Candidates>("optimizations_core")
}

/// What the candidates are computed from, read from earlier agents' results.
#[derive(Debug, Clone)]
pub struct CandidateScope {
    /// The data agent's result: the window, its records and the days they span (which scale
    /// `monthly_savings_usd`).
    pub data: Arc<UsageAnalysis>,
    /// A model-selection request: only substitutions are candidates.
    pub substitutions_only: bool,
}

impl CandidateScope {
    /// The data agent's analysis and the triage agent's intent (without triage, every kind is
    /// a candidate); an error without the data agent's result.
    pub fn of(input: &AgentInput) -> Result<Self, AgentError> {
        let data = input
            .shared_result_of::<UsageAnalysis>("data")?
            .ok_or_else(|| AgentError::Failed("no usage window from the data agent".into()))?;
        let intent = understanding(input)?.map(|u| u.intent);
        Ok(Self {
            data,
            substitutions_only: intent == Some("model_selection"),
        })
    }
}

/// The candidates the data agent's records support in `scope` (CPU-heavy: run it on the
/// blocking pool).
pub fn candidates(
    scope: &CandidateScope,
    catalog: &Catalog,
    thresholds: &Thresholds,
) -> Vec<Recommendation> {
    let data = &scope.data;
    let window_days = data.aggregates.window_days;
    let mut recs = recommend(&data.facts, catalog, thresholds, window_days);
    if scope.substitutions_only {
        recs.retain(|r| r.kind == Kind::ModelSubstitution);
    }
    recs
}

/// Computes the candidates on the blocking pool, from the records the data agent read.
async fn compute_candidates(
    ctx: &AgentContext,
    scope: CandidateScope,
) -> Result<Vec<Recommendation>, AgentError> {
    let catalog: Arc<Catalog> = ctx.catalog().clone();
    let thresholds = ctx.config().thresholds.clone();
    ctx.compute(move || candidates(&scope, &catalog, &thresholds))
        .await
}

fn money(x: f64) -> String {
    format!("${x:.2}")
}

impl Agent for OptimizationsCore {
    fn name(&self) -> &'static str {
        "optimizations_core"
    }

    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
        Box::pin(async move {
            let scope = CandidateScope::of(&input)?;
            // The tool's input: the window's bounds.
            let input = scope.data.window;
            let (recs, duration_ms) = ctx
                .tool("find_optimizations", input, compute_candidates(&ctx, scope))
                .await?;
            let mut kinds = BTreeMap::new();
            for rec in &recs {
                *kinds.entry(rec.kind).or_insert(0) += 1;
            }
            let output = FindOptimizationsOutput {
                candidates: recs.len(),
                kinds,
            };
            ctx.tool_completed("find_optimizations", output, duration_ms, true);
            // One line per candidate, for the first few: the report has every one.
            let (told, untold) = capped(&recs);
            for rec in told {
                ctx.thinking(format!(
                    "{}: {} for {} on {} saves {} of {} ({:.1}%)",
                    rec.id,
                    rec.kind.as_str(),
                    rec.workload,
                    rec.model,
                    money(rec.savings_usd),
                    money(rec.current_cost_usd),
                    rec.savings_pct
                ));
            }
            if untold > 0 {
                ctx.thinking(format!("… and {untold} more candidates, all in the report"));
            }
            if recs.is_empty() {
                ctx.thinking("no optimisation is supported by this data");
            }
            AgentOutput::typed(Candidates {
                recommendations: recs,
                catalog_as_of: ctx.catalog().as_of().to_owned(),
            })
        })
    }
}
