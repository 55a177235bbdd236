//! Report content (issue 9, point 5): the usage table always present, each "why not" worded as
//! its true reason, user strings escaped in the markdown.
//!
//! Records are uploaded with `POST /api/usage`, the question is asked over a WebSocket and
//! `run_completed.data` is read; amounts are worked out by hand with the built-in catalog
//! (prices per million tokens).

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

const ASK: &str = "cut my LLM costs by 30% without hurting p95 latency";

/// A record as the upload takes it, one minute apart from `ts`.
fn rec(i: i64, model: &str, workload: &str, prompt: i64, completion: i64) -> Value {
    json!({
        "ts": 1_793_000_000_000_i64 + i * 60_000,
        "model": model,
        "workload": workload,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "latency_ms": 100,
    })
}

fn ndjson(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

/// Uploads `records` for `user`, asks `question` and returns the run's `run_completed` data.
async fn ask(app: &TestApp, user: &str, records: &[Value], question: &str) -> Value {
    if !records.is_empty() {
        let (status, answer, _) =
            upload(app, user, "application/x-ndjson", "", ndjson(records)).await;
        assert_eq!(
            (status, answer["accepted"].clone()),
            (200, json!(records.len()))
        );
    }
    let mut socket = app.ws(user).await;
    socket.recv().await;
    socket.say(question).await;
    let frames = socket.recv_runs(1).await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed", "{end}");
    end["data"].clone()
}

/// `md` with its backslash escapes read as CommonMark reads them, and the `|`, `<`, `>`, `&`
/// and backticks left unescaped.
fn read_escapes(md: &str) -> (String, String) {
    let (mut text, mut raw) = (String::new(), String::new());
    let mut chars = md.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) if next.is_ascii_punctuation() => text.push(next),
                Some(next) => text.extend(['\\', next]),
                None => text.push('\\'),
            },
            '|' | '<' | '>' | '`' | '&' => {
                raw.push(c);
                text.push(c);
            }
            _ => text.push(c),
        }
    }
    (text, raw)
}

/// The table rows (header and separator included) of the section `## title`.
fn table_rows<'a>(md: &'a str, title: &str) -> Vec<&'a str> {
    let start = md
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no section {title}: {md}"));
    md[start + 1..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with('|'))
        .collect()
}

/// The unescaped `|` of a row: its column separators.
fn pipes(row: &str) -> usize {
    read_escapes(row).1.matches('|').count()
}

/// 50 `gemini-1.5-pro` requests of 1,000 prompt + 200 completion tokens, every other one
/// non-interactive, latencies 10, 20, …, 500 ms. Each costs 1,000 × 1.25 + 200 × 5.00 =
/// 2,250 per million, $0.00225; all 50 $0.1125. Nearest rank over 50: p50 the 25th (250),
/// p95 the 48th (480), p99 the 50th (500).
fn half_batchable_gemini() -> Vec<Value> {
    (0..50)
        .map(|i| {
            let mut r = rec(i, "gemini-1.5-pro", "summaries", 1_000, 200);
            r["interactive"] = json!(i % 2 == 0);
            r["latency_ms"] = json!(10 * (i + 1));
            r
        })
        .collect()
}

async fn nothing_applies_shows_the_usage_and_the_true_reasons(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let data = ask(&app, "alice", &half_batchable_gemini(), ASK).await;
    assert_eq!(data["result"]["recommendations"], json!([]));
    // The catalog has no batch discount (nor cached price) for gemini-1.5-pro: that is the
    // reason given, not missing non-interactive traffic (25 of the 50 are).
    assert_eq!(
        data["summary"],
        "Your 50 requests cost $0.11 over 1 day. No optimisation applies to gemini-1.5-pro on \
         summaries: model substitution — the p95 of completion tokens is 200, over the \
         threshold of 50; prompt caching — the catalog has no cached-input price for \
         gemini-1.5-pro; batching — the catalog has no batch discount for gemini-1.5-pro; \
         max_tokens tuning — no request sets max_tokens; retry waste — no request failed."
    );
    let md = data["report_markdown"].as_str().unwrap();
    assert!(!md.contains("marked non-interactive"), "{md}");
    assert_eq!(
        table_rows(md, "Usage analysed"),
        [
            "| model | workload | requests | prompt tokens | completion tokens | spend | p50 ms | p95 ms | p99 ms | error rate |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            "| gemini-1.5-pro | summaries | 50 | 50000 | 10000 | $0.11 | 250 | 480 | 500 | 0.0% |",
        ]
    );
    assert_eq!(
        table_rows(md, "Why not"),
        [
            "| model | workload | change | why not |",
            "|---|---|---|---|",
            "| gemini-1.5-pro | summaries | model substitution | the p95 of completion tokens is 200, over the threshold of 50 |",
            "| gemini-1.5-pro | summaries | prompt caching | the catalog has no cached-input price for gemini-1.5-pro |",
            "| gemini-1.5-pro | summaries | batching | the catalog has no batch discount for gemini-1.5-pro |",
            r"| gemini-1.5-pro | summaries | max\_tokens tuning | no request sets max\_tokens |",
            "| gemini-1.5-pro | summaries | retry waste | no request failed |",
        ]
    );
    assert!(!md.contains("-0.00"), "{md}");
    app.stop().await;
}
on_both_backends!(nothing_applies_shows_the_usage_and_the_true_reasons);

