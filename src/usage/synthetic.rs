//! Synthetic usage: realistic LLM request records for a workload profile, deterministic per
//! seed, so a user without data can try enclave (and tests have data of known shape).
//!
//! Each profile has its own token and latency distributions, prompt-prefix reuse, share of
//! interactive traffic and error rate. Record `n` of a request depends only on the seed and
//! `n`, so generation can run in batches and a repeated request yields the same ids (and so
//! adds nothing on re-upload).

use serde::Serialize;

use super::record::UsageRecord;

/// A kind of workload with its own shape of traffic; `profile` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Interactive chat: short prompts and answers.
    Chatbot,
    /// Retrieval-augmented answers: long prompts, much shared context.
    Rag,
    /// Long documents summarised offline: mostly non-interactive.
    SummarisationBatch,
    /// Labels: short prompts, answers of a few tokens.
    Classification,
    /// Agents calling tools: long prompts, more errors, no output cap.
    AgentToolUse,
}

impl Profile {
    /// The profile a message names, if any.
    pub fn named_in(lower: &str) -> Option<Self> {
        let named = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        if named(&["rag", "retrieval"]) {
            Some(Self::Rag)
        } else if named(&["summar", "batch"]) {
            Some(Self::SummarisationBatch)
        } else if named(&["classif", "tagging", "routing"]) {
            Some(Self::Classification)
        } else if named(&["agent", "tool"]) {
            Some(Self::AgentToolUse)
        } else if named(&["chat", "support", "assistant"]) {
            Some(Self::Chatbot)
        } else {
            None
        }
    }

    /// The profile's name on the wire (as it serialises): `summarisation_batch`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chatbot => "chatbot",
            Self::Rag => "rag",
            Self::SummarisationBatch => "summarisation_batch",
            Self::Classification => "classification",
            Self::AgentToolUse => "agent_tool_use",
        }
    }

    /// The `workload` of the records generated for the profile.
    pub fn workload(self) -> &'static str {
        match self {
            Self::Chatbot => "chatbot",
            Self::Rag => "rag",
            Self::SummarisationBatch => "summarisation-batch",
            Self::Classification => "classification",
            Self::AgentToolUse => "agent-tool-use",
        }
    }

    /// The distributions its records are drawn from.
    fn shape(self) -> Shape {
        let (prompt, completion, prefix_share, interactive, errors, max_tokens) = match self {
            Self::Chatbot => ((300, 1_500), (40, 300), 0.3, 1.0, 0.01, Some(1_024)),
            Self::Rag => ((2_000, 6_000), (150, 400), 0.7, 1.0, 0.01, Some(800)),
            Self::SummarisationBatch => ((3_000, 8_000), (300, 700), 0.2, 0.1, 0.02, Some(1_024)),
            Self::Classification => ((200, 800), (1, 20), 0.5, 1.0, 0.01, Some(256)),
            Self::AgentToolUse => ((1_500, 4_000), (100, 500), 0.4, 1.0, 0.08, None),
        };
        Shape {
            prompt,
            completion,
            prefix_share,
            interactive,
            errors,
            max_tokens,
        }
    }
}

/// The distributions a profile's records are drawn from.
struct Shape {
    /// Prompt tokens, uniform over this inclusive range.
    prompt: (i64, i64),
    /// Completion tokens, uniform over this inclusive range.
    completion: (i64, i64),
    /// Share of records that carry one of a few shared prompt prefixes.
    prefix_share: f64,
    /// Share of interactive records.
    interactive: f64,
    /// Share of failed records.
    errors: f64,
    /// The `max_tokens` every record sets, if any.
    max_tokens: Option<i64>,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    /// How many records.
    pub count: u64,
    /// The shape of their traffic.
    pub profile: Profile,
    /// The models records are spread over (none: all `DEFAULT_MODEL`).
    pub models: Vec<String>,
    /// The days the records' timestamps are spread over.
    pub days: u32,
    /// Picks the stream of values: the same seed gives the same records.
    pub seed: u64,
    /// Epoch ms of the first day.
    pub start_ms: i64,
}

const DAY_MS: i64 = 86_400_000;

/// The model of every record when a request names none.
pub const DEFAULT_MODEL: &str = "gpt-4o";

