//! Typed agent results through the public pipeline API (issue 10): a custom `data` agent that
//! hands the standard agents records it never stored shows that optimisations core and actions
//! work on the data agent's result instead of reading the window again; a custom `data` agent
//! with plain JSON makes the agents after it fail with an explicit error, not a silent default.

use enclave::agents::actions::Actions;
use enclave::agents::data::{UsageAnalysis, WindowBounds};
use enclave::agents::optimizations_core::OptimizationsCore;
use enclave::agents::reporting::Reporting;
use enclave::agents::{Agent, AgentContext, AgentFuture, AgentInput, AgentOutput};
use enclave::analysis::optimize::Thresholds;
use enclave::analysis::window::WindowPass;
use enclave::runtime::pipeline::Pipeline;
use enclave::usage::record::UsageRecord;
use serde_json::json;

use crate::helpers::*;
use crate::on_both_backends;

const DAY_MS: i64 = 86_400_000;

/// 200 non-interactive gpt-4o requests over two days: a batching candidate.
fn records() -> Vec<UsageRecord> {
    (0..200)
        .map(|i| UsageRecord {
            external_id: Some(format!("r{i}")),
            ts: i * DAY_MS / 100,
            model: "gpt-4o".into(),
            provider: None,
            workload: "nightly".into(),
            prompt_tokens: 1_000,
            completion_tokens: 200,
            cached_tokens: 0,
            latency_ms: 900,
            max_tokens: None,
            cost_usd: None,
            prompt_prefix_hash: None,
            interactive: false,
            is_error: false,
        })
        .collect()
}

/// A `data` agent whose records exist only in its result, never in the database.
struct InMemoryData;

impl Agent for InMemoryData {
    fn name(&self) -> &'static str {
        "data"
    }

    fn execute(&self, ctx: AgentContext, _: AgentInput) -> AgentFuture {
        Box::pin(async move {
            let (aggregates, facts) =
                WindowPass::of_records(&records(), ctx.catalog(), &Thresholds::default());
            AgentOutput::typed(UsageAnalysis {
                window: WindowBounds {
                    since: 0,
                    until: 2 * DAY_MS,
                },
                aggregates,
                catalog_as_of: ctx.catalog().as_of().to_owned(),
                facts: std::sync::Arc::new(facts),
            })
        })
    }
}

/// A `data` agent that answers in plain JSON, shaped like the real one's.
struct PlainJsonData;

impl Agent for PlainJsonData {
    fn name(&self) -> &'static str {
        "data"
    }

    fn execute(&self, _: AgentContext, _: AgentInput) -> AgentFuture {
        Box::pin(async move {
            Ok(AgentOutput::result(json!({
                "window": { "since": 0, "until": DAY_MS },
                "window_days": 1.0,
                "data_sufficiency": "sufficient",
            })))
        })
    }
}

async fn the_window_is_read_once_per_run(db: TestDb) {
    let pipeline = || {
        Pipeline::new()
            .then(InMemoryData)
            .then(OptimizationsCore)
            .then(Actions)
            .then(Reporting)
    };
    let app = TestApp::spawn_with_pipeline(test_config(&db), pipeline).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    socket.say("cut my bill by 30%").await;
    let frames = socket.recv_runs(1).await;
    let completed = |agent: &str| {
        frames
            .iter()
            .find(|f| f["type"] == "agent_completed" && f["agent"] == agent)
            .unwrap_or_else(|| panic!("{agent} completed: {frames:#?}"))
            .clone()
    };
    // Alice has no stored records: the candidates come from the data agent's result.
    let recs = completed("optimizations_core")["data"]["result"]["recommendations"].clone();
    assert_eq!(recs[0]["kind"], "batching", "{recs:#}");
    assert_eq!(recs[0]["affected_requests"], 200);
    let plan = completed("actions")["data"]["result"]["plan"].clone();
    assert_eq!(plan["selected"], json!(["rec-1"]));
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    assert_eq!(end["data"]["result"]["totals"]["requests"], 200);
    assert_eq!(end["data"]["result"]["plan"], plan);
    app.stop().await;
}
on_both_backends!(the_window_is_read_once_per_run);

async fn a_result_of_the_wrong_type_fails_the_agent_that_reads_it(db: TestDb) {
    let mut config = test_config(&db);
    config.max_restarts = 0;
    let pipeline = || Pipeline::new().then(PlainJsonData).then(OptimizationsCore);
    let app = TestApp::spawn_with_pipeline(config, pipeline).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    socket.say("cut my bill by 30%").await;
    let frames = socket.recv_runs(1).await;
    let error = frames
        .iter()
        .find(|f| f["type"] == "agent_error")
        .expect("optimisations core fails");
    assert_eq!(error["agent"], "optimizations_core");
    let text = error["data"]["error"].as_str().unwrap();
    assert!(
        text.starts_with("the data agent's result is plain JSON, not the "),
        "{text}"
    );
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_failed");
    assert_eq!(end["data"]["code"], "agent_failed");
    app.stop().await;
}
on_both_backends!(a_result_of_the_wrong_type_fails_the_agent_that_reads_it);
