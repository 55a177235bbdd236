//! The actions agent: chooses the candidates that meet the goals at least risk (see
//! `analysis::plan`: caching, then batching, then retry fixes, then model substitution,
//! stopping once the cost goal is met), prices the plan without counting overlaps twice (tool
//! `plan_savings`), orders the implementation steps and says whether the goals are met — and if
//! not, by how much they fall short.

use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use serde_json::json;

use super::data::analysis;
use super::goals_triage::{Goals, goals_for};
use super::optimizations_core::{CandidateScope, load_candidates};
use super::{Agent, AgentContext, AgentError, AgentInput, AgentOutput};
use crate::analysis::plan::{Goal, Plan, choose};

/// The actions agent (see the module comment).
pub struct Actions;

/// The actions agent's typed result (PROTOCOL.md §4): the plan and the goals it was chosen for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionPlan {
    /// The chosen changes, their joint saving, the steps and whether the goals are met.
    pub plan: Plan,
    /// The goals the plan was chosen for.
    pub goals: Vec<Goal>,
}

/// The actions agent's result in this run, if it ran (an error if an agent called `actions`
/// returned something else).
pub fn plan_of(input: &AgentInput) -> Result<Option<&ActionPlan>, AgentError> {
    input.result_of::<ActionPlan>("actions")
}

/// The goals the plan is chosen for: goals triage's, or, when it did not run, the goals the
/// message states completed with the defaults of a cost request.
fn goals(input: &AgentInput) -> Result<Vec<Goal>, AgentError> {
    Ok(match input.result_of::<Goals>("goals_triage")? {
        Some(stated) => stated.goals.clone(),
        None => goals_for(&input.message, "cost_optimization"),
    })
}

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
            let scope = CandidateScope::of(&input)?;
            let goals = goals(&input)?;
            let total_spend = analysis(&input)?.map_or(0.0, |d| d.aggregates.totals.spend_usd);
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
            AgentOutput::typed(ActionPlan { plan, goals })
        })
    }
}