async fn each_reason_is_worded_as_what_it_is(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    // gpt-4o "chat": 20 interactive requests of 1,000 + 200 tokens, all capped at 300, four
    // sharing a prompt prefix, none failed; each 1,000 × 2.50 + 200 × 10.00 = 4,500 per
    // million, $0.09 in all. "homegrown-llm": not in the catalog.
    let mut records: Vec<Value> = (0..20)
        .map(|i| {
            let mut r = rec(i, "gpt-4o", "chat", 1_000, 200);
            r["max_tokens"] = json!(300);
            if i < 4 {
                r["prompt_prefix_hash"] = json!("system-v1");
            }
            r
        })
        .collect();
    records.extend((20..23).map(|i| rec(i, "homegrown-llm", "chat", 500, 50)));
    let data = ask(&app, "bob", &records, ASK).await;
    assert_eq!(data["result"]["recommendations"], json!([]));
    assert_eq!(
        data["summary"],
        "Your 23 requests cost $0.09 plus 3 unpriced requests over 1 day. No optimisation is \
         supported by this data; the report says why for each of the 2 model and workload \
         groups."
    );
    let md = data["report_markdown"].as_str().unwrap();
    assert_eq!(
        table_rows(md, "Usage analysed")[2..],
        [
            "| gpt-4o | chat | 20 | 20000 | 4000 | $0.09 | 100 | 100 | 100 | 0.0% |",
            "| homegrown-llm | chat | 3 | 1500 | 150 | unpriced | 100 | 100 | 100 | 0.0% |",
        ]
    );
    assert_eq!(
        table_rows(md, "Why not")[2..],
        [
            // under a threshold
            "| gpt-4o | chat | model substitution | the p95 of completion tokens is 200, over the threshold of 50 |",
            "| gpt-4o | chat | prompt caching | the most used prompt prefix occurs 4 times, under the threshold of 10 |",
            // no data for the rule
            "| gpt-4o | chat | batching | no request is marked non-interactive (\"interactive\": false) |",
            r"| gpt-4o | chat | max\_tokens tuning | the largest max\_tokens, 300, is under 4 × the p99 of 200 completion tokens (800) |",
            "| gpt-4o | chat | retry waste | no request failed |",
            // no price
            "| homegrown-llm | chat | every change | no price for homegrown-llm in the catalog (as of 2026-11-01) |",
        ]
    );
    assert!(!md.contains("-0.00"), "{md}");
    app.stop().await;
}
on_both_backends!(each_reason_is_worded_as_what_it_is);

async fn no_data_says_the_window_is_empty_and_how_to_add_data(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let data = ask(&app, "carol", &[], ASK).await;
    let summary = data["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(
            "There is no usage data in the window analysed: you have no usage records yet. \
             Upload your LLM API usage (POST /api/usage"
        ),
        "{summary}"
    );
    assert!(summary.contains("or ask me to generate synthetic data"));
    // Records older than the stated window: the window is what was empty.
    let old = [rec(0, "gpt-4o", "chat", 10, 10)];
    let data = ask(&app, "dave", &old, "analyse my usage over the last 7 days").await;
    assert!(
        data["summary"]
            .as_str()
            .unwrap()
            .starts_with("There is no usage data in the window analysed, the last 7 days."),
        "{}",
        data["summary"]
    );
    app.stop().await;
}
on_both_backends!(no_data_says_the_window_is_empty_and_how_to_add_data);

const SCRIPT: &str = "<script>alert(1)</script>";
const FORMULA: &str = "=cmd|' /C calc'!A0";
const TICKS: &str = "`rm -rf /`";

