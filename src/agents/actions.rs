//! The actions agent: chooses the candidates that meet the goals at least risk (see
//! `analysis::plan`: caching, then batching, then retry fixes, then model substitution,
//! stopping once the cost goal is met), prices the plan without counting overlaps twice (tool
//! `plan_savings`, on the blocking pool, over the data agent's records and the optimisations
//! core agent's candidates), orders the steps and says whether the goals are met — and if not,
//! by how much they fall short.

use serde::Serialize;

use super::goals_triage::{Goals, goals_for};
use super::optimizations_core::{CandidateScope, Candidates, candidates};
use super::{Agent, AgentContext, AgentError, AgentFuture, AgentInput, AgentOutput};
use crate::analysis::optimize::Recommendation;
use crate::analysis::plan::{Goal, Plan, choose};
use crate::protocol::event_lists::{capped, is_zero};

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

/// `tool_executing.input` of `plan_savings`: the goals the plan is chosen for.
#[derive(Serialize)]
struct PlanSavingsInput<'a> {
    /// The goals, first priority first.
    goals: &'a [Goal],
}

/// `tool_completed.output` of `plan_savings`: the plan chosen, in brief.
#[derive(Serialize)]
struct PlanSavingsOutput<'a> {
    /// The ids of the recommendations chosen, in the order taken: the first
    /// `EVENT_LIST_LIMIT`.
    selected: &'a [String],
    /// Chosen recommendations left out of `selected`.
    #[serde(skip_serializing_if = "is_zero")]
    selected_omitted: usize,
    /// What they save together in the window.
    savings_usd: f64,
    /// The saving as a share of the window's spend.
    savings_pct: f64,
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

    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
        Box::pin(async move {
            let scope = CandidateScope::of(&input)?;
            let goals = goals(&input)?;
            let offered = input.shared_result_of::<Candidates>("optimizations_core")?;
            ctx.thinking("choosing the least risky set of changes that meets the goals");
            let tool_input = PlanSavingsInput { goals: &goals };
            let catalog = ctx.catalog().clone();
            let thresholds = ctx.config().thresholds.clone();
            let chosen_for = goals.clone();
            let work = ctx.compute(move || {
                // The candidates optimisations core computed; when the plan left it out, the
                // same computation here, over the same facts.
                let own: Vec<Recommendation>;
                let recs = match &offered {
                    Some(core) => &core.recommendations,
                    None => {
                        own = candidates(&scope, &catalog, &thresholds);
                        &own
                    }
                };
                let data = &scope.data;
                let total_spend = data.aggregates.totals.spend_usd;
                choose(
                    &data.facts,
                    &catalog,
                    &thresholds,
                    recs,
                    &chosen_for,
                    total_spend,
                )
            });
            let (plan, duration_ms) = ctx.tool("plan_savings", tool_input, work).await?;
            let (selected, selected_omitted) = capped(&plan.selected);
            let output = PlanSavingsOutput {
                selected,
                selected_omitted,
                savings_usd: plan.savings_usd,
                savings_pct: plan.savings_pct,
            };
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
