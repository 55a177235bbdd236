//! The page's usage data: a file uploaded from the page, cut into uploads under the server's
//! limit, then an optimisation run over it watched live and its report checked against the
//! API; a file with invalid rows refused whole with its rows named.

use fantoccini::Locator;
use serde_json::Value;

use crate::fake_llm::{FakeLlm, HELD_WORD};
use crate::harness::*;

/// `1500` as the page writes it (`toLocaleString("en")`): `1,500`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn money(value: &Value) -> String {
    format!("${:.2}", value.as_f64().unwrap())
}

/// `examples/sample-usage.ndjson` (264 KB) uploaded from the page to a server whose upload
/// limit is 64 KiB, so the page must cut it; the summary shows what the API sums. Then "cut
/// my costs by 30%": the run is held mid-way by the fake LLM while its live timeline is
/// checked, then completes with the report, whose chart and numbers are the API's.
#[actix_web::test]
async fn the_sample_uploads_in_parts_and_its_report_matches_the_api() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let mut llm = FakeLlm::start();
    let mut env = llm.env();
    env.push(("ENCLAVE_MAX_UPLOAD_BYTES", "65536".to_owned()));
    let server = Server::start_with(&env).await;
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "erin").await;

    let sample = sample_usage_path();
    assert!(std::fs::metadata(&sample).unwrap().len() > 4 * 65536);
    let status = upload_file(page, &sample).await;
    assert_eq!(status, "Stored 1500 records from sample-usage.ndjson.");
    let bar = page
        .execute(
            "const bar = document.getElementById('upload-progress');
             return [bar.hidden, bar.value, bar.max];",
            vec![],
        )
        .await
        .unwrap();
    let size = std::fs::metadata(&sample).unwrap().len();
    assert_eq!(
        bar,
        serde_json::json!([false, size, size]),
        "the progress bar full"
    );
    let summary = server.get_json("/api/usage/summary", "erin").await;
    assert_eq!(summary["totals"]["requests"], 1500);
    let totals = format!(
        "{} requests, {} spent (prices of {}).",
        grouped(1500),
        money(&summary["totals"]["spend_usd"]),
        summary["catalog_as_of"].as_str().unwrap()
    );
    wait_for_text(page, "#usage-summary .totals", &totals).await;
    // Spend by model: the API's groups summed per model, largest first.
    let mut by_model: Vec<(String, f64)> = Vec::new();
    for group in summary["groups"].as_array().unwrap() {
        let model = group["model"].as_str().unwrap().to_owned();
        let spend = group["spend_usd"].as_f64().unwrap();
        match by_model.iter_mut().find(|(m, _)| *m == model) {
            Some((_, sum)) => *sum += spend,
            None => by_model.push((model, spend)),
        }
    }
    by_model.retain(|(_, spend)| *spend > 0.0);
    by_model.sort_by(|a, b| b.1.total_cmp(&a.1));
    let charts = page
        .find_all(Locator::Css("#usage-summary .chart"))
        .await
        .unwrap();
    assert_eq!(charts.len(), 2, "spend by model and by workload");
    assert_eq!(
        texts_of(page, "#usage-summary figcaption").await,
        ["Spend by model (USD)", "Spend by workload (USD)"]
    );
    let first = "#usage-summary figure:first-of-type";
    let labels = texts_of(page, &format!("{first} .label")).await;
    let values = texts_of(page, &format!("{first} .value")).await;
    let expected: Vec<(String, String)> = by_model
        .iter()
        .take(10)
        .map(|(model, spend)| (model.clone(), format!("${spend:.2}")))
        .collect();
    assert_eq!(labels.into_iter().zip(values).collect::<Vec<_>>(), expected);
    browser.screenshot("usage-summary").await;

    // Folded, so the chat is in view.
    click(page, "#usage-panel > summary").await;
    say(page, "Where can I cut my LLM costs by 30%?").await;
    // Held in the reporting agent: the run is live, its timeline open, its steps so far shown.
    llm.held(1).await;
    let held = format!("reporting: {HELD_WORD}");
    wait_for_text_that(page, ".run .timeline", &held, |t| t.contains(&held)).await;
    wait_for(page, ".run[data-state=running]").await;
    let steps = page.find(Locator::Css(".run details.steps")).await.unwrap();
    assert_eq!(steps.attr("open").await.unwrap().as_deref(), Some("true"));
    let timeline = texts_of(page, ".run .timeline li").await;
    // Tool calls with their inputs and outputs.
    assert!(
        timeline
            .iter()
            .any(|s| s.starts_with("data: usage_aggregates ← {")),
        "{timeline:#?}"
    );
    assert!(
        timeline
            .iter()
            .any(|s| s.starts_with("data: usage_aggregates → {\"groups\":")),
        "{timeline:#?}"
    );
    for agent in [
        "triage",
        "goals_triage",
        "data",
        "optimizations_core",
        "actions",
    ] {
        assert!(
            timeline.iter().any(|s| s == &format!("{agent}: done")),
            "{agent} done in {timeline:#?}"
        );
    }
    assert_eq!(text_of(page, ".run .status").await, "working… Cancel");
    browser.screenshot("chat-mid-run").await;

    llm.open();
    let run = wait_for(page, ".run[data-state=run_completed] .report-body table").await;
    drop(run);
    let run_id = page
        .find(Locator::Css(".run"))
        .await
        .unwrap()
        .attr("data-run-id")
        .await
        .unwrap()
        .unwrap();
    let view = server
        .get_json(&format!("/api/runs/{run_id}"), "erin")
        .await;
    assert_eq!(view["status"], "completed");
    let result = &view["result"];
    let summary_text = text_of(page, ".run .summary").await;
    assert!(summary_text.starts_with(HELD_WORD), "{summary_text}");
    // The wording streamed piece by piece reads as one line of the timeline.
    click(page, ".run details.steps summary").await;
    let timeline = texts_of(page, ".run .timeline li").await;
    let streamed: Vec<_> = timeline
        .iter()
        .filter(|s| s.starts_with("reporting: Drafting"))
        .collect();
    assert_eq!(streamed, [&format!("reporting: {summary_text}")]);
    click(page, ".run details.steps summary").await;
    // The chart: the API's recommendations by savings, largest first.
    let mut recommendations: Vec<&Value> = result["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["savings_usd"].as_f64().unwrap() > 0.0)
        .collect();
    assert!(recommendations.len() >= 3, "{result}");
    recommendations.sort_by(|a, b| {
        b["savings_usd"]
            .as_f64()
            .unwrap()
            .total_cmp(&a["savings_usd"].as_f64().unwrap())
    });
    let values = texts_of(page, ".run .chart .value").await;
    let expected: Vec<String> = recommendations
        .iter()
        .take(10)
        .map(|r| money(&r["savings_usd"]))
        .collect();
    assert_eq!(values, expected);
    // The report: every recommendation, the plan's savings.
    let report = text_of(page, ".report-body").await;
    for r in &recommendations {
        assert!(
            report.contains(r["id"].as_str().unwrap()),
            "{r} in {report}"
        );
    }
    let plan_savings = money(&result["plan"]["savings_usd"]);
    assert!(report.contains(&plan_savings), "{plan_savings} in {report}");
    // The plan's steps and the usage table.
    let steps = result["plan"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{result}");
    let items = texts_of(page, ".report-body li").await;
    for step in steps {
        let step = step.as_str().unwrap();
        assert!(items.iter().any(|i| i == step), "{step:?} in {items:#?}");
    }
    let headings = texts_of(page, ".report-body h2").await;
    assert!(
        headings.iter().any(|h| h == "Usage analysed"),
        "{headings:?}"
    );

    // The report's download is the markdown the API serves (fetched with the token).
    let downloads = TempDir::new();
    browser
        .devtools(
            "Browser.setDownloadBehavior",
            serde_json::json!({"behavior": "allow", "downloadPath": downloads.path()}),
        )
        .await;
    click(page, ".run .download").await;
    let saved = downloads.path().join(format!("enclave-report-{run_id}.md"));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !saved.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let markdown = server
        .get_text(&format!("/api/reports/{run_id}.md"), "erin")
        .await;
    assert!(markdown.contains("rec-1"), "{markdown}");
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), markdown);

    assert_eq!(server.metric("csp_reports_total").await, 0.0);
    browser.stop_clean().await;
}

