//! The synthetic data agent: reads how many records, which workload profile, models, days and
//! seed the user wants, asks for approval above a threshold (10,000 records by default), then
//! generates and stores them (`source = synthetic`) in batches with `progress` events. After
//! each batch it leaves a checkpoint: a restarted attempt of the same request continues after
//! the last stored batch (the approval given holds). Records have ids fixed by the request, so
//! a batch stored twice is counted as duplicates, never stored again.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::triage::understanding;
use super::{Agent, AgentContext, AgentError, AgentFuture, AgentInput, AgentOutput, to_json};
use crate::clock::now_ms;
use crate::protocol::ApprovalOutcome;
use crate::store::StoreError;
use crate::usage::synthetic::{DEFAULT_MODEL, Profile, Request};

/// The synthetic data agent (see the module comment).
pub struct SyntheticData;

/// The synthetic data agent's typed result (PROTOCOL.md §4): what was asked, decided and done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generated {
    /// The request as read from the message (and capped to the server's maximum).
    pub request: Request,
    /// Whether it needed and got the user's approval.
    pub decision: Decision,
    /// Records stored.
    pub generated: u64,
    /// Records already there (same ids); absent when nothing was generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<u64>,
    /// With `decision: over_quota`: the user's stored records and their cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// A user's stored usage records and the most they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quota {
    /// Records stored.
    pub held: u64,
    /// The cap (`max_records_per_user`).
    pub limit: u64,
}

/// How the request was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Below the approval threshold: generated without asking.
    NotNeeded,
    /// The user approved.
    Approve,
    /// The user declined: nothing generated.
    Reject,
    /// Nobody answered in time: nothing generated.
    Expired,
    /// The records would take the user over their cap on stored records: nothing generated,
    /// nothing asked.
    OverQuota,
}

/// The checkpoint left after each batch: how far this request got.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    /// The request (as JSON), so a restart continues only the same request.
    request: Value,
    /// Records generated so far (stored or found there).
    done: u64,
    /// Records stored so far.
    generated: u64,
    /// Records already there so far.
    duplicates: u64,
}

/// `tool_completed.output` of `generate_usage` when it stops short of the count.
#[derive(Serialize)]
struct GenerateUsageFailed {
    /// Why it stopped.
    error: String,
    /// Records stored before it stopped.
    generated: u64,
}

/// `tool_completed.output` of `generate_usage` when every record is generated.
#[derive(Serialize)]
struct GenerateUsageOutput {
    /// Records stored.
    generated: u64,
    /// Records already there (same ids).
    duplicates: u64,
}

/// The synthetic data agent's result in this run, if it ran (an error if an agent called
/// `synthetic_data` returned something else).
pub fn generated_of(input: &AgentInput) -> Result<Option<&Generated>, AgentError> {
    input.result_of::<Generated>("synthetic_data")
}

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
        let previous = i
            .checked_sub(1)
            .and_then(|p| words.get(p))
            .copied()
            .unwrap_or_default();
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
            vec![DEFAULT_MODEL.to_owned()]
        } else {
            models
        },
        days,
        seed: seed.unwrap_or(DEFAULT_SEED),
        start_ms: start_ms - i64::from(days) * DAY_MS,
    }
}

/// The user's records and cap, when the `count - done` records still to store do not fit.
async fn over_quota(
    ctx: &AgentContext,
    request: &Request,
    done: u64,
) -> Result<Option<Quota>, AgentError> {
    let held = ctx.store().stored_records().await?;
    let limit = ctx.config().max_records_per_user;
    let to_store = request.count.saturating_sub(done);
    if to_store <= limit.saturating_sub(held) {
        return Ok(None);
    }
    ctx.thinking(format!(
        "you hold {held} usage records and may hold {limit}: {to_store} more do not fit"
    ));
    Ok(Some(Quota { held, limit }))
}

/// Nothing generated: the records would not fit under the user's cap.
fn over_quota_result(request: Request, quota: Quota) -> Result<AgentOutput, AgentError> {
    AgentOutput::typed(Generated {
        request,
        decision: Decision::OverQuota,
        generated: 0,
        duplicates: None,
        quota: Some(quota),
    })
}

