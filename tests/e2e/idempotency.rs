//! `client_msg_id` makes `user_message` idempotent: repeats from any tab, at any time and
//! after a restart start no second run and are answered with a copy of the stored acceptance
//! event; a repeat with other content is a `conflict`.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

fn message(id: &str, content: &str) -> Value {
    json!({"type":"user_message","content":content,"client_msg_id":id})
}

fn run_starts(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "run_started")
        .cloned()
        .collect()
}

async fn one_run_per_client_msg_id(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut tab1 = app.ws("alice").await;
    let mut tab2 = app.ws("alice").await;
    tab1.recv().await;
    tab2.recv().await;

    // The same message from two tabs, and twice in a row from the first.
    tab1.send(message("m-7", "analyse my usage")).await;
    tab2.send(message("m-7", "analyse my usage")).await;
    tab1.send(message("m-7", "analyse my usage")).await;
    // Both tabs see the one run start live, and the two repeats are each answered with a
    // copy of it (which tab sent first is up to the network, so count copies over both).
    let mut seen1 = tab1.recv_runs(1).await;
    let mut seen2 = tab2.recv_runs(1).await;
    while run_starts(&seen1).len() + run_starts(&seen2).len() < 4 {
        tokio::select! {
            frame = tab1.recv() => seen1.push(frame),
            frame = tab2.recv() => seen2.push(frame),
        }
    }
    let starts1 = run_starts(&seen1);
    let starts2 = run_starts(&seen2);
    let first = starts1[0].clone();
    assert_eq!(first["data"]["client_msg_id"], "m-7");
    assert!(starts1.iter().chain(starts2.iter()).all(|f| *f == first));
    assert_eq!(starts1.len() + starts2.len(), 4);
    // Apart from the copies the stream is one run, gapless.
    let mut live: Vec<Value> = Vec::new();
    for frame in sequenced(&seen1) {
        if !live.iter().any(|f| f["seq"] == frame["seq"]) {
            live.push(frame);
        }
    }
    assert_gapless(&live, 1);
    assert_eq!(
        live.iter()
            .filter(|f| f["type"] == "message_received")
            .count(),
        1
    );

    // Later repeats: the copy alone, nothing new stored.
    let last_seq = *seqs(&live).last().unwrap();
    tab2.send(message("m-7", "analyse my usage")).await;
    assert_eq!(tab2.recv().await, first);
    assert_eq!(tab2.ping_pong("after-copy").await, Vec::<Value>::new());
    // tab1 is not told about tab2's repeat.
    assert_eq!(tab1.ping_pong("quiet").await, Vec::<Value>::new());

    // Different content under the same id: conflict, nothing stored.
    tab1.send(message("m-7", "something else")).await;
    let refused = tab1.recv().await;
    assert_eq!(refused["code"], "conflict");
    assert_eq!(refused["ref"], "m-7");
    let mut check = app.ws("alice").await;
    assert_eq!(check.recv().await["last_seq"], last_seq);
    app.stop().await;

    // After a restart the database answers.
    let app = TestApp::spawn(&db).await;
    let mut tab3 = app.ws("alice").await;
    tab3.recv().await;
    tab3.send(message("m-7", "analyse my usage")).await;
    assert_eq!(tab3.recv().await, first);
    tab3.send(message("m-7", "different")).await;
    assert_eq!(tab3.recv().await["code"], "conflict");
    assert_eq!(tab3.ping_pong("end").await, Vec::<Value>::new());
    let mut check = app.ws("alice").await;
    assert_eq!(check.recv().await["last_seq"], last_seq);

    // Another user may use the same id freely.
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    bob.send(message("m-7", "analyse my usage")).await;
    let bob_frames = sequenced(&bob.recv_runs(1).await);
    assert_gapless(&bob_frames, 1);
    assert_ne!(run_starts(&bob_frames)[0]["run_id"], first["run_id"]);
    app.stop().await;
}
on_both_backends!(one_run_per_client_msg_id);