/// Files with invalid rows, cut into many uploads (a 4 KiB limit): a CSV whose every record
/// holds a quoted newline, and a pretty-printed JSON array. Each is refused whole, its bad
/// rows named by their place in the file, nothing stored; with "keep the valid rows" the rest
/// is stored and the same rows listed.
#[actix_web::test]
async fn invalid_rows_are_named_in_the_file_and_nothing_is_stored() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start_with(&[("ENCLAVE_MAX_UPLOAD_BYTES", "4096")]).await;
    let scratch = TempDir::new();
    let mut csv = String::from("id,ts,model,workload,prompt_tokens,completion_tokens,latency_ms\n");
    for i in 1..=200 {
        let ts = if i == 3 {
            "yesterday".to_owned()
        } else {
            (1_793_000_000_000_i64 + i).to_string()
        };
        let prompt = if i == 150 { "lots" } else { "100" };
        // Row 2's workload holds a quote mid-field: a plain character there, not a quoted
        // field's start (a cutter that took it for one would misnumber every later row).
        let workload = if i == 2 {
            "12\" screens".to_owned()
        } else {
            format!("\"two\nlines {i}\"")
        };
        csv.push_str(&format!("c{i},{ts},gpt-4o,{workload},{prompt},20,300\n"));
    }
    let csv = scratch.file("bad rows.csv", &csv);
    let rows: Vec<Value> = (1..=300)
        .map(|i| {
            serde_json::json!({
                "id": format!("j{i}"),
                "ts": 1_793_000_000_000_i64 + i,
                "model": "gpt-4o-mini",
                "workload": "batch",
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "latency_ms": if i == 250 { -5 } else { 40 },
            })
        })
        .collect();
    let array = scratch.file("export.json", &serde_json::to_string_pretty(&rows).unwrap());
    let other = scratch.file("usage.txt", "not a usage file");
    let text = serde_json::to_string(&rows).unwrap();
    let truncated = scratch.file("cut short.json", &text[..text.len() - 40]);
    let mismatched = scratch.file("mismatched.json", &format!("{}}}", &text[..text.len() - 1]));

    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "frank").await;
    let status = upload_file(page, &csv).await;
    assert_eq!(
        status,
        "Upload failed: 2 rows are invalid and nothing was stored: fix them, or tick \
         \"Keep the valid rows\"."
    );
    assert_eq!(
        texts_of(page, "#upload-errors tbody td").await,
        [
            "3",
            "ts",
            "must be epoch milliseconds or RFC 3339, got \"yesterday\"",
            "150",
            "prompt_tokens",
            "must be a whole number, got \"lots\"",
        ]
    );
    assert_eq!(server.stored_requests("frank").await, 0, "nothing stored");
    browser.screenshot("upload-errors").await;

    click(page, "#usage-partial").await;
    let status = upload_file(page, &csv).await;
    assert_eq!(status, "Stored 198 records from bad rows.csv; 2 refused.");
    assert_eq!(
        texts_of(page, "#upload-errors tbody td:first-child").await,
        ["3", "150"]
    );
    assert_eq!(server.stored_requests("frank").await, 198);

    let status = upload_file(page, &array).await;
    assert!(
        status.starts_with("Upload failed: 1 row is invalid"),
        "{status}"
    );
    assert_eq!(
        texts_of(page, "#upload-errors tbody td:nth-child(-n+2)").await,
        ["250", "latency_ms"]
    );
    assert_eq!(
        server.stored_requests("frank").await,
        198,
        "nothing more stored"
    );

    // A JSON array cut short: refused, not stored up to the cut.
    let status = upload_file(page, &truncated).await;
    assert_eq!(
        status,
        format!(
            "Upload failed: not a JSON array at byte {}: the file ends inside it.",
            text.len() - 40
        )
    );
    assert_eq!(
        server.stored_requests("frank").await,
        198,
        "nothing more stored"
    );
    // Its last bracket the wrong kind: refused too, even when valid rows are to be kept
    // (nothing before the damage is stored).
    open_usage_panel(page).await;
    click(page, "#usage-partial").await;
    let status = upload_file(page, &mismatched).await;
    assert_eq!(
        status,
        format!(
            "Upload failed: not a JSON array at byte {}: a bracket closed by the wrong kind.",
            text.len() - 1
        )
    );
    assert_eq!(
        server.stored_requests("frank").await,
        198,
        "nothing more stored"
    );
    click(page, "#usage-partial").await;

    let status = upload_file(page, &other).await;
    assert_eq!(
        status,
        "Upload failed: usage.txt: name it .ndjson, .jsonl, .csv or .json."
    );
    // The refusals' 413/422 answers are not among them: every part was within the limit, and
    // checks answer 200.
    browser.stop_clean().await;
}

