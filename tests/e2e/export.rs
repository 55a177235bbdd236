//! `GET /api/export` (issue 12): everything the caller's other routes show — threads, runs
//! with their messages, events, approvals, usage — one object per line with a `kind`, framed
//! by an `export` line and an `end` line counting the rest; nothing of another user's.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

/// A user's day: usage uploaded, a question answered, a large synthetic request declined.
pub(crate) async fn use_enclave(app: &TestApp, user: &str, marker: &str) {
    let rows = format!(
        "{{\"id\":\"{marker}-1\",\"ts\":1793527200000,\"model\":\"{marker}-model\",\"workload\":\"{marker}-work\",\"prompt_tokens\":100,\"completion_tokens\":10,\"latency_ms\":200}}\n\
         {{\"ts\":1793527200001,\"model\":\"gpt-4o\",\"prompt_tokens\":200,\"completion_tokens\":20,\"latency_ms\":300}}\n"
    );
    let (status, _, _) = upload(app, user, "application/x-ndjson", "", rows).await;
    assert_eq!(status, 200);
    let mut ws = app.ws(user).await;
    ws.recv().await;
    ws.say(&format!("cut my LLM costs by 30% ({marker})")).await;
    ws.recv_runs(1).await;
    ws.say("generate 20,000 synthetic chatbot records").await;
    let asked = ws.recv_until(|f| f["type"] == "approval_required").await;
    let approval_id = asked.last().unwrap()["data"]["approval_id"].clone();
    ws.send(json!({"type":"approval","approval_id":approval_id,"decision":"reject"}))
        .await;
    ws.recv_runs(1).await;
    ws.close().await;
}