impl Agent for SyntheticData {
    fn name(&self) -> &'static str {
        "synthetic_data"
    }

    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
        Box::pin(async move {
            // Without triage, `parse_request`'s default model.
            let models = understanding(&input)?
                .map(|u| u.entities.models.clone())
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
            // The request as JSON: what a checkpoint belongs to.
            let details = to_json(&request);
            ctx.thinking(request.described_as(request.profile.workload()));
            // An earlier attempt's progress on this same request; anything else starts over.
            let Progress {
                mut done,
                mut generated,
                mut duplicates,
                ..
            } = ctx
                .earlier_checkpoint()
                .and_then(|c| serde_json::from_value::<Progress>(c.clone()).ok())
                .filter(|p| p.request == details)
                .unwrap_or_default();
            // Refused before asking anyone: what is left to store must fit under the cap.
            if let Some(quota) = over_quota(&ctx, &request, done).await? {
                return over_quota_result(request, quota);
            }
            if request.count > config.synthetic_approval_threshold {
                let summary = format!(
                    "Generate and store {} synthetic {} records?",
                    request.count,
                    request.profile.workload()
                );
                let outcome = ctx
                    .request_approval("generate_synthetic_data", summary, &request)
                    .await;
                match outcome {
                    ApprovalOutcome::Approve => {
                        // Checked again: an upload may have filled the room while it waited.
                        if let Some(quota) = over_quota(&ctx, &request, done).await? {
                            return over_quota_result(request, quota);
                        }
                    }
                    ApprovalOutcome::Cancelled => {
                        return Err(AgentError::Failed("cancelled".into()));
                    }
                    ApprovalOutcome::Reject | ApprovalOutcome::Expired => {
                        ctx.thinking("not approved: nothing generated");
                        let decision = match outcome {
                            ApprovalOutcome::Reject => Decision::Reject,
                            _ => Decision::Expired,
                        };
                        return AgentOutput::typed(Generated {
                            request,
                            decision,
                            generated: 0,
                            duplicates: None,
                            quota: None,
                        });
                    }
                }
            }
            if done > 0 {
                ctx.thinking(format!(
                    "an earlier attempt stored the first {done} records; continuing from there"
                ));
            }
            ctx.tool_executing("generate_usage", &request);
            let started = std::time::Instant::now();
            let batch = config.synthetic_batch.max(1);
            let mut batches = 0u64;
            while done < request.count {
                if let Err(e) = ctx.before_batch(batches).await {
                    let duration_ms = started.elapsed().as_millis() as u64;
                    let output = GenerateUsageFailed {
                        error: e.to_string(),
                        generated,
                    };
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
                            .store_synthetic(records, config.bulk_limits())
                            .await
                    }
                    Err(e) => Err(StoreError::Blocking(e.to_string())),
                };
                let stored = match stored {
                    Ok(stored) => stored,
                    Err(e) => {
                        let duration_ms = started.elapsed().as_millis() as u64;
                        let error = match e {
                            StoreError::QuotaExceeded { .. } => e.to_string(),
                            _ => String::from("storage unavailable"),
                        };
                        let output = GenerateUsageFailed { error, generated };
                        ctx.tool_completed("generate_usage", output, duration_ms, false);
                        return Err(e.into());
                    }
                };
                generated += stored.accepted as u64;
                duplicates += stored.duplicates as u64;
                done = to;
                batches += 1;
                ctx.checkpoint(Progress {
                    request: details.clone(),
                    done,
                    generated,
                    duplicates,
                });
                ctx.progress(done, request.count, "records");
            }
            let duration_ms = started.elapsed().as_millis() as u64;
            let output = GenerateUsageOutput {
                generated,
                duplicates,
            };
            ctx.tool_completed("generate_usage", output, duration_ms, true);
            let decision = if request.count > config.synthetic_approval_threshold {
                Decision::Approve
            } else {
                Decision::NotNeeded
            };
            AgentOutput::typed(Generated {
                request,
                decision,
                generated,
                duplicates: Some(duplicates),
                quota: None,
            })
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
