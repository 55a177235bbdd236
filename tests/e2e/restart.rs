//! The real binary killed and started again on the same database: the stream is unchanged
//! and continues where it stopped.

use serde_json::json;

use crate::helpers::*;
use crate::on_both_backends;

async fn restart_keeps_the_stream(db: TestDb) {
    let first = ServerProcess::spawn(&db).await;
    let mut socket = first.ws("alice").await;
    assert_eq!(socket.recv().await["last_seq"], 0);
    socket.say("analyse my usage").await;
    socket.say("cut my LLM costs by 20%").await;
    let live = sequenced(&socket.recv_runs(2).await);
    assert_gapless(&live, 1);
    let last_seq = live.last().unwrap()["seq"].as_i64().unwrap();
    socket.close().await;
    first.kill().await;

    let second = ServerProcess::spawn(&db).await;
    let mut socket = second.ws("alice").await;
    let connected = socket.recv().await;
    assert_eq!(connected["last_seq"], last_seq);
    let replayed = socket.ws_replay_from(0).await;
    assert_eq!(
        replayed, live,
        "the replay is the live stream, byte for byte"
    );

    socket
        .send(json!({"type":"user_message","content":"and now?","thread_id":live[0]["thread_id"]}))
        .await;
    let more = sequenced(&socket.recv_runs(1).await);
    assert_gapless(&more, last_seq + 1);
    assert_eq!(
        more[0]["type"], "message_received",
        "an existing thread gets no thread_created"
    );
    assert_eq!(more[0]["thread_id"], live[0]["thread_id"]);
    second.kill().await;
}
on_both_backends!(restart_keeps_the_stream);
