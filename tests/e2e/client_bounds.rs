//! A single client bounded (issue 14): a user's sockets are capped (the one over the cap is
//! closed with 4029 and never joins), and the frames that cost the server a read (`resume`,
//! `cancel_run`, `approval`) are rate limited per socket, refused `rate_limited` before they
//! reach the session; neither touches another user.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn the_socket_over_a_users_cap_is_closed_with_4029(db: TestDb) {
    let mut config = test_config(&db);
    config.max_sockets_per_user = 3;
    let app = TestApp::spawn_with(config).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut socket = app.ws("alice").await;
        assert_eq!(socket.recv().await["type"], "connected");
        sockets.push(socket);
    }
    // A fourth, whose first frame is sent with its upgrade request (so the session gets it
    // right behind the socket's attach): closed with 4029, and the frame not acted on.
    let mut fourth = SlowReader::open(app.addr, &app.token("alice")).await;
    let message = json!({"type": "user_message", "content": "a run from over the cap"});
    fourth.send_text(&message.to_string()).await;
    let (frames, code) = fourth.read_to_close().await;
    assert_eq!(code, 4029, "{frames:?}");
    assert!(frames.is_empty(), "{frames:?}");
    // Asked after the close, the session has handled the refused socket's frames: no run
    // started (alice has no event at all).
    sockets[0]
        .send(json!({"type": "resume", "after_seq": 0}))
        .await;
    let resumed = sockets[0].recv_until(|f| f["type"] == "resumed").await;
    assert_eq!(resumed.last().unwrap()["through_seq"], 0, "{resumed:?}");
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(metric(&app, "sockets_over_user_cap_total").await, 1.0);
    // Another user is not counted with alice.
    let mut bob = app.ws("bob").await;
    assert_eq!(bob.recv().await["type"], "connected");
    // The three still work.
    for socket in &mut sockets {
        socket.ping_pong("still here").await;
    }
    // Once one closes, another may join (the session hears of the close on its own time, so
    // the newcomer may be refused until then, as a client retrying with backoff would be).
    sockets.pop().unwrap().close().await;
    let mut joined = false;
    for _ in 0..50 {
        let mut again = app.ws("alice").await;
        match again.recv_or_close().await {
            Ok(frame) => {
                assert_eq!(frame["type"], "connected");
                joined = true;
                break;
            }
            Err(closed) => assert!(matches!(closed, Closed::Code(4029)), "{closed:?}"),
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(joined, "a socket joins once another has closed");
    app.stop().await;
}
on_both_backends!(the_socket_over_a_users_cap_is_closed_with_4029);

/// The next `n` error frames.
async fn answers(socket: &mut WsClient, n: usize) -> Vec<Value> {
    let mut errors = Vec::new();
    while errors.len() < n {
        let frame = socket.recv().await;
        if frame["type"] == "error" {
            errors.push(frame);
        }
    }
    errors
}

async fn frames_that_cost_a_read_are_rate_limited_per_socket(db: TestDb) {
    let mut config = test_config(&db);
    config.read_frame_burst = 5;
    // One a minute: nothing refills while the test runs, however loaded the machine.
    config.read_frames_per_minute = 1;
    let app = TestApp::spawn_with(config).await;
    let mut alice = app.ws("alice").await;
    assert_eq!(alice.recv().await["type"], "connected");
    let ids: Vec<String> = (0..60).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for id in &ids {
        alice
            .send(json!({"type": "cancel_run", "run_id": id}))
            .await;
    }
    let errors = answers(&mut alice, ids.len()).await;
    // Each frame answered once, naming its run (refusals come from the socket at once, the
    // others from the session after its look-up: in no set order).
    let mut refs: Vec<&str> = errors.iter().map(|e| e["ref"].as_str().unwrap()).collect();
    let mut sent: Vec<&str> = ids.iter().map(String::as_str).collect();
    refs.sort_unstable();
    sent.sort_unstable();
    assert_eq!(refs, sent);
    let limited = errors
        .iter()
        .filter(|e| e["code"] == "rate_limited")
        .count();
    let looked_up = errors.iter().filter(|e| e["code"] == "not_found").count();
    assert_eq!(limited + looked_up, ids.len(), "{errors:#?}");
    // The burst (and at most one refilled if the test took a minute).
    assert!((5..=6).contains(&looked_up), "{looked_up} looked up");
    assert_eq!(
        metric(&app, "read_frames_rate_limited_total").await,
        limited as f64
    );
    // `resume` and `approval` draw on the same allowance; the socket stays open.
    alice.send(json!({"type": "resume", "after_seq": 0})).await;
    let refused = answers(&mut alice, 1).await;
    assert_eq!(refused[0]["code"], "rate_limited", "{refused:?}");
    assert!(refused[0].get("ref").is_none(), "{refused:?}");
    alice.ping_pong("open").await;

    // Another socket of another user has its own allowance.
    let mut bob = app.ws("bob").await;
    assert_eq!(bob.recv().await["type"], "connected");
    let unknown = uuid::Uuid::new_v4().to_string();
    bob.send(json!({"type": "approval", "approval_id": unknown, "decision": "approve"}))
        .await;
    let answer = answers(&mut bob, 1).await;
    assert_eq!(answer[0]["code"], "not_found", "{answer:?}");
    app.stop().await;
}
on_both_backends!(frames_that_cost_a_read_are_rate_limited_per_socket);
