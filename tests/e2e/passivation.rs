//! Passivation: sessions with nothing to do stop and free their memory; the sessions gauge of
//! `/metrics` shows it; a user who comes back is re-activated from the database and resumes
//! with nothing lost.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;

async fn a_thousand_users_passivate_and_come_back(db: TestDb) {
    let mut config = test_config(&db);
    config.passivate_after = Duration::from_millis(200);
    let app = TestApp::spawn_with(config).await;
    let mut seen: Vec<Vec<Value>> = Vec::new();
    // In waves of 100 users at once (each user is two sockets of this one process).
    for wave in 0..10 {
        let runs = (0..100).map(|i| {
            let app = &app;
            async move {
                let mut socket = app.ws(&format!("u{}", wave * 100 + i)).await;
                socket.recv().await;
                socket.say("analyse my usage").await;
                let frames = sequenced(&socket.recv_runs(1).await);
                socket.close().await;
                frames
            }
        });
        seen.extend(futures_util::future::join_all(runs).await);
    }
    assert_eq!(seen.len(), 1000);
    assert!(
        seen.iter()
            .all(|f| f.last().unwrap()["type"] == "run_completed")
    );

    // Every session goes once idle: the gauge returns to 0 (polled, bounded).
    let mut sessions = metric(&app, "sessions_active").await;
    for _ in 0..200 {
        if sessions == 0.0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        sessions = metric(&app, "sessions_active").await;
    }
    assert_eq!(sessions, 0.0);
    assert!(metric(&app, "sessions_passivated_total").await >= 1000.0);
    assert_eq!(metric(&app, "sockets_open").await, 0.0);
    assert_eq!(
        metric(&app, "runs_total{outcome=\"completed\"}").await,
        1000.0
    );
    assert_eq!(metric(&app, "runs_queued").await, 0.0);
    assert_eq!(metric(&app, "session_events_in_flight").await, 0.0);
    assert!(metric(&app, "event_delivery_seconds_count").await > 1000.0);
    assert!(metric(&app, "event_persist_seconds_count").await >= 1.0);

    // A hundred come back: re-activated from the database, their history intact.
    for (i, frames) in seen.iter().enumerate().step_by(10) {
        let mut socket = app.ws(&format!("u{i}")).await;
        let connected = socket.recv().await;
        assert_eq!(connected["last_seq"], frames.last().unwrap()["seq"]);
        assert_eq!(&sequenced(&socket.ws_replay_from(0).await), frames);
        socket.close().await;
    }
    app.stop().await;
}
on_both_backends!(a_thousand_users_passivate_and_come_back);
