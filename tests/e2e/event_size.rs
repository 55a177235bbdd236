//! Events stay small however many groups a user's data has (issue 12): `agent_completed` and
//! `run_completed` carry the first 50 groups by spend (and recommendations, plan steps, table
//! rows) with a count of the rest; the whole report is stored with the run and served by
//! `GET /api/reports/{run_id}.md`.

use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

/// 60 workloads, the first with the most spend, each with batchable (non-interactive) records.
fn sixty_workloads() -> String {
    let mut rows = String::new();
    for w in 0..60 {
        for i in 0..5 {
            rows.push_str(&format!(
                "{{\"ts\":{},\"model\":\"gpt-4o\",\"workload\":\"work-{w:02}\",\"prompt_tokens\":{},\"completion_tokens\":300,\"latency_ms\":900,\"interactive\":false}}\n",
                1_793_527_200_000_i64 + i * 1000 + w,
                10_000 - w * 100
            ));
        }
    }
    rows
}

async fn long_lists_are_cut_in_events_and_whole_in_the_report(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let (status, _, _) = upload(&app, "alice", "application/x-ndjson", "", sixty_workloads()).await;
    assert_eq!(status, 200);
    let mut ws = app.ws("alice").await;
    ws.recv().await;
    ws.say("cut my LLM costs by 30%").await;
    let frames = ws.recv_runs(1).await;

    let data = frames
        .iter()
        .find(|f| f["type"] == "agent_completed" && f["agent"] == "data")
        .unwrap();
    let groups = data["data"]["result"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 50);
    assert_eq!(data["data"]["result"]["groups_omitted"], 10);
    assert_eq!(groups[0]["workload"], "work-00", "largest spend first");

    let core = frames
        .iter()
        .find(|f| f["type"] == "agent_completed" && f["agent"] == "optimizations_core")
        .unwrap();
    let recs = core["data"]["result"]["recommendations"]
        .as_array()
        .unwrap();
    assert_eq!(recs.len(), 50);
    let omitted = core["data"]["result"]["recommendations_omitted"]
        .as_u64()
        .unwrap();
    assert!(omitted >= 10, "{omitted}");

    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    let result = &end["data"]["result"];
    assert_eq!(result["recommendations"].as_array().unwrap().len(), 50);
    assert_eq!(result["recommendations_omitted"].as_u64(), Some(omitted));
    let plan = &result["plan"];
    let listed: Vec<&str> = result["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in plan["selected"].as_array().unwrap() {
        assert!(listed.contains(&id.as_str().unwrap()), "{id} is listed");
    }
    let selected = plan["selected"].as_array().unwrap().len() as u64;
    let selected_omitted = plan["selected_omitted"].as_u64().unwrap_or(0);
    assert!(selected <= 50);
    assert_eq!(
        plan["steps"].as_array().unwrap().len() as u64
            + plan["steps_omitted"].as_u64().unwrap_or(0),
        selected + selected_omitted
    );
    let short = end["data"]["report_markdown"].as_str().unwrap();
    assert!(short.contains("and 10 more groups"), "{short}");
    assert!(short.contains("work-00") && !short.contains("work-59"));

    // The whole report, stored with the run.
    let run_id = end["run_id"].as_str().unwrap();
    let token = app.token("alice");
    let mut resp = awc::Client::default()
        .get(app.http(&format!("/api/reports/{run_id}.md")))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    let full = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
    for w in 0..60 {
        assert!(
            full.contains(&format!("work-{w:02}")),
            "work-{w:02} in the full report"
        );
    }
    assert!(!full.contains("more groups"), "nothing cut");
    assert!(full.len() > short.len());
    let (_, run) = app.get(&format!("/api/runs/{run_id}"), Some(&token)).await;
    assert_eq!(run["report_markdown"], Value::from(full.clone()));
    app.stop().await;
}
on_both_backends!(long_lists_are_cut_in_events_and_whole_in_the_report);
