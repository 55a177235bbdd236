//! The actions agent: chooses the candidates that meet the goals at least risk (see
//! `analysis::plan`: caching, then batching, then retry fixes, then model substitution,
//! stopping once the cost goal is met), prices the plan without counting overlaps twice (tool
//! `plan_savings`), orders the implementation steps and says whether the goals are met — and if
//! not, by how much they fall short.

use futures_util::future::LocalBoxFuture;
use serde_json::json;

use super::goals_triage::goals_for;
use super::optimizations_core::{CandidateScope, load_candidates};
use super::{Agent, AgentContext, AgentError, AgentInput, AgentOutput};
use crate::analysis::plan::{Goal, choose};

pub struct Actions;

impl Agent for Actions {
    fn name(&self) -> &'static str {
        "actions"
    }

    fn execute(
        &self,
        ctx: AgentContext,
        input: AgentInput,
    ) -> LocalBoxFuture<'static, Result<AgentOutput, AgentError>> {
        Box::pin(async move {
            let scope = CandidateScope::of(&input)
                .ok_or_else(|| AgentError::Failed("no usage window from the data agent".into()))?;
            let goals: Vec<Goal> = match input.results.get("goals_triage") {
                Some(result) => serde_json::from_value(result["goals"].clone())
                    .map_err(|e| AgentError::Failed(format!("unreadable goals: {e}")))?,
                None => goals_for(&input.message, "cost_optimization"),
            };
            let total_spend = input
                .results
                .get("data")
                .and_then(|d| d["totals"]["spend_usd"].as_f64())
                .unwrap_or(0.0);
            ctx.thinking("choosing the least risky set of changes that meets the goals");
            let input = json!({ "goals": goals });
            let ((records, recs), duration_ms) = ctx
                .tool("plan_savings", input, load_candidates(&ctx, scope))
                .await?;
            let thresholds = &ctx.config().thresholds;
            let plan = choose(
                &records,
                ctx.catalog(),
                thresholds,
                &recs,
                &goals,
                total_spend,
            );
            let output = json!({
                "selected": plan.selected,
                "savings_usd": plan.savings_usd,
                "savings_pct": plan.savings_pct,
            });
            ctx.tool_completed("plan_savings", output, duration_ms, true);
            ctx.thinking(if plan.goals_met {
                format!(
                    "the plan saves {:.1}% and meets the goals",
                    plan.savings_pct
                )
            } else {
                format!(
                    "the plan saves {:.1}%, {:.1} points short of the cost goal",
                    plan.savings_pct, plan.shortfall_pct
                )
            });
            Ok(AgentOutput::result(json!({ "plan": plan, "goals": goals })))
        })
    }
}