/// splitmix64: a tiny, well-known mixing function; `n`-th value of a seed's stream.
fn mix(seed: u64, n: u64, lane: u64) -> u64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(lane.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform value in [0, 1).
fn unit(seed: u64, n: u64, lane: u64) -> f64 {
    (mix(seed, n, lane) >> 11) as f64 / (1u64 << 53) as f64
}

fn between(seed: u64, n: u64, lane: u64, (low, high): (i64, i64)) -> i64 {
    low + ((high - low + 1) as f64 * unit(seed, n, lane)) as i64
}

impl Request {
    /// "1000 `kind` records for gpt-4o over 30 days (seed 42)": the request in words, its
    /// profile named `kind`.
    pub fn described_as(&self, kind: &str) -> String {
        format!(
            "{} {kind} records for {} over {} days (seed {})",
            self.count,
            self.models.join(", "),
            self.days,
            self.seed
        )
    }

    /// Records `from..to` of the request.
    pub fn records(&self, from: u64, to: u64) -> Vec<UsageRecord> {
        let shape = self.profile.shape();
        let span = i64::from(self.days.max(1)) * DAY_MS;
        (from..to.min(self.count))
            .map(|n| {
                let s = self.seed;
                let model = mix(s, n, 1)
                    .checked_rem(self.models.len() as u64)
                    .and_then(|k| self.models.get(k as usize))
                    .map_or(DEFAULT_MODEL, String::as_str);
                let prompt = between(s, n, 2, shape.prompt);
                let completion = between(s, n, 3, shape.completion);
                let shared = unit(s, n, 4) < shape.prefix_share;
                // Latency grows with the tokens produced and read, with a long tail.
                let tail = if unit(s, n, 5) > 0.97 { 3.0 } else { 1.0 };
                let latency = ((250.0 + completion as f64 * 12.0 + prompt as f64 * 0.1)
                    * (0.8 + 0.4 * unit(s, n, 6))
                    * tail) as i64;
                UsageRecord {
                    external_id: Some(format!("syn-{}-{}-{n}", s, self.profile.workload())),
                    ts: self.start_ms + (unit(s, n, 7) * span as f64) as i64,
                    model: model.to_owned(),
                    provider: None,
                    workload: self.profile.workload().to_owned(),
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    cached_tokens: 0,
                    latency_ms: latency,
                    max_tokens: shape.max_tokens,
                    cost_usd: None,
                    prompt_prefix_hash: shared.then(|| {
                        format!("{}-prefix-{}", self.profile.workload(), mix(s, n, 8) % 4)
                    }),
                    interactive: unit(s, n, 9) < shape.interactive,
                    is_error: unit(s, n, 10) < shape.errors,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(profile: Profile, seed: u64) -> Request {
        Request {
            count: 2_000,
            profile,
            models: vec!["gpt-4o".into(), "gpt-4o-mini".into()],
            days: 10,
            seed,
            start_ms: 0,
        }
    }

    #[test]
    fn deterministic_per_seed_and_batch_independent() {
        let r = request(Profile::Rag, 7);
        let whole = r.records(0, 2_000);
        let mut parts = r.records(0, 700);
        parts.extend(r.records(700, 2_000));
        assert_eq!(whole, parts);
        assert_ne!(whole, request(Profile::Rag, 8).records(0, 2_000));
        assert_eq!(r.records(1_990, 5_000).len(), 10);
    }

    #[test]
    fn profiles_have_their_shape() {
        let share = |records: &[UsageRecord], f: &dyn Fn(&UsageRecord) -> bool| {
            records.iter().filter(|r| f(r)).count() as f64 / records.len() as f64
        };
        let batch = request(Profile::SummarisationBatch, 1).records(0, 2_000);
        assert!(share(&batch, &|r| !r.interactive) > 0.8);
        let rag = request(Profile::Rag, 1).records(0, 2_000);
        assert!(share(&rag, &|r| r.prompt_prefix_hash.is_some()) > 0.6);
        let tools = request(Profile::AgentToolUse, 1).records(0, 2_000);
        let errors = share(&tools, &|r| r.is_error);
        assert!((0.05..0.11).contains(&errors), "{errors}");
        let class = request(Profile::Classification, 1).records(0, 2_000);
        assert!(
            class
                .iter()
                .all(|r| r.completion_tokens <= 20 && r.ts < 10 * DAY_MS)
        );
    }

    #[test]
    fn names_are_the_wire_names() {
        for profile in [
            Profile::Chatbot,
            Profile::Rag,
            Profile::SummarisationBatch,
            Profile::Classification,
            Profile::AgentToolUse,
        ] {
            assert_eq!(serde_json::json!(profile), profile.as_str());
        }
    }
}
