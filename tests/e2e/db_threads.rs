//! The database threads survive the work they run (issue 14): a read that panics is answered
//! `internal` (no internals in the message, an id to find the log line by) and its thread
//! goes on serving; `/readyz` asks the writers too.

use crate::helpers::*;
use crate::on_both_backends;

async fn a_read_that_panics_leaves_its_thread_serving(db: TestDb) {
    let mut config = test_config(&db);
    // One reader thread: if the panic took it, no read would be answered again.
    config.db_reader_threads = 1;
    // No sweep in the background to take the panic meant for the request.
    config.housekeeping_interval = std::time::Duration::from_secs(3600);
    let app = TestApp::spawn_with(config).await;
    let token = app.token("alice");
    let (status, _) = app.get("/api/threads", Some(&token)).await;
    assert_eq!(status, 200, "alice's session is up");
    app.faults.panic_next_reads(1);
    let (status, body) = app.get("/api/threads", Some(&token)).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("panic") && !message.contains("injected"),
        "{message}"
    );
    assert!(body["error"]["id"].is_string(), "{body}");
    assert_eq!(
        metric(&app, "db_panics_total{thread=\"reader\"}").await,
        1.0
    );
    for _ in 0..3 {
        let (status, body) = app.get("/api/threads", Some(&token)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &serde_json::json!("ready"))
    );
    app.stop().await;
}
on_both_backends!(a_read_that_panics_leaves_its_thread_serving);