/// The export of `user`, line by line.
pub(crate) async fn export_of(app: &TestApp, user: &str) -> (String, Vec<Value>) {
    let mut resp = awc::Client::default()
        .get(app.http("/api/export"))
        .insert_header(("Authorization", format!("Bearer {}", app.token(user))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/x-ndjson"
    );
    let body = resp.body().limit(64 << 20).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (text, lines)
}

fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

/// `value` without its `kind`.
fn unkinded(value: &Value) -> Value {
    let mut value = value.clone();
    value.as_object_mut().unwrap().remove("kind");
    value
}

async fn an_export_holds_what_the_routes_show_and_nothing_else(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    use_enclave(&app, "alice", "alice").await;
    use_enclave(&app, "bob", "bobsecret").await;
    let token = app.token("alice");
    let (text, lines) = export_of(&app, "alice").await;

    let first = &lines[0];
    assert_eq!(first["kind"], "export");
    assert_eq!(first["user_id"], "alice");
    let end = lines.last().unwrap();
    assert_eq!(end["kind"], "end", "{text}");
    for (kind, key) in [
        ("thread", "threads"),
        ("run", "runs"),
        ("event", "events"),
        ("approval", "approvals"),
        ("usage", "usage"),
    ] {
        assert_eq!(
            end[key].as_u64(),
            Some(of_kind(&lines, kind).len() as u64),
            "{kind}"
        );
    }

    // Threads as listed.
    let (_, listed) = app.get("/api/threads", Some(&token)).await;
    let listed: BTreeSet<String> = listed["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    let exported: BTreeSet<String> = of_kind(&lines, "thread")
        .iter()
        .map(|t| unkinded(t).to_string())
        .collect();
    assert_eq!(exported, listed);
    assert_eq!(
        exported.len(),
        2,
        "one thread per message sent without a thread_id"
    );

    // Runs as shown one by one, with the messages that started them.
    let runs = of_kind(&lines, "run");
    assert_eq!(runs.len(), 2);
    for run in &runs {
        let id = run["run_id"].as_str().unwrap();
        let (status, shown) = app.get(&format!("/api/runs/{id}"), Some(&token)).await;
        assert_eq!(status, 200);
        let mut run = unkinded(run);
        let content = run.as_object_mut().unwrap().remove("content").unwrap();
        run.as_object_mut().unwrap().remove("client_msg_id");
        assert_eq!(run, shown);
        assert!(
            content.as_str().unwrap().starts_with("cut my")
                || content.as_str().unwrap().starts_with("generate")
        );
    }

    // Every event, gapless, each as the thread's page shows it.
    let events: Vec<Value> = of_kind(&lines, "event").into_iter().map(unkinded).collect();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let mut paged_total = 0;
    for run in &runs {
        let thread = run["thread_id"].as_str().unwrap();
        let (_, page) = app
            .get(
                &format!("/api/threads/{thread}/events?limit=1000"),
                Some(&token),
            )
            .await;
        let paged = page["events"].as_array().unwrap();
        assert!(!paged.is_empty());
        for event in paged {
            assert!(events.contains(event), "{event}");
        }
        paged_total += paged.len();
    }
    assert_eq!(
        paged_total,
        events.len(),
        "every event belongs to one of the threads"
    );

    // The declined approval, and the usage as uploaded.
    let approvals = of_kind(&lines, "approval");
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["status"], "reject");
    assert_eq!(approvals[0]["details"]["count"], 20_000);
    let usage = of_kind(&lines, "usage");
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0]["id"], "alice-1");
    assert_eq!(usage[0]["model"], "alice-model");
    assert_eq!(usage[1]["id"], Value::Null);
    assert_eq!(usage[1]["prompt_tokens"], 200);
    assert_eq!(usage[1]["source"], "uploaded");

    // A deleted thread takes its runs' approvals with it: the export no longer has them.
    let approval_thread = runs
        .iter()
        .find(|r| r["run_id"] == approvals[0]["run_id"])
        .unwrap()["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = awc::Client::default()
        .delete(app.http(&format!("/api/threads/{approval_thread}")))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);
    let (_, after) = export_of(&app, "alice").await;
    assert!(of_kind(&after, "approval").is_empty());
    assert_eq!(of_kind(&after, "run").len(), 1);

    // Nothing of bob's: not his name, his message, his usage.
    assert!(!text.contains("bob"), "{text}");

    // Bob's own export is his.
    let (bobs, lines) = export_of(&app, "bob").await;
    assert_eq!(lines[0]["user_id"], "bob");
    assert!(bobs.contains("bobsecret-model"));
    assert!(!bobs.contains("alice"));

    let (status, _) = app.get("/api/export", None).await;
    assert_eq!(status, 401);
    app.stop().await;
}
on_both_backends!(an_export_holds_what_the_routes_show_and_nothing_else);

async fn an_export_pages_through_many_records_with_equal_times(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    // 2,500 records over 3 pages of 1,000, most of them at one millisecond.
    let rows: String = (0..2_500)
        .map(|i| {
            let ts = 1_793_527_200_000_i64 + if i % 5 == 0 { i } else { 0 };
            format!(
                "{{\"ts\":{ts},\"model\":\"gpt-4o\",\"prompt_tokens\":{i},\"completion_tokens\":1,\"latency_ms\":1}}\n"
            )
        })
        .collect();
    let (status, _, _) = upload(&app, "carol", "application/x-ndjson", "", rows).await;
    assert_eq!(status, 200);
    let (_, lines) = export_of(&app, "carol").await;
    let usage = of_kind(&lines, "usage");
    assert_eq!(usage.len(), 2_500);
    let ids: BTreeSet<&str> = usage
        .iter()
        .map(|u| u["record_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2_500, "no record twice");
    let tokens: BTreeSet<i64> = usage
        .iter()
        .map(|u| u["prompt_tokens"].as_i64().unwrap())
        .collect();
    assert_eq!(tokens, (0..2_500).collect(), "none left out");
    assert_eq!(lines.last().unwrap()["usage"], 2_500);
    app.stop().await;
}
on_both_backends!(an_export_pages_through_many_records_with_equal_times);