async fn user_strings_render_as_their_literal_text(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut records = Vec::new();
    for i in 0..2 {
        records.push(rec(i, SCRIPT, "a|b", 100, 10));
        records.push(rec(10 + i, TICKS, FORMULA, 100, 10));
        // Priced and non-interactive: a batching recommendation and a plan step name it.
        let mut r = rec(20 + i, "gpt-4o", FORMULA, 1_000, 200);
        r["interactive"] = json!(false);
        records.push(r);
    }
    let data = ask(&app, "erin", &records, ASK).await;
    let md = data["report_markdown"].as_str().unwrap();
    for escaped in [
        r"\<script\>alert(1)\</script\>",
        r"a\|b",
        r"\=cmd\|' /C calc'\!A0",
        r"\`rm -rf /\`",
    ] {
        assert!(md.contains(escaped), "{escaped} in {md}");
    }
    // Read back, the names are there as they were given…
    let (text, raw) = read_escapes(md);
    for name in [SCRIPT, "a|b", FORMULA, TICKS] {
        assert!(text.contains(name), "{name}");
    }
    // …and nothing of them is markdown: no raw HTML, code or formula cell, and every table
    // row has exactly its columns.
    assert!(!raw.contains(['<', '>', '`', '&']), "{raw}");
    assert!(!md.contains("| =cmd"), "{md}");
    let usage = table_rows(md, "Usage analysed");
    assert_eq!(usage.len(), 2 + 3);
    assert!(usage.iter().all(|r| pipes(r) == 11), "{usage:?}");
    let recs = table_rows(md, "Recommendations");
    assert!(recs.len() > 2, "{md}");
    assert!(recs.iter().all(|r| pipes(r) == 12), "{recs:?}");
    assert!(
        recs[2..]
            .iter()
            .all(|r| r.contains(r"| \=cmd\|' /C calc'\!A0 |"))
    );
    let why = table_rows(md, "Why not");
    assert!(why.len() > 2, "{md}");
    assert!(why.iter().all(|r| pipes(r) == 5), "{why:?}");
    assert!(md.contains(&format!(
        "| {} | a\\|b | every change | no price for {} in the catalog (as of 2026-11-01) |",
        r"\<script\>alert(1)\</script\>", r"\<script\>alert(1)\</script\>"
    )));
    // Inside a sentence `=` starts nothing; `|` and `!` are still escaped.
    assert!(
        md.contains(r"gpt-4o requests of =cmd\|' /C calc'\!A0 through the batch API"),
        "{md}"
    );
    assert!(!md.contains("-0.00"), "{md}");
    // The result keeps the names as they are: escaping is for the markdown only.
    assert!(
        data["result"]["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["workload"] == FORMULA)
    );

    // The usage report escapes the same way.
    let data = ask(&app, "erin", &[], "analyse my usage").await;
    let md = data["report_markdown"].as_str().unwrap();
    let (_, raw) = read_escapes(md);
    assert!(!raw.contains(['<', '>', '`', '&']), "{md}");
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 2 + 3, "{md}");
    assert!(rows.iter().all(|r| pipes(r) == 11), "{rows:?}");
    assert!(rows.iter().any(|r| r.starts_with(&format!(
        "| {} | a\\|b | 2 | 200 | 20 | unpriced |",
        r"\<script\>alert(1)\</script\>"
    ))));
    assert_eq!(
        data["result"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["model"] == SCRIPT && g["workload"] == "a|b")
            .count(),
        1
    );
    app.stop().await;
}
on_both_backends!(user_strings_render_as_their_literal_text);

/// `GET /api/reports/{run_id}.html` (issue 13): the report as sanitised HTML — markup in model
/// and workload names arrives as text, no script, handler or `javascript:` link survives, the
/// tables are tables — served so nothing in it can run if opened alone; another user's run and
/// an unknown id are `not_found`.
async fn the_html_report_shows_markup_from_data_as_text(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let img = "<img src=x onerror=alert(1)>";
    let link = "[x](javascript:alert(1))";
    let records = vec![
        rec(0, SCRIPT, img, 100, 10),
        rec(1, "gpt-4o", link, 1_000, 200),
        rec(2, "gpt-4o", link, 1_000, 200),
    ];
    let (status, _, _) = upload(&app, "erin", "application/x-ndjson", "", ndjson(&records)).await;
    assert_eq!(status, 200);
    let mut socket = app.ws("erin").await;
    socket.recv().await;
    socket.say(ASK).await;
    let frames = socket.recv_runs(1).await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed", "{end}");
    let run_id = end["run_id"].as_str().unwrap().to_owned();
    let mut resp = awc::Client::default()
        .get(app.http(&format!("/api/reports/{run_id}.html")))
        .insert_header(("Authorization", format!("Bearer {}", app.token("erin"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(header("content-type").starts_with("text/html"));
    assert!(header("content-security-policy").contains("default-src 'none'"));
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let html = String::from_utf8(resp.body().limit(16 << 20).await.unwrap().to_vec()).unwrap();
    assert!(html.contains("<table>") && html.contains("<h2>"), "{html}");
    for text in [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "[x](javascript:alert(1))",
    ] {
        assert!(html.contains(text), "{text} as text in {html}");
    }
    let lower = html.to_ascii_lowercase();
    for banned in ["<script", "<img", "href=\"javascript", "style="] {
        assert!(!lower.contains(banned), "{banned} in {html}");
    }
    for (user, id) in [("mallory", run_id.as_str()), ("erin", "no-such-run")] {
        let (status, body) = app
            .get(&format!("/api/reports/{id}.html"), Some(&app.token(user)))
            .await;
        assert_eq!(status, 404, "{user} {id}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    app.stop().await;
}
on_both_backends!(the_html_report_shows_markup_from_data_as_text);
