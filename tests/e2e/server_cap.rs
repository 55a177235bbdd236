//! The server-wide cap on executing runs (`RunSlots`, issue 9 point 1): under a thousand users
//! every admitted run gets its slot in turn and ends, and each user's `seq` stays gapless.

use futures_util::StreamExt;
use futures_util::future::join_all;

use crate::helpers::*;
use crate::on_both_backends;

const ASK: &str = "Where can I cut my LLM spend by 30% without hurting latency?";

async fn a_thousand_users_past_the_server_cap_all_finish(db: TestDb) {
    let mut config = test_config(&db);
    config.max_running_total = 50;
    let app = TestApp::spawn_with(config).await;
    // The sockets open fifty at a time (a thousand connects at once can overflow the
    // listener's backlog on a loaded machine; connecting is not what this test is about), then
    // every user talks at once.
    let sockets: Vec<WsClient> = futures_util::stream::iter(0..1000)
        .map(|i| {
            let app = &app;
            async move {
                let mut socket = app.ws(&format!("cap{i}")).await;
                socket.recv().await;
                socket
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let users = sockets.into_iter().map(|mut socket| async move {
        for _ in 0..3 {
            socket.say(ASK).await;
        }
        let frames = sequenced(&socket.drain_runs(3).await);
        socket.close().await;
        frames
    });
    let all = join_all(users).await;

    let mut server_busy = 0;
    for frames in &all {
        assert_gapless(frames, 1);
        let ends: Vec<&str> = frames
            .iter()
            .filter(|f| is_run_end(f))
            .map(|f| f["type"].as_str().unwrap())
            .collect();
        assert_eq!(ends, ["run_completed"; 3]);
        server_busy += frames
            .iter()
            .filter(|f| f["type"] == "run_queued" && f["data"]["reason"] == "server_busy")
            .count();
    }
    // The cap was in the way: runs waited for server slots and were granted them later.
    assert!(server_busy > 0, "no run waited for the server cap");
    assert_eq!(
        metric(&app, "runs_total{outcome=\"completed\"}").await,
        3000.0
    );
    assert_eq!(metric(&app, "runs_queued").await, 0.0);
    app.stop().await;
}
on_both_backends!(a_thousand_users_past_the_server_cap_all_finish);
