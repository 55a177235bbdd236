//! PostgreSQL becoming unreachable mid-run (cut with a TCP proxy the test controls, so the
//! shared cluster keeps serving other tests): nothing unstored is delivered, `/readyz` says so,
//! the run ends `run_failed` `storage_unavailable` once storage is back, and new runs succeed.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[actix_web::test]
async fn postgres_cut_mid_run_and_restored() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must set ENCLAVE_TEST_PG_URL"
        );
        eprintln!("skipped: ENCLAVE_TEST_PG_URL is not set");
        return;
    };
    let target = db
        .url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    let target: std::net::SocketAddr = target.replace("localhost", "127.0.0.1").parse().unwrap();
    let proxy = TcpProxy::start(target).await;
    let mut config = test_config(&db);
    config.database_url = db.url.replace(&target.to_string(), &proxy.addr.to_string());
    config.db_timeout = Duration::from_millis(500);
    config.store_retries = 1;
    config.faults = "triage:slow:500".into();
    let app = TestApp::spawn_with(config).await;
    assert_eq!(app.get("/readyz", None).await.0, 200);

    let mut socket = app.ws("alice").await;
    socket.recv().await;
    socket.say("analyse my usage").await;
    let mut live = socket.recv_until(|f| f["type"] == "agent_started").await;
    proxy.cut();
    // Triage's next events cannot be stored: wait (polled, bounded) until their batch is lost.
    let mut lost = 0.0;
    for _ in 0..200 {
        lost = metric(&app, "write_batches_lost_total").await;
        if lost >= 1.0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(lost >= 1.0);
    // The database is unreachable: readiness says so.
    let mut ready = app.get("/readyz", None).await.0;
    for _ in 0..50 {
        if ready == 503 {
            break;
        }
        ready = app.get("/readyz", None).await.0;
    }
    assert_eq!(ready, 503);
    proxy.restore();

    // Storage is back: the run's end is stored and delivered, and nothing is missing.
    live.extend(socket.recv_runs(1).await);
    let live = sequenced(&live);
    assert_gapless(&live, 1);
    let end = live.last().unwrap();
    assert_eq!(end["type"], "run_failed", "{end}");
    assert_eq!(end["data"]["code"], "storage_unavailable");
    let mut fresh = app.ws("alice").await;
    fresh.recv().await;
    let stored: Vec<Value> = sequenced(&fresh.ws_replay_from(0).await);
    assert_eq!(stored, live, "every delivered event is stored");
    assert_eq!(app.get("/readyz", None).await.0, 200);
    socket.say("analyse my usage").await;
    let next = sequenced(&socket.recv_runs(1).await);
    assert_gapless(&next, live.len() as i64 + 1);
    assert_eq!(next.last().unwrap()["type"], "run_completed");
    app.stop().await;
}
