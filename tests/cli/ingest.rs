//! `enclave ingest` of files over the server's upload limit (issue 12): sent in several
//! uploads (NDJSON, CSV, JSON array), checked whole before anything is sent, each upload
//! stored once even when its answer is lost, and an ingest killed mid-way resumed by running
//! the same command again, storing nothing twice (rows without ids, so a row sent twice would
//! be counted twice).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::{Serve, enclave};

const SECRET: &str = "ingest-secret-ingest-secret-ingest-0";

/// The server's upload limit in these tests; every file here is larger.
const LIMIT: &str = "65536";

/// `n` NDJSON records without ids, a day apart by the millisecond.
fn ndjson_rows(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"ts\":{},\"model\":\"gpt-4o\",\"workload\":\"chat\",\"prompt_tokens\":{},\"completion_tokens\":12,\"latency_ms\":340}}\n",
                1_793_527_200_000_i64 + i as i64,
                100 + i
            )
        })
        .collect()
}

fn ingest(server: &Serve, file: &Path, extra: &[&str]) -> Output {
    enclave()
        .arg("ingest")
        .arg(file)
        .args([
            "--user",
            "alice",
            "--url",
            &server.url,
            "--part-bytes",
            "20000",
        ])
        .args(extra)
        .env("ENCLAVE_JWT_SECRET", SECRET)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Asserts the ingest succeeded; what it printed.
fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(out)
}

/// Asserts the ingest succeeded and its summary starts with `summary`.
fn assert_ingested(out: &Output, summary: &str) {
    let said = succeeded(out);
    assert!(said.starts_with(summary), "{said}");
}

/// `GET path` of the server as alice, over a plain socket.
fn get(server: &Serve, path: &str) -> Value {
    get_signed(server, SECRET, path)
}

/// `GET path` of the server as alice, with a token signed with `secret`.
pub(crate) fn get_signed(server: &Serve, secret: &str, path: &str) -> Value {
    let token = enclave::auth::Auth::new(secret.as_bytes())
        .issue(
            &enclave::context::UserId::parse("alice").unwrap(),
            std::time::Duration::from_secs(600),
        )
        .unwrap();
    let address = server.url.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).unwrap();
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}

fn stored(server: &Serve) -> u64 {
    get(server, "/api/usage/summary")["totals"]["requests"]
        .as_u64()
        .unwrap()
}

fn limited_server(faults: &str) -> Serve {
    Serve::start_with_env(
        Some(SECRET),
        &["--bind", "127.0.0.1:0"],
        &[
            ("ENCLAVE_MAX_UPLOAD_BYTES", LIMIT),
            ("ENCLAVE_FAULTS", faults),
            // Chunks of 100 records whatever they take (the time target is a second).
            ("ENCLAVE_BULK_CHUNK", "100"),
            ("ENCLAVE_BULK_CHUNK_MS", "1000"),
        ],
    )
}

fn write(server: &Serve, name: &str, text: &str) -> PathBuf {
    let path = server.dir.join(name);
    std::fs::write(&path, text).unwrap();
    assert!(text.len() > 65_536, "{name} is over the server's limit");
    path
}

#[test]
fn a_file_over_the_limit_goes_in_several_uploads() {
    let server = limited_server("");
    let rows = 1_500;
    let file = write(&server, "big.ndjson", &ndjson_rows(rows));
    let out = ingest(&server, &file, &[]);
    let said = succeeded(&out);
    assert!(
        said.starts_with("accepted 1500, rejected 0, duplicates 0 ("),
        "{said}"
    );
    let uploads: u64 = said
        .split('(')
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(uploads >= 8, "{said}");
    assert_eq!(stored(&server), 1_500);
    assert!(
        !server.dir.join("big.ndjson.enclave-ingest").exists(),
        "checkpoint removed"
    );

    // The same rows as CSV (quoted cells, a header per upload) and as one JSON array.
    let mut csv = String::from("ts,model,workload,prompt_tokens,completion_tokens,latency_ms\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "{},\"gpt-4o\",\"chat, long\",{},12,340\n",
            1_790_000_000_000_i64 + i as i64,
            100 + i
        ));
    }
    let file = write(&server, "big.csv", &csv);
    let out = ingest(&server, &file, &[]);
    assert_ingested(&out, "accepted 1500, rejected 0");
    let array = format!(
        "[\n{}\n]",
        ndjson_rows(rows).trim_end().replace('\n', ",\n")
    );
    let file = write(&server, "big.json", &array);
    let out = ingest(&server, &file, &[]);
    assert_ingested(&out, "accepted 1500, rejected 0");
    assert_eq!(stored(&server), 4_500);
    let summary = get(&server, "/api/usage/summary");
    let workloads: Vec<&str> = summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["workload"].as_str().unwrap())
        .collect();
    assert!(workloads.contains(&"chat, long"), "{summary}");
}

