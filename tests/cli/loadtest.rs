//! `enclave loadtest` against a real `enclave serve` (every scenario, briefly, passing with the
//! numbers it must have) and against a fake server that plants a gap, a duplicate and another
//! user's run id (caught, exit 1).

use std::net::{TcpListener, TcpStream};
use std::process::Output;

use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::{Serve, enclave};

/// Runs `enclave loadtest --url URL ARGS --json FILE`; its output and the JSON summary.
fn loadtest(url: &str, secret: Option<&str>, args: &[&str]) -> (Output, Value) {
    let json = std::env::temp_dir().join(format!("enclave-lt-{}.json", uuid::Uuid::new_v4()));
    let mut cmd = enclave();
    cmd.args(["loadtest", "--url", url, "--threads", "2", "--json"])
        .arg(&json)
        .args(args);
    if let Some(secret) = secret {
        cmd.env("ENCLAVE_JWT_SECRET", secret);
    }
    let out = cmd.output().unwrap();
    let summary = std::fs::read(&json)
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_file(&json);
    (out, summary)
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_scenario_loads_a_real_server_and_verifies_clean() {
    let server = Serve::start(Some("lt-secret-lt-secret-lt-secret-lt-0"));
    let ws = server.url.replacen("http", "ws", 1) + "/ws";
    for scenario in ["chat", "burst", "churn"] {
        let (out, summary) = loadtest(
            &ws,
            Some("lt-secret-lt-secret-lt-secret-lt-0"),
            &[
                "--scenario",
                scenario,
                "--users",
                "6",
                "--sockets-per-user",
                "2",
                "--messages",
                "3",
            ],
        );
        assert!(out.status.success(), "{scenario}: {}", text(&out));
        assert_eq!(summary["runs_completed"], 18, "{scenario}: {summary}");
        assert_eq!(summary["runs_timed_out"], 0, "{scenario}: {summary}");
        assert_eq!(summary["violations_found"], 0, "{scenario}: {summary}");
        assert_eq!(summary["run_time_ms"]["count"], 18, "{scenario}: {summary}");
        // Every event reached both of a user's sockets (a churning socket may get a few
        // twice: what it had live when it left, then replayed).
        let events = summary["events"].as_u64().unwrap();
        assert!(events >= 18 * 2 * 4, "{scenario}: {summary}");
        assert!(
            scenario == "churn" || events % 2 == 0,
            "{scenario}: {summary}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("18 completed") && stdout.ends_with("PASSED\n"),
            "{stdout}"
        );
    }
    let (_, churn) = loadtest(
        &ws,
        Some("lt-secret-lt-secret-lt-secret-lt-0"),
        &["--scenario", "churn", "--users", "3", "--messages", "2"],
    );
    // Per run the socket connects to send, and again to resume unless the run had already
    // ended when it left.
    let made = churn["connections_made"].as_u64().unwrap();
    assert!((6..=12).contains(&made), "{churn}");
    assert_eq!(churn["runs_completed"], 6, "{churn}");

    // An open loop: 4 users, 3 messages each, 40 messages a second over all of them.
    let (out, open) = loadtest(
        &ws,
        Some("lt-secret-lt-secret-lt-secret-lt-0"),
        &["--users", "4", "--messages", "3", "--rate", "40"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(open["runs_completed"], 12, "{open}");

    // Five users spread over four worker processes (2, 1, 1, 1), tallied as one test.
    let (out, spread) = loadtest(
        &ws,
        Some("lt-secret-lt-secret-lt-secret-lt-0"),
        &[
            "--users",
            "5",
            "--sockets-per-user",
            "2",
            "--messages",
            "3",
            "--processes",
            "4",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(spread["processes"], 4, "{spread}");
    assert_eq!(spread["runs_completed"], 15, "{spread}");
    assert_eq!(spread["run_time_ms"]["count"], 15, "{spread}");
    assert_eq!(spread["connections_made"], 10, "{spread}");
    assert!(spread["events"].as_u64().unwrap() >= 15 * 2 * 4, "{spread}");

    // One process may open 80 files, 16 for sockets: 24 sockets need two processes.
    let json = std::env::temp_dir().join(format!("enclave-lt-{}.json", uuid::Uuid::new_v4()));
    let out = std::process::Command::new("prlimit")
        .arg("--nofile=80:80")
        .arg(env!("CARGO_BIN_EXE_enclave"))
        .args(["loadtest", "--url", &ws, "--threads", "2", "--users", "6"])
        .args(["--sockets-per-user", "4", "--messages", "1", "--json"])
        .arg(&json)
        .env("ENCLAVE_JWT_SECRET", "lt-secret-lt-secret-lt-secret-lt-0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let auto: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(auto["processes"], 2, "{auto}");
    assert_eq!(auto["runs_completed"], 6, "{auto}");
    assert_eq!(auto["connections_made"], 24, "{auto}");

    let (out, _) = loadtest(
        &ws,
        Some("lt-secret-lt-secret-lt-secret-lt-0"),
        &["--scenario", "idle", "--rate", "5"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--rate applies to --scenario chat only"));

    let pid = server.child.id().to_string();
    let (out, idle) = loadtest(
        &server.url,
        Some("lt-secret-lt-secret-lt-secret-lt-0"),
        &[
            "--scenario",
            "idle",
            "--users",
            "20",
            "--sockets-per-user",
            "2",
            "--duration",
            "1s",
            "--server-pid",
            &pid,
            // From 127.0.0.1, .2 and .3 in turn.
            "--source-addresses",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(idle["connections_made"], 40, "{idle}");
    assert_eq!(idle["sockets_peak"], 40, "{idle}");
    assert!(
        idle["server"]["rss_peak_kib"].as_u64().unwrap() > 0,
        "{idle}"
    );
}

#[test]
fn tokens_come_from_the_dev_endpoint_without_a_secret() {
    let server = Serve::start(None);
    let (out, summary) = loadtest(&server.url, None, &["--users", "3", "--messages", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(summary["runs_completed"], 3, "{summary}");

    // A server with a secret and a client without one: a clear error, exit 2.
    let locked = Serve::start(Some("lt-secret-lt-secret-lt-secret-lt-0"));
    let (out, _) = loadtest(&locked.url, None, &["--users", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--secret"), "{}", text(&out));

    let (out, _) = loadtest(
        "ws://192.0.2.1:9/ws",
        Some("lt-secret-lt-secret-lt-secret-lt-0"),
        &["--source-addresses", "2"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("needs a server on a loopback address"),
        "{}",
        text(&out)
    );

    let (out, _) = loadtest("https://example.com", None, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("TLS is not supported"),
        "{}",
        text(&out)
    );
}

/// A WebSocket server on a free loopback port: it greets each connection with `connected`
/// and hands it to `serve` with its number (from 0).
fn fake_server(serve: fn(usize, &mut FakeSocket)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                let _ = ws.send(Message::text(r#"{"type":"connected","last_seq":0}"#));
                serve(n, &mut ws);
            });
        }
    });
    format!("ws://{addr}/ws")
}

/// A fake server's side of a connection.
type FakeSocket = tungstenite::WebSocket<TcpStream>;

/// The `client_msg_id` of the next `user_message` the client sends; `None` once it is gone.
fn next_message(ws: &mut FakeSocket) -> Option<Value> {
    while let Ok(message) = ws.read() {
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "user_message" {
            return Some(frame["client_msg_id"].clone());
        }
    }
    None
}

/// Sends run `run`'s event `kind` at `seq` on `thread`.
fn send_event(ws: &mut FakeSocket, seq: i64, kind: &str, thread: &str, run: &str, data: Value) {
    let event = serde_json::json!({"type": kind, "seq": seq, "ts": 1, "thread_id": thread,
        "run_id": run, "data": data});
    let _ = ws.send(Message::text(event.to_string()));
}

/// Answers every `user_message` with a run whose stream has a repeated `seq` and a missing one,
/// and gives every user the same run id.
fn serve_faults(connection: usize, ws: &mut FakeSocket) {
    let thread = format!("t-{connection}");
    while let Some(msg) = next_message(ws) {
        let accepted = serde_json::json!({ "client_msg_id": msg });
        send_event(
            ws,
            1,
            "message_received",
            &thread,
            "r-shared",
            accepted.clone(),
        );
        send_event(ws, 2, "run_started", &thread, "r-shared", accepted.clone());
        send_event(ws, 2, "run_started", &thread, "r-shared", accepted);
        send_event(
            ws,
            4,
            "run_completed",
            &thread,
            "r-shared",
            serde_json::json!({}),
        );
    }
}

#[test]
fn a_planted_gap_duplicate_and_foreign_id_fail_the_test() {
    let url = fake_server(serve_faults);
    // With two processes the users are in different ones: the foreign id is still caught.
    for processes in ["1", "2"] {
        let (out, summary) = loadtest(
            &url,
            Some("any"),
            &[
                "--users",
                "2",
                "--messages",
                "1",
                "--ramp",
                "0",
                "--processes",
                processes,
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).ends_with("FAILED\n"));
        assert_eq!(summary["processes"].to_string(), processes, "{summary}");
        let kinds: Vec<&str> = summary["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["kind"].as_str().unwrap())
            .collect();
        for (kind, count) in [("duplicate", 2), ("gap", 2), ("foreign", 1)] {
            assert_eq!(
                kinds.iter().filter(|k| **k == kind).count(),
                count,
                "{kind}, {processes} process(es): {summary}"
            );
        }
        assert_eq!(summary["violations_found"], 5, "{summary}");
    }
}

/// Holds every connection open until the client leaves.
fn serve_idle(_: usize, ws: &mut FakeSocket) {
    while ws.read().is_ok() {}
}

/// `enclave loadtest` of 4 idle users over 2 worker processes for 2 minutes against
/// `url`, writing its summary to `json`; the client and its workers' pids, once both workers
/// have started.
fn idle_over_two_workers(url: &str, json: &std::path::Path) -> (std::process::Child, Vec<String>) {
    let mut client = enclave()
        .args(["loadtest", "--url", url, "--scenario", "idle"])
        .args(["--users", "4", "--processes", "2", "--duration", "2m"])
        .arg("--json")
        .arg(json)
        .env("ENCLAVE_JWT_SECRET", "any-secret-any-secret-any-secret-0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let children = format!("/proc/{0}/task/{0}/children", client.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let listed = std::fs::read_to_string(&children).unwrap();
        let pids: Vec<String> = listed.split_whitespace().map(str::to_owned).collect();
        if pids.len() == 2 {
            return (client, pids);
        }
        assert!(client.try_wait().unwrap().is_none(), "the client ended");
        assert!(std::time::Instant::now() < deadline, "no two workers");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped).
fn ended(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_worker_process_that_dies_fails_the_test_and_the_others_stop() {
    let url = fake_server(serve_idle);
    let json = std::env::temp_dir().join(format!("enclave-lt-{}.json", uuid::Uuid::new_v4()));
    let (mut client, workers) = idle_over_two_workers(&url, &json);
    let killed = std::process::Command::new("kill")
        .args(["-9", &workers[0]])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = client.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    // The other worker would idle for two minutes had it not been stopped.
    assert!(
        summary["elapsed_seconds"].as_f64().unwrap() < 100.0,
        "{summary}"
    );
    // The killed worker failed; the one stopped for it is not counted as failing.
    assert_eq!(summary["workers_failed"], 1, "{summary}");
    let errors: Vec<&String> = summary["errors"].as_object().unwrap().keys().collect();
    assert_eq!(errors.len(), 1, "{summary}");
    assert!(
        errors[0].starts_with("worker 0: ended unfinished"),
        "{summary}"
    );
    assert!(ended(&workers[1]), "the surviving worker outlived the test");
}

#[test]
fn workers_stop_when_the_load_client_is_killed() {
    let url = fake_server(serve_idle);
    let json = std::env::temp_dir().join(format!("enclave-lt-{}.json", uuid::Uuid::new_v4()));
    let (mut client, workers) = idle_over_two_workers(&url, &json);
    client.kill().unwrap();
    client.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !workers.iter().all(|pid| ended(pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "workers outlived their load client by a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Drops the first connection as soon as it gets a message, unanswered, then serves a clean
/// run on the next: the client must reconnect and send the message again.
fn serve_after_a_drop(connection: usize, ws: &mut FakeSocket) {
    if connection > 0 {
        // The reconnect asked for a replay (`?after_seq=0`): there is nothing to replay.
        let _ = ws.send(Message::text(r#"{"type":"resumed","through_seq":0}"#));
    }
    while let Some(msg) = next_message(ws) {
        if connection == 0 {
            let close = tungstenite::protocol::CloseFrame {
                code: 4008.into(),
                reason: "too slow".into(),
            };
            let _ = ws.close(Some(close));
            let _ = ws.flush();
            return;
        }
        let accepted = serde_json::json!({ "client_msg_id": msg });
        send_event(ws, 1, "message_received", "t", "r", accepted.clone());
        send_event(ws, 2, "run_started", "t", "r", accepted);
        send_event(ws, 3, "run_completed", "t", "r", serde_json::json!({}));
    }
}

#[test]
fn a_dropped_socket_is_reconnected_and_its_unanswered_message_sent_again() {
    let url = fake_server(serve_after_a_drop);
    let (out, summary) = loadtest(&url, Some("any"), &["--users", "1", "--messages", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(summary["runs_completed"], 1, "{summary}");
    assert_eq!(summary["reconnects"], 1, "{summary}");
    assert_eq!(summary["dropped"]["4008"], 1, "{summary}");
}
