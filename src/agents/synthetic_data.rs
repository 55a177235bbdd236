//! The synthetic data agent: reads how many records, which workload profile, models, days and
//! seed the user wants, asks for approval above a threshold (10,000 records by default), then
//! generates and stores them (`source = synthetic`) in batches with `progress` events. What it
//! stores is what the next optimisation run analyses.
//!
//! After each batch it leaves a checkpoint with its supervisor: a restarted attempt of the same
//! request continues after the last stored batch (the approval given holds for it). Records
//! have ids fixed by the request, so a batch stored twice is counted as duplicates, never
//! stored again.

use futures_util::future::LocalBoxFuture;
use serde_json::json;

use super::{Agent, AgentContext, AgentError, AgentInput, AgentOutput};
use crate::clock::now_ms;
use crate::protocol::ApprovalOutcome;
use crate::store::StoreError;
use crate::usage::synthetic::{Profile, Request};

pub struct SyntheticData;

const DAY_MS: i64 = 86_400_000;
const DEFAULT_COUNT: u64 = 1_000;
const DEFAULT_DAYS: u32 = 30;
const DEFAULT_SEED: u64 = 42;

/// `50000`, `50,000`, `50k`, `2m`.
fn number(word: &str) -> Option<u64> {
    let word = word.trim_end_matches(['.', ',', ':']).replace(',', "");
    let (digits, scale) = match word.strip_suffix('k') {
        Some(d) => (d.to_owned(), 1_000),
        None => match word.strip_suffix('m') {
            Some(d) => (d.to_owned(), 1_000_000),
            None => (word, 1),
        },
    };
    digits.parse::<u64>().ok().map(|n| n * scale)
}

/// The request in `message`, with defaults for what it does not say.
pub fn parse_request(message: &str, models: Vec<String>, start_ms: i64) -> Request {
    let lower = message.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let (mut count, mut days, mut seed) = (None, None, None);
    for (i, word) in words.iter().enumerate() {
        let Some(n) = number(word) else {
            continue;
        };
        let next = words.get(i + 1).copied().unwrap_or_default();
        let previous = if i > 0 { words[i - 1] } else { "" };
        if previous.starts_with("seed") {
            seed = Some(n);
        } else if next.starts_with("day") {
            days = Some(n.min(365) as u32);
        } else if count.is_none() {
            count = Some(n);
        }
    }
    let days = days.unwrap_or(DEFAULT_DAYS).max(1);
    Request {
        count: count.unwrap_or(DEFAULT_COUNT),
        profile: Profile::named_in(&lower).unwrap_or(Profile::Chatbot),
        models: if models.is_empty() {
            vec!["gpt-4o".to_owned()]
        } else {
            models
        },
        days,
        seed: seed.unwrap_or(DEFAULT_SEED),
        start_ms: start_ms - i64::from(days) * DAY_MS,
    }
}