#[test]
fn an_invalid_row_anywhere_stops_the_file_before_anything_is_sent() {
    let server = limited_server("");
    let mut text = ndjson_rows(1_500);
    text.push_str("{\"ts\":1793527200000,\"model\":\"gpt-4o\",\"prompt_tokens\":-1,\"completion_tokens\":1,\"latency_ms\":1}\n");
    text.push_str(&ndjson_rows(10));
    let file = write(&server, "bad.ndjson", &text);
    let out = ingest(&server, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("row 1501, prompt_tokens"), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert_eq!(stored(&server), 0);

    // With --partial the rest goes in, and the bad row is named by its place in the file.
    let out = ingest(&server, &file, &["--partial"]);
    assert_ingested(&out, "accepted 1510, rejected 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("row 1501, prompt_tokens"), "{stderr}");
    assert_eq!(stored(&server), 1_510);
}

#[test]
fn an_upload_whose_answer_is_lost_is_stored_once() {
    let server = limited_server("bulk:lose_answer:2");
    let file = write(&server, "lossy.ndjson", &ndjson_rows(1_500));
    let out = ingest(&server, &file, &[]);
    let said = succeeded(&out);
    assert!(
        said.starts_with("accepted 1500, rejected 0, duplicates 0"),
        "{said}"
    );
    assert!(said.contains("2 already stored"), "{said}");
    assert_eq!(stored(&server), 1_500);
}

#[test]
fn an_interrupted_ingest_resumes_and_stores_nothing_twice() {
    // Slow chunks, so the ingest is killed with uploads still to send.
    let server = limited_server("bulk:slow_chunk:100");
    let rows = 3_000;
    let file = write(&server, "long.ndjson", &ndjson_rows(rows));
    let checkpoint = server.dir.join("long.ndjson.enclave-ingest");
    let mut first = enclave()
        .arg("ingest")
        .arg(&file)
        .args([
            "--user",
            "alice",
            "--url",
            &server.url,
            "--part-bytes",
            "20000",
        ])
        .env("ENCLAVE_JWT_SECRET", SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the server has acknowledged an upload (the checkpoint says so).
    let rows_done = |path: &Path| -> u64 {
        std::fs::read(path)
            .ok()
            .and_then(|text| serde_json::from_slice::<Value>(&text).ok())
            .and_then(|c| c["rows_done"].as_u64())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while rows_done(&checkpoint) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no upload acknowledged"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the ingest ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let acknowledged = rows_done(&checkpoint);
    assert!(
        acknowledged > 0 && acknowledged < rows as u64,
        "{acknowledged}"
    );

    let out = ingest(&server, &file, &[]);
    let said = succeeded(&out);
    assert!(said.contains("resumed after row"), "{said}");
    assert_eq!(stored(&server), rows as u64, "{said}");
    assert!(!checkpoint.exists());

    // --restart sends it all again (no ids here, so stored twice: the user asked for it).
    let out = ingest(&server, &file, &["--restart"]);
    assert!(out.status.success());
    assert!(!stdout(&out).contains("resumed"), "{}", stdout(&out));
    assert_eq!(stored(&server), 2 * rows as u64);
}

#[test]
fn an_export_is_ingested_with_its_format() {
    let server = Serve::start(Some(SECRET));
    let samples = format!("{}/tests/samples", env!("CARGO_MANIFEST_DIR"));
    // An OTLP JSON document goes whole; without --partial its bad span stops it unsent.
    let otel = PathBuf::from(format!("{samples}/otel.json"));
    let checkpoint = server.dir.join("otel.checkpoint");
    let with = |extra: &[&str]| {
        let mut args = vec![
            "--format",
            "otel",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ingest(&server, &otel, &args)
    };
    let out = with(&[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("row 5, model"), "{stderr}");
    let out = with(&["--partial"]);
    assert_ingested(&out, "accepted 2, rejected 1");
    // A CSV export is recognised without --format.
    let langfuse = PathBuf::from(format!("{samples}/langfuse.csv"));
    let lf_checkpoint = server.dir.join("lf.checkpoint");
    let out = ingest(
        &server,
        &langfuse,
        &["--partial", "--checkpoint", lf_checkpoint.to_str().unwrap()],
    );
    assert_ingested(&out, "accepted 2, rejected 1");
    assert_eq!(stored(&server), 4);
}