/// An upload that stops part-way goes on where it stopped: a lost answer is sent again under
/// its key and stored once; a part over the user's record quota stops the upload, and once
/// there is room (the server restarted with a larger quota) the same file uploaded again
/// stores only what was missing. The rows have no ids, so a part stored twice would show.
#[actix_web::test]
async fn an_upload_stopped_part_way_goes_on_where_it_stopped() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let small = [
        ("ENCLAVE_MAX_UPLOAD_BYTES", "4096"),
        ("ENCLAVE_MAX_RECORDS_PER_USER", "150"),
        ("ENCLAVE_FAULTS", "bulk:lose_answer:1"),
    ];
    let server = Server::start_with(&small).await;
    let scratch = TempDir::new();
    let mut rows = String::new();
    for i in 0..200_i64 {
        let row = serde_json::json!({
            "ts": 1_793_000_000_000_i64 + i,
            "model": "gpt-4o-mini",
            "workload": "resume",
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "latency_ms": 40,
        });
        rows.push_str(&format!("{row}\n"));
    }
    let file = scratch.file("no ids.ndjson", &rows);
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "judy").await;

    let status = upload_file(page, &file).await;
    assert!(status.starts_with("Upload failed: "), "{status}");
    assert!(
        status.ends_with("records were stored before this; upload the same file again to go on."),
        "{status}"
    );
    let held = server.stored_requests("judy").await;
    assert!(
        (100..=150).contains(&held),
        "{held}: the parts before the quota, once each"
    );
    assert!(
        status.contains(&format!(" {held} records were stored")),
        "{status}"
    );

    let server = server
        .kill_and_restart(&[("ENCLAVE_MAX_UPLOAD_BYTES", "4096")])
        .await;
    wait_for_text(page, "#connection", "connected as judy").await;
    let status = upload_file(page, &file).await;
    assert_eq!(
        status,
        "Stored 200 records from no ids.ndjson (going on from the earlier upload of this file)."
    );
    assert_eq!(server.stored_requests("judy").await, 200, "every row once");
    // The lost answer's 500 and the quota's 403 are logged by the browser as failed requests.
    browser
        .stop_clean_but(|e| e.contains("/api/usage?") && (e.contains("500") || e.contains("403")))
        .await;
}