impl Agent for SyntheticData {
    fn name(&self) -> &'static str {
        "synthetic_data"
    }

    fn execute(
        &self,
        ctx: AgentContext,
        input: AgentInput,
    ) -> LocalBoxFuture<'static, Result<AgentOutput, AgentError>> {
        Box::pin(async move {
            let models: Vec<String> = input
                .results
                .get("triage")
                .and_then(|t| serde_json::from_value(t["entities"]["models"].clone()).ok())
                .unwrap_or_default();
            // Days end with the current one, so the records are the user's latest.
            let today_end = (now_ms() / DAY_MS + 1) * DAY_MS;
            let mut request = parse_request(&input.message, models, today_end);
            let config = ctx.config();
            if request.count > config.synthetic_max_records {
                ctx.thinking(format!(
                    "{} records is more than the {} allowed at once; generating {}",
                    request.count, config.synthetic_max_records, config.synthetic_max_records
                ));
                request.count = config.synthetic_max_records;
            }
            let details = json!(request);
            ctx.thinking(format!(
                "{} {} records for {} over {} days (seed {})",
                request.count,
                request.profile.workload(),
                request.models.join(", "),
                request.days,
                request.seed
            ));
            if request.count > config.synthetic_approval_threshold {
                let summary = format!(
                    "Generate and store {} synthetic {} records?",
                    request.count,
                    request.profile.workload()
                );
                let outcome = ctx
                    .request_approval("generate_synthetic_data", summary, details.clone())
                    .await;
                match outcome {
                    ApprovalOutcome::Approve => {}
                    ApprovalOutcome::Cancelled => {
                        return Err(AgentError::Failed("cancelled".into()));
                    }
                    ApprovalOutcome::Reject | ApprovalOutcome::Expired => {
                        ctx.thinking("not approved: nothing generated");
                        return Ok(AgentOutput::result(json!({
                            "request": details,
                            "decision": outcome,
                            "generated": 0,
                        })));
                    }
                }
            }
            let (mut done, mut generated, mut duplicates) = ctx
                .earlier_checkpoint()
                .filter(|c| c["request"] == details)
                .map(|c| {
                    let n = |field: &str| c[field].as_u64().unwrap_or(0);
                    (n("done"), n("generated"), n("duplicates"))
                })
                .unwrap_or_default();
            if done > 0 {
                ctx.thinking(format!(
                    "an earlier attempt stored the first {done} records; continuing from there"
                ));
            }
            ctx.tool_executing("generate_usage", details.clone());
            let started = std::time::Instant::now();
            let batch = config.synthetic_batch.max(1);
            let mut batches = 0u64;
            while done < request.count {
                if let Err(e) = ctx.before_batch(batches).await {
                    let duration_ms = started.elapsed().as_millis() as u64;
                    let output = json!({ "error": e.to_string(), "generated": generated });
                    ctx.tool_completed("generate_usage", output, duration_ms, false);
                    return Err(e);
                }
                let to = (done + batch).min(request.count);
                let part = request.clone();
                // Generated on the blocking pool, so the writer only writes: other users'
                // event batches wait at most one short insert, never the generation.
                let stored = match actix_web::web::block(move || part.records(done, to)).await {
                    Ok(records) => {
                        ctx.store()
                            .store_synthetic(records, config.bulk_chunk)
                            .await
                    }
                    Err(e) => Err(StoreError::Blocking(e.to_string())),
                };
                let stored = match stored {
                    Ok(stored) => stored,
                    Err(e) => {
                        let duration_ms = started.elapsed().as_millis() as u64;
                        let output =
                            json!({ "error": "storage unavailable", "generated": generated });
                        ctx.tool_completed("generate_usage", output, duration_ms, false);
                        return Err(e.into());
                    }
                };
                generated += stored.accepted as u64;
                duplicates += stored.duplicates as u64;
                done = to;
                batches += 1;
                ctx.checkpoint(json!({
                    "request": details,
                    "done": done,
                    "generated": generated,
                    "duplicates": duplicates,
                }));
                ctx.progress(done, request.count, "records");
            }
            let duration_ms = started.elapsed().as_millis() as u64;
            let output = json!({ "generated": generated, "duplicates": duplicates });
            ctx.tool_completed("generate_usage", output, duration_ms, true);
            Ok(AgentOutput::result(json!({
                "request": details,
                "decision": if request.count > config.synthetic_approval_threshold { "approve" } else { "not_needed" },
                "generated": generated,
                "duplicates": duplicates,
            })))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_count_profile_days_and_seed() {
        let r = parse_request(
            "generate 50,000 synthetic rag records over 14 days seed 7",
            vec![],
            100 * DAY_MS,
        );
        assert_eq!(
            (r.count, r.profile, r.days, r.seed),
            (50_000, Profile::Rag, 14, 7)
        );
        assert_eq!(r.start_ms, 86 * DAY_MS);
        let r = parse_request(
            "make me 20k classification requests",
            vec!["gpt-4o-mini".into()],
            0,
        );
        assert_eq!(
            (r.count, r.profile, r.days, r.seed),
            (20_000, Profile::Classification, 30, 42)
        );
        assert_eq!(r.models, ["gpt-4o-mini"]);
        let r = parse_request("generate synthetic data", vec![], 0);
        assert_eq!((r.count, r.profile), (1_000, Profile::Chatbot));
    }
}
