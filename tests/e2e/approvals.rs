//! Approvals, with a test agent of its own registered through the public pipeline API: it asks
//! the user's consent and reports the decision. Approve or reject from any of the user's
//! sockets, expiry, cancellation while waiting, and answers that come too late or from
//! another user.

use std::time::Duration;

use enclave::agents::{
    Agent, AgentContext, AgentError, AgentFuture, AgentInput, AgentOutput, RunAnswer,
};
use enclave::protocol::ApprovalOutcome;
use enclave::runtime::pipeline::Pipeline;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

/// Asks before it "deletes" three files, and reports the decision.
struct Consent;

impl Agent for Consent {
    fn name(&self) -> &'static str {
        "consent"
    }

    fn execute(&self, ctx: AgentContext, _: AgentInput) -> AgentFuture {
        Box::pin(async move {
            let outcome = ctx
                .request_approval("delete_files", "Delete 3 files?", json!({ "files": 3 }))
                .await;
            if outcome == ApprovalOutcome::Cancelled {
                return Err(AgentError::Failed("cancelled".into()));
            }
            let decision = outcome.as_str();
            let answer = RunAnswer {
                full_report_markdown: None,
                summary: format!("decision: {decision}"),
                report_markdown: format!("decision: **{decision}**"),
                result: json!({ "decision": decision }),
            };
            Ok(AgentOutput::result(json!({ "decision": decision })).with_answer(answer))
        })
    }
}

async fn spawn(db: &TestDb, configure: impl FnOnce(&mut enclave::config::Config)) -> TestApp {
    let mut config = test_config(db);
    configure(&mut config);
    TestApp::spawn_with_pipeline(config, || Pipeline::new().then(Consent)).await
}

/// Starts a run on `socket` and returns its `approval_required` event.
async fn ask(socket: &mut WsClient) -> Value {
    socket.say("tidy up").await;
    let frames = socket
        .recv_until(|f| f["type"] == "approval_required")
        .await;
    frames.last().unwrap().clone()
}

async fn approve_from_another_tab(db: TestDb) {
    let app = spawn(&db, |_| {}).await;
    let mut tab1 = app.ws("alice").await;
    let mut tab2 = app.ws("alice").await;
    tab1.recv().await;
    tab2.recv().await;
    let required = ask(&mut tab1).await;
    assert_eq!(required["agent"], "consent");
    assert_eq!(required["data"]["action"], "delete_files");
    assert_eq!(required["data"]["details"], json!({"files": 3}));
    let approval_id = required["data"]["approval_id"].as_str().unwrap().to_owned();
    let run_id = required["run_id"].as_str().unwrap().to_owned();
    let thread_id = required["thread_id"].as_str().unwrap().to_owned();

    // A socket that connects now sees the run waiting and the approval it waits for.
    let mut tab3 = app.ws("alice").await;
    let connected = tab3.recv().await;
    assert_eq!(connected["active_runs"][0]["status"], "awaiting_approval");
    assert_eq!(
        connected["pending_approvals"][0]["approval_id"],
        approval_id.as_str()
    );
    assert_eq!(connected["pending_approvals"][0]["action"], "delete_files");
    let token = app.token("alice");
    let (_, run) = app.get(&format!("/api/runs/{run_id}"), Some(&token)).await;
    assert_eq!(run["status"], "awaiting_approval");

    // Another user can neither see nor answer it.
    assert_cross_user_not_found(&app, "bob", &thread_id, &run_id, Some(&approval_id)).await;

    tab2.send(json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    let frames = tab1.recv_runs(1).await;
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["approval_resolved", "agent_completed", "run_completed"]
    );
    assert_eq!(
        frames[0]["data"],
        json!({"approval_id": approval_id, "decision": "approve"})
    );
    assert_eq!(frames[2]["data"]["result"], json!({"decision": "approve"}));

    // Answering again is a conflict, from any tab; after a restart too.
    tab3.send(json!({"type":"approval","approval_id":approval_id,"decision":"reject"}))
        .await;
    let answer = tab3.recv_until(|f| f["type"] == "error").await;
    assert_eq!(answer.last().unwrap()["code"], "conflict");
    app.stop().await;
    let app = spawn(&db, |_| {}).await;
    let mut again = app.ws("alice").await;
    again.recv().await;
    again
        .send(json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    assert_eq!(again.recv().await["code"], "conflict");
    app.stop().await;
}
on_both_backends!(approve_from_another_tab);

async fn reject_and_expiry(db: TestDb) {
    // The agent may run 2 s, the approval waits 3 s: the wait must not count toward the
    // attempt, or the run would fail with a timeout instead of seeing the expiry.
    let app = spawn(&db, |c| {
        c.agent_timeout = Duration::from_secs(2);
        c.approval_timeout = Duration::from_secs(3);
    })
    .await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    let required = ask(&mut socket).await;
    let approval_id = required["data"]["approval_id"].clone();
    socket
        .send(json!({"type":"approval","approval_id":approval_id,"decision":"reject"}))
        .await;
    let frames = socket.recv_runs(1).await;
    assert_eq!(frames[0]["data"]["decision"], "reject");
    assert_eq!(
        frames.last().unwrap()["data"]["result"]["decision"],
        "reject"
    );

    ask(&mut socket).await;
    let frames = socket.recv_runs(1).await;
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["approval_resolved", "agent_completed", "run_completed"]
    );
    assert_eq!(frames[0]["data"]["decision"], "expired");
    assert_eq!(
        frames.last().unwrap()["data"]["result"]["decision"],
        "expired"
    );
    app.stop().await;
}
on_both_backends!(reject_and_expiry);

async fn cancel_while_awaiting_approval(db: TestDb) {
    let app = spawn(&db, |_| {}).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    let required = ask(&mut socket).await;
    let approval_id = required["data"]["approval_id"].clone();
    let run_id = required["run_id"].clone();
    socket
        .send(json!({"type":"cancel_run","run_id":run_id}))
        .await;
    let frames = socket.recv_runs(1).await;
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["approval_resolved", "agent_error", "run_cancelled"]);
    assert_eq!(frames[0]["data"]["decision"], "cancelled");
    assert_eq!(frames[1]["data"]["error"], "cancelled");
    socket
        .send(json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    assert_eq!(socket.recv().await["code"], "conflict");
    let (_, run) = app
        .get(
            &format!("/api/runs/{}", run_id.as_str().unwrap()),
            Some(&app.token("alice")),
        )
        .await;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(socket.ping_pong("after").await, Vec::<Value>::new());
    app.stop().await;
}
on_both_backends!(cancel_while_awaiting_approval);