/// Provider and gateway exports (`tests/samples/`, each with malformed rows) uploaded from the
/// page with "keep the valid rows", their layout recognised from the file, cut into several
/// uploads where they are bigger than the 1 KiB limit: each stores what one whole upload of
/// the file stores, and lists the same refused rows; an OTLP document over the limit, which
/// cannot be cut, is refused saying so.
#[actix_web::test]
async fn provider_exports_upload_as_one_upload_would() {
    let Some(_turn) = browser_turn().await else {
        return;
    };
    let server = Server::start_with(&[("ENCLAVE_MAX_UPLOAD_BYTES", "1024")]).await;
    let browser = Browser::start().await;
    let page = &browser.client;
    sign_in(page, &server, "kim").await;
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples");
    let mut cut = 0;
    for (name, content_type) in [
        ("openai.ndjson", "application/x-ndjson"),
        ("litellm.csv", "text/csv"),
        ("litellm.json", "application/json"),
        ("helicone.csv", "text/csv"),
        ("langfuse.csv", "text/csv"),
    ] {
        let path = samples.join(name);
        let body = std::fs::read_to_string(&path).unwrap();
        if body.len() > 1024 {
            cut += 1;
        }
        // The same file in one upload (another user, a server whose limit takes it whole).
        let whole = Server::start().await;
        let answer = whole
            .upload_as("lee", "?partial=true", content_type, body)
            .await;
        let accepted = answer["accepted"].as_u64().unwrap();
        let rejected = answer["rejected"].as_u64().unwrap();
        assert!(accepted > 0 && rejected > 0, "{name}: {answer}");

        open_usage_panel(page).await;
        click(page, "#usage-partial").await;
        let status = upload_file(page, &path).await;
        assert_eq!(
            status,
            format!(
                "Stored {accepted} records from {name} (read as a {} export); {rejected} refused.",
                answer["format"].as_str().unwrap()
            )
        );
        let rows: Vec<String> = answer["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["row"].to_string())
            .collect();
        assert_eq!(
            texts_of(page, "#upload-errors tbody td:first-child").await,
            rows,
            "{name}"
        );
    }
    assert!(cut >= 1, "at least one sample is cut into several uploads");

    let status = upload_file(page, &samples.join("otel.json")).await;
    assert!(
        status
            == "Upload failed: otel.json is one JSON document of 2.8 kB, over the upload limit \
                (1.0 kB), and cannot be cut.",
        "{status}"
    );
    browser.stop_clean().await;
}
