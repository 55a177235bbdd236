//! Provider and gateway exports read as they are (issue 12): each sample under
//! `tests/samples/` — written in its exporter's documented layout, with malformed rows and
//! columns enclave does not read — maps its rows, reports the bad ones by the export's field
//! names, lists the fields used and ignored, is recognised without `format=`, and stores
//! nothing twice when imported again.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

fn sample(name: &str) -> String {
    let path = format!("{}/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// (file, content type, format, accepted, rejected, (row, field) errors, a field ignored,
/// prompt tokens stored).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    u64,
    u64,
    &'static [(u64, &'static str)],
    &'static str,
    u64,
);

const CASES: [Case; 6] = [
    (
        "openai.ndjson",
        "application/x-ndjson",
        "openai",
        4,
        2,
        &[(5, "created"), (6, "")],
        "system_fingerprint",
        2_700,
    ),
    (
        "litellm.csv",
        "text/csv",
        "litellm",
        2,
        1,
        &[(3, "prompt_tokens")],
        "api_key",
        1_500,
    ),
    (
        "litellm.json",
        "application/json",
        "litellm",
        1,
        1,
        &[(2, "startTime"), (2, "latency_ms")],
        "session_id",
        500,
    ),
    (
        "helicone.csv",
        "text/csv",
        "helicone",
        2,
        1,
        &[(3, "latency")],
        "country_code",
        2_100,
    ),
    (
        "langfuse.csv",
        "text/csv",
        "langfuse",
        2,
        1,
        &[(4, "model")],
        "modelParameters",
        3_000,
    ),
    (
        "otel.json",
        "application/json",
        "otel",
        2,
        1,
        // Span 2 (an agent's turn) and span 3 (no gen_ai.*) are not records.
        &[(5, "model"), (5, "completion_tokens")],
        "http.url",
        2_520,
    ),
];

async fn prompt_tokens(app: &TestApp, user: &str) -> u64 {
    let (_, summary) = app.get("/api/usage/summary", Some(&app.token(user))).await;
    summary["totals"]["prompt_tokens"].as_u64().unwrap()
}

async fn every_sample_export_is_read_as_it_is(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    for (file, content_type, format, accepted, rejected, errors, ignored, prompt) in CASES {
        let user = format.to_owned() + if file.ends_with(".json") { "-json" } else { "" };
        let body = sample(file);
        // All or nothing by default: the bad rows are named, nothing is stored.
        let query = format!("?format={format}");
        let (status, answer, _) = upload(&app, &user, content_type, &query, body.clone()).await;
        assert_eq!(status, 422, "{file}: {answer}");
        let named: Vec<(u64, String)> = answer["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["row"].as_u64().unwrap(),
                    d["field"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected: Vec<(u64, String)> =
            errors.iter().map(|(r, f)| (*r, (*f).to_owned())).collect();
        assert_eq!(named, expected, "{file}: {answer}");
        assert_eq!(prompt_tokens(&app, &user).await, 0, "{file}");

        // Recognised without format=, valid rows kept.
        let (status, answer, _) =
            upload(&app, &user, content_type, "?partial=true", body.clone()).await;
        assert_eq!(status, 200, "{file}: {answer}");
        assert_eq!(answer["format"], format, "{file}: {answer}");
        assert_eq!(
            (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
            (Some(accepted), Some(rejected)),
            "{file}: {answer}"
        );
        let listed = |key: &str| -> Vec<String> {
            answer[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect()
        };
        assert!(
            listed("fields_ignored").contains(&ignored.to_owned()),
            "{file}: {answer}"
        );
        assert!(!listed("fields_used").is_empty(), "{file}: {answer}");
        assert!(
            listed("fields_used")
                .iter()
                .all(|u| !listed("fields_ignored").contains(u)),
            "{file}: {answer}"
        );
        assert_eq!(prompt_tokens(&app, &user).await, prompt, "{file}");

        // Imported again: every record is a duplicate, nothing more is stored.
        let (status, answer, _) = upload(
            &app,
            &user,
            content_type,
            &format!("{query}&partial=true"),
            body,
        )
        .await;
        assert_eq!(status, 200, "{file}: {answer}");
        assert_eq!(answer["accepted"], 0, "{file}: {answer}");
        assert_eq!(
            answer["duplicates"].as_u64(),
            Some(accepted),
            "{file}: {answer}"
        );
        assert_eq!(prompt_tokens(&app, &user).await, prompt, "{file}");
    }
    app.stop().await;
}
on_both_backends!(every_sample_export_is_read_as_it_is);

async fn exports_map_to_the_records_they_describe(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let cases = [
        ("otel.json", "application/json", "otel"),
        ("langfuse.csv", "text/csv", "langfuse"),
        ("litellm.csv", "text/csv", "litellm"),
    ];
    for (file, content_type, user) in cases {
        let (status, _, _) = upload(&app, user, content_type, "?partial=true", sample(file)).await;
        assert_eq!(status, 200);
    }
    let groups = |summary: &Value| -> Vec<(String, String, u64, u64)> {
        let mut groups: Vec<_> = summary["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["model"].as_str().unwrap().to_owned(),
                    g["workload"].as_str().unwrap().to_owned(),
                    g["requests"].as_u64().unwrap(),
                    g["prompt_tokens"].as_u64().unwrap(),
                )
            })
            .collect();
        groups.sort();
        groups
    };
    let (_, otel) = app
        .get("/api/usage/summary", Some(&app.token("otel")))
        .await;
    assert_eq!(
        groups(&otel),
        [
            (
                "gpt-4o-2024-08-06".into(),
                "checkout-assistant".into(),
                1,
                2_400
            ),
            ("gpt-4o-mini".into(), "checkout-assistant".into(), 1, 120),
        ],
        "{otel}"
    );
    let (_, langfuse) = app
        .get("/api/usage/summary", Some(&app.token("langfuse")))
        .await;
    assert_eq!(
        groups(&langfuse),
        [("gpt-4o".into(), "summarise-ticket".into(), 2, 3_000)],
        "{langfuse}"
    );
    // The exported cost is the spend: $0.0125 + $0.0004.
    let (_, litellm) = app
        .get("/api/usage/summary", Some(&app.token("litellm")))
        .await;
    let spend = litellm["totals"]["spend_usd"].as_f64().unwrap();
    assert!((spend - 0.0129).abs() < 1e-12, "{litellm}");
    assert_eq!(
        groups(&litellm),
        [
            ("claude-3-haiku".into(), "default".into(), 1, 500),
            ("gpt-4o".into(), "support".into(), 1, 1_000),
        ],
        "{litellm}"
    );
    // Helicone's response_status 500 marks its request failed.
    let (status, _, _) = upload(
        &app,
        "helicone",
        "text/csv",
        "?partial=true",
        sample("helicone.csv"),
    )
    .await;
    assert_eq!(status, 200);
    let (_, helicone) = app
        .get("/api/usage/summary", Some(&app.token("helicone")))
        .await;
    let gpt4o = helicone["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["model"] == "gpt-4o")
        .unwrap();
    assert_eq!(gpt4o["error_rate"], 0.5, "{helicone}");
    let (status, answer, _) = upload(
        &app,
        "x",
        "text/csv",
        "?format=splunk",
        sample("helicone.csv"),
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("bad_request"))
    );
    app.stop().await;
}
on_both_backends!(exports_map_to_the_records_they_describe);
