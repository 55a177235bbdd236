//! The triage agent: reads the user's message and decides what is asked (intent), what it
//! names (models, workloads, targets, time window), how sure it is, and the plan of agents.
//!
//! Rule-based and deterministic; with an LLM configured, the LLM names the intent (one known
//! label, nothing else is taken from it) and the rules are the fallback.

use serde::Serialize;

use super::goals_triage::percent;
use super::{
    Agent, AgentContext, AgentError, AgentFuture, AgentInput, AgentOutput, Improved, RunAnswer,
};
use crate::llm::LlmRequest;

/// The triage agent (see the module comment).
pub struct Triage;

/// What triage understood: its typed result (PROTOCOL.md §4), read by the agents after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Understanding {
    /// What is asked: one of `INTENTS`.
    pub intent: &'static str,
    /// How sure the rules are, 0.3 for `general` up to 0.95.
    pub confidence: f64,
    /// What the message names.
    pub entities: Entities,
    /// The agents to run, triage first.
    pub plan: Vec<&'static str>,
}

/// What a message names, as triage read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entities {
    /// Model names (`gpt-4o`, `claude-…`), in order, repeats dropped.
    pub models: Vec<String>,
    /// Every percentage stated ("30%" → 30).
    pub targets_pct: Vec<f64>,
    /// "the last 2 weeks" → 14; the data agent's window.
    pub window_days: Option<u64>,
    /// "p95 under 2 s" → 2000.
    pub latency_target_ms: Option<f64>,
}

/// Keywords per intent, most specific first.
const INTENT_KEYWORDS: &[(&str, &[&str])] = &[
    (
        "synthetic_data",
        &["synthetic", "generate", "fake data", "sample data"],
    ),
    (
        "model_selection",
        &[
            "which model",
            "choose a model",
            "model selection",
            "switch model",
            "compare models",
        ],
    ),
    (
        "cost_optimization",
        &[
            "cost",
            "bill",
            "spend",
            "cheaper",
            "save",
            "saving",
            "budget",
            "price",
            "expensive",
            "money",
        ],
    ),
    (
        "performance_optimization",
        &[
            "latency",
            "faster",
            "slow",
            "p95",
            "p99",
            "speed",
            "performance",
            "throughput",
        ],
    ),
    (
        "workload_analysis",
        &[
            "analy",
            "usage",
            "breakdown",
            "summary",
            "report",
            "how much",
            "trend",
            "overview",
        ],
    ),
];

/// Model families whose names triage recognises in a message.
const MODEL_PREFIXES: &[&str] = &[
    "gpt-",
    "o1",
    "o3",
    "o4-",
    "claude-",
    "gemini-",
    "mistral-",
    "mixtral-",
    "llama-",
    "codestral",
];

/// What the LLM is asked: a label, nothing else.
const INTENT_PROMPT: &str = "Classify the user's request about their LLM API usage. Answer \
with exactly one label: cost_optimization, performance_optimization, workload_analysis, \
model_selection, synthetic_data or general.";

const INTENTS: &[&str] = &[
    "cost_optimization",
    "performance_optimization",
    "workload_analysis",
    "model_selection",
    "synthetic_data",
    "general",
];

/// The known intent an LLM answer names, if exactly one.
pub fn intent_label(answer: &str) -> Option<&'static str> {
    let answer = answer.to_lowercase();
    let named: Vec<&'static str> = INTENTS
        .iter()
        .copied()
        .filter(|i| answer.contains(i))
        .collect();
    match named.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

/// The agents each intent runs (DESIGN.md §3).
pub fn plan_for(intent: &str) -> Vec<&'static str> {
    match intent {
        "cost_optimization" | "performance_optimization" => vec![
            "triage",
            "goals_triage",
            "data",
            "optimizations_core",
            "actions",
            "reporting",
        ],
        "workload_analysis" => vec!["triage", "data", "reporting"],
        "model_selection" => vec!["triage", "data", "optimizations_core", "reporting"],
        "synthetic_data" => vec!["triage", "synthetic_data", "reporting"],
        _ => vec!["triage", "reporting"],
    }
}

/// Reads `message` by rule.
pub fn understand(message: &str) -> Understanding {
    let lower = message.to_lowercase();
    let scores: Vec<(&'static str, usize)> = INTENT_KEYWORDS
        .iter()
        .map(|(intent, words)| (*intent, words.iter().filter(|w| lower.contains(*w)).count()))
        .collect();
    let best = scores
        .iter()
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n);
    let (mut intent, hits) = best.map_or(("general", 0), |(i, n)| (*i, *n));
    let hit = |name: &str| scores.iter().any(|(i, n)| *i == name && *n > 0);
    // A request naming both cost and latency is a cost request with a latency constraint;
    // explicit synthetic-data and model-selection requests win over the generic words.
    for specific in ["synthetic_data", "model_selection"] {
        if hit(specific) {
            intent = specific;
        }
    }
    if intent == "performance_optimization" && hit("cost_optimization") {
        intent = "cost_optimization";
    }
    let confidence = if intent == "general" {
        0.3
    } else {
        (0.5 + 0.15 * hits as f64).min(0.95)
    };
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '?' | '!'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut models: Vec<String> = words
        .iter()
        .map(|w| w.trim_end_matches(['.', ':']))
        .filter(|w| MODEL_PREFIXES.iter().any(|p| w.starts_with(p)) && w.len() > 2)
        .map(str::to_owned)
        .collect();
    models.dedup();
    let targets_pct = words.iter().filter_map(|w| percent(w)).collect();
    let window_days = words.windows(3).find_map(|w| match w {
        ["last", n, unit] => {
            let n: u64 = n.parse().ok()?;
            match unit.trim_end_matches(['.', ',']) {
                "day" | "days" => Some(n),
                "week" | "weeks" => Some(n * 7),
                "month" | "months" => Some(n * 30),
                _ => None,
            }
        }
        _ => None,
    });
    Understanding {
        intent,
        confidence,
        entities: Entities {
            models,
            targets_pct,
            window_days,
            latency_target_ms: super::goals_triage::latency_bound_ms(&words),
        },
        plan: plan_for(intent),
    }
}

