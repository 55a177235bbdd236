//! The goals triage agent: turns the request into prioritised goals in PROTOCOL.md §4's shape
//! — "cut my bill by 30%" is `cost` −30%, "p95 under 2 s" is `latency_p95_ms` ≤ 2000,
//! "without hurting p95 latency" is `latency_p95_ms` 0% — with defaults (`cost` −20%,
//! latency not worse) for what is not stated.

use serde::Serialize;

use super::triage::understanding;
use super::{Agent, AgentContext, AgentFuture, AgentInput, AgentOutput};
use crate::analysis::plan::Goal;

/// The goals triage agent (see the module comment).
pub struct GoalsTriage;

/// The goals triage agent's typed result: `{"goals": [...]}` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goals {
    /// The goals in priority order (`priority` 1 first).
    pub goals: Vec<Goal>,
}

/// The intent goals are read for when triage did not run: a cost request.
const DEFAULT_INTENT: &str = "cost_optimization";

/// A word that states a percentage, `30%`, `-30%` or `12.5%` (trailing `.`/`:` allowed): its
/// size, 0 to 100. Only digits and one point count, so `nan%`, `inf%` and `1e400%` (which Rust's
/// float parser reads as NaN or infinity) are not goals.
pub(crate) fn percent(word: &str) -> Option<f64> {
    let signed = word.trim_end_matches(['.', ':']).strip_suffix('%')?;
    // "-30%" and "+30%" are 30%: the goal says which way.
    let number = signed.strip_prefix(['-', '+']).unwrap_or(signed);
    let plain = number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|b| *b == b'.').count() <= 1
        && number.bytes().any(|b| b.is_ascii_digit());
    let value: f64 = number.parse().ok().filter(|_| plain)?;
    (0.0..=100.0).contains(&value).then_some(value)
}

/// Reads the goals stated in `message`, completed with the defaults.
pub fn goals_for(message: &str, intent: &str) -> Vec<Goal> {
    let lower = message.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '?' | '!'))
        .filter(|w| !w.is_empty())
        .collect();
    let cost_pct = words.iter().find_map(|w| percent(w));
    let cost = match cost_pct {
        Some(pct) => Goal {
            metric: "cost".into(),
            target_pct: Some(-pct.abs()),
            target_value: None,
            priority: 0,
            rationale: format!("you asked to cut cost by {pct}%"),
        },
        None => Goal {
            metric: "cost".into(),
            target_pct: Some(-20.0),
            target_value: None,
            priority: 0,
            rationale: "no cost target stated: 20% is a common first goal".into(),
        },
    };
    let latency = match latency_bound_ms(&words) {
        Some(ms) => Goal {
            metric: "latency_p95_ms".into(),
            target_pct: None,
            target_value: Some(ms),
            priority: 0,
            rationale: format!("you asked for p95 latency of at most {ms} ms"),
        },
        None => Goal {
            metric: "latency_p95_ms".into(),
            target_pct: Some(0.0),
            target_value: None,
            priority: 0,
            rationale: if lower.contains("latency") || lower.contains("p95") {
                "you asked not to make p95 latency worse".into()
            } else {
                "by default, p95 latency must not get worse".into()
            },
        },
    };
    let mut goals = if intent == "performance_optimization" {
        vec![latency, cost]
    } else {
        vec![cost, latency]
    };
    for (i, goal) in goals.iter_mut().enumerate() {
        goal.priority = i as u32 + 1;
    }
    goals
}

/// "p95 under 2 s", "p95 below 1500ms", "p95 < 2000 ms": the bound in milliseconds.
pub fn latency_bound_ms(words: &[&str]) -> Option<f64> {
    // The four words after the first "p95…": a bound word, then the number and its unit.
    let mut rest = words
        .iter()
        .skip_while(|w| !w.starts_with("p95"))
        .skip(1)
        .take(4);
    rest.position(|w| matches!(*w, "under" | "below" | "<" | "<=" | "within" | "max"))?;
    let number_and_unit: String = rest.take(2).copied().collect();
    let numeric = |c: char| c.is_ascii_digit() || c == '.';
    let digits: String = number_and_unit
        .chars()
        .take_while(|c| numeric(*c))
        .collect();
    let value: f64 = digits.parse().ok()?;
    let unit = number_and_unit.trim_start_matches(numeric);
    if unit.starts_with("ms") || unit.starts_with("millis") {
        Some(value)
    } else if unit.starts_with('s') {
        Some(value * 1000.0)
    } else {
        None
    }
}

impl Agent for GoalsTriage {
    fn name(&self) -> &'static str {
        "goals_triage"
    }

    /// The goals read from the message with the default intent.
    fn fallback(&self, input: &AgentInput) -> Option<AgentOutput> {
        let goals = goals_for(&input.message, DEFAULT_INTENT);
        AgentOutput::typed(Goals { goals }).ok()
    }

    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
        Box::pin(async move {
            let intent = understanding(&input)?.map_or(DEFAULT_INTENT, |u| u.intent);
            let goals = goals_for(&input.message, intent);
            for goal in &goals {
                ctx.thinking(format!(
                    "goal {}: {} ({})",
                    goal.priority, goal.metric, goal.rationale
                ));
            }
            AgentOutput::typed(Goals { goals })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stated_and_default_goals() {
        let goals = goals_for(
            "cut my LLM costs by 30% without hurting p95 latency",
            "cost_optimization",
        );
        assert_eq!(goals[0].metric, "cost");
        assert_eq!(goals[0].target_pct, Some(-30.0));
        assert_eq!(goals[1].target_pct, Some(0.0));
        assert_eq!(goals[1].priority, 2);
        let goals = goals_for("keep p95 under 2 s", "performance_optimization");
        assert_eq!(goals[0].metric, "latency_p95_ms");
        assert_eq!(goals[0].target_value, Some(2000.0));
        assert_eq!(goals[1].target_pct, Some(-20.0));
        let goals = goals_for("p95 below 1500ms please", "cost_optimization");
        assert_eq!(goals[1].target_value, Some(1500.0));
    }

    #[test]
    fn only_plain_percentages_up_to_100_are_goals() {
        assert_eq!(percent("-30%"), Some(30.0));
        for word in [
            "nan%",
            "NaN%",
            "inf%",
            "infinity%",
            "1e400%",
            "--5%",
            "150%",
            ".%",
            "%",
        ] {
            assert_eq!(percent(word), None, "{word}");
            let goals = goals_for(&format!("cut my costs by {word}"), "cost_optimization");
            assert_eq!(goals[0].target_pct, Some(-20.0), "{word}: the default goal");
        }
        assert_eq!(percent("30%"), Some(30.0));
        assert_eq!(percent("12.5%."), Some(12.5));
        assert_eq!(percent("100%"), Some(100.0));
    }
}