/// What triage understood in this run, if it ran (an error if an agent called `triage`
/// returned something else).
pub fn understanding(input: &AgentInput) -> Result<Option<&Understanding>, AgentError> {
    input.result_of::<Understanding>("triage")
}

impl Understanding {
    /// Triage's output: this understanding as its typed result, the rest of the plan, and the
    /// answer of a run that ends with triage (a custom pipeline's).
    pub fn into_output(self) -> Result<AgentOutput, AgentError> {
        let rest = self.plan.iter().skip(1).map(|a| (*a).to_owned()).collect();
        let (summary, report_markdown) = self.answer();
        let output = AgentOutput::typed(self)?;
        let answer = RunAnswer {
            full_report_markdown: None,
            summary,
            report_markdown,
            result: output.result.clone(),
        };
        Ok(output.with_answer(answer).with_replan(rest))
    }

    /// The summary and report of a run that ends with triage.
    fn answer(&self) -> (String, String) {
        let intent = self.intent.replace('_', " ");
        let entities = &self.entities;
        let mut noted = Vec::new();
        if !entities.models.is_empty() {
            noted.push(format!("models {}", entities.models.join(", ")));
        }
        if !entities.targets_pct.is_empty() {
            let pcts: Vec<String> = entities
                .targets_pct
                .iter()
                .map(|p| format!("{p}%"))
                .collect();
            noted.push(format!("targets {}", pcts.join(", ")));
        }
        if let Some(days) = entities.window_days {
            noted.push(format!("the last {days} days"));
        }
        let noted = if noted.is_empty() {
            String::from("no models, targets or time window")
        } else {
            noted.join("; ")
        };
        let summary = format!(
            "I read this as a {intent} request (confidence {:.2}) and noted {noted}.",
            self.confidence
        );
        let report_markdown = format!(
            "# What enclave understood\n\n| | |\n|---|---|\n| intent | {intent} |\n| confidence | {:.2} |\n| noted | {noted} |\n| plan | {} |\n",
            self.confidence,
            self.plan.join(" → ")
        );
        (summary, report_markdown)
    }
}

impl Agent for Triage {
    fn name(&self) -> &'static str {
        "triage"
    }

    /// The rules alone.
    fn fallback(&self, input: &AgentInput) -> Option<AgentOutput> {
        understand(&input.message).into_output().ok()
    }

    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
        Box::pin(async move {
            ctx.thinking("reading the request for intent, models, targets and time window");
            let mut understood = understand(&input.message);
            let request = LlmRequest {
                system: INTENT_PROMPT.to_owned(),
                user: input.message.clone(),
                max_tokens: 16,
            };
            let refused = "the LLM gave no known intent";
            let read = ctx
                .improve_with_llm(request, intent_label, refused, "using the rules")
                .await;
            if let Improved::Used(intent) = read {
                ctx.thinking(format!("the LLM reads the intent as {intent}"));
                understood.intent = intent;
                understood.plan = plan_for(intent);
            }
            ctx.thinking(format!(
                "intent {} with confidence {:.2}; plan {}",
                understood.intent,
                understood.confidence,
                understood.plan.join(" → ")
            ));
            let mut output = understood.into_output()?;
            output.fallback = read.fell_back();
            Ok(output)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents() {
        let u = understand("Cut my LLM bill by 30% without hurting p95 latency");
        assert_eq!(u.intent, "cost_optimization");
        assert_eq!(u.entities.targets_pct, vec![30.0]);
        assert_eq!(u.plan.len(), 6);
        assert_eq!(
            understand("why is it so slow? p95").intent,
            "performance_optimization"
        );
        assert_eq!(
            understand("generate 50000 synthetic records").intent,
            "synthetic_data"
        );
        assert_eq!(understand("analyse my usage").intent, "workload_analysis");
        assert_eq!(understand("hello there").intent, "general");
    }

    #[test]
    fn the_result_keeps_its_wire_shape() {
        let u = understand("cut my gpt-4o bill by 30% over the last 2 weeks, p95 under 2 s");
        let expected = serde_json::json!({
            "intent": u.intent,
            "confidence": u.confidence,
            "entities": {
                "models": ["gpt-4o"],
                "targets_pct": [30.0],
                "window_days": 14,
                "latency_target_ms": 2000.0,
            },
            "plan": u.plan,
        });
        let output = u.into_output().expect("serialisable");
        assert_eq!(output.result, expected);
        assert_eq!(output.answer.map(|a| a.result), Some(expected));
    }

    #[test]
    fn entities() {
        let u = understand("compare gpt-4o and claude-3-5-sonnet over the last 2 weeks");
        assert_eq!(u.entities.models, vec!["gpt-4o", "claude-3-5-sonnet"]);
        assert_eq!(u.entities.window_days, Some(14));
        let u = understand("make it faster: p95 under 2 s");
        assert_eq!(u.entities.latency_target_ms, Some(2000.0));
    }
}
