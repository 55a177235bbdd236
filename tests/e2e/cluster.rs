//! Several `enclave serve` nodes on one PostgreSQL database (issue 15): a user's sockets on two
//! nodes see one sequence, requests from either reach the owner, HTTP requests on a follower
//! are answered by the owner's session, and no two nodes ever write one user's events.

use std::sync::Arc;

use serde_json::{Value, json};

use enclave::auth::Auth;
use enclave::context::{ThreadId, UserId};
use enclave::faults::Faults;
use enclave::metrics::Metrics;
use enclave::protocol::Event;
use enclave::protocol::payload::ThreadDeleted;
use enclave::store::batch::WriteBatch;
use enclave::store::leases::{self, Claim};
use enclave::store::{Backend, Db, StoreError};

use crate::bulk::{records, requests_of, upload_to};
use crate::helpers::*;
use crate::on_postgres;

/// `DELETE path` on the server at `addr` as `user`: the status.
async fn delete_at(addr: &str, path: &str, user: &str) -> u16 {
    let token = token_for(&Auth::new(SECRET.as_bytes()), user);
    awc::Client::default()
        .delete(format!("http://{addr}{path}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every stored `seq` of `user`, in order, read from the events table itself.
fn stored_seqs(db: &TestDb, user: &str) -> Vec<i64> {
    #[derive(diesel::QueryableByName)]
    struct Seq {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
    }
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(&db.url).unwrap();
    let rows: Vec<Seq> =
        diesel::sql_query("SELECT seq FROM events WHERE user_id = $1 ORDER BY seq")
            .bind::<diesel::sql_types::Text, _>(user)
            .load(&mut conn)
            .unwrap();
    rows.into_iter().map(|row| row.seq).collect()
}

/// The nodes `enclave cluster-status --json` lists.
fn cluster_status(db: &TestDb) -> Vec<Value> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
        .args(["cluster-status", "--json", "--database", &db.url])
        .env_remove("ENCLAVE_CONFIG")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    status["nodes"].as_array().unwrap().clone()
}

/// Two nodes and a socket of alice's on each, past `connected`: `a` owns her, `b` follows.
async fn alice_on_two_nodes(db: &TestDb) -> (ServerProcess, ServerProcess, WsClient, WsClient) {
    let a = ServerProcess::spawn(db).await;
    let b = ServerProcess::spawn(db).await;
    let mut on_a = a.ws("alice").await;
    on_a.recv().await;
    let mut on_b = b.ws("alice").await;
    on_b.recv().await;
    (a, b, on_a, on_b)
}

/// Reads `socket` to its close, which must be 4009, with no sequenced event before it.
async fn closed_4009_with_no_event(socket: &mut WsClient) {
    loop {
        match socket.recv_or_close().await {
            Ok(frame) => assert!(frame.get("seq").is_none(), "{frame}"),
            Err(closed) => return assert_eq!(closed, Closed::Code(4009)),
        }
    }
}

/// The sequenced frames of `frames`, each `seq` once (the first time it came): the stream
/// without a repeat's copy of its acceptance.
fn first_of_each_seq(frames: &[Value]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    sequenced(frames)
        .into_iter()
        .filter(|f| seen.insert(f["seq"].as_i64()))
        .collect()
}

/// No gap and no duplicate: `1..=n`.
fn assert_stored_gapless(db: &TestDb, user: &str) -> i64 {
    let seqs = stored_seqs(db, user);
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "{user}'s stored sequence");
    seqs.len() as i64
}

async fn a_users_sockets_on_two_nodes_see_one_sequence(db: TestDb) {
    let a = ServerProcess::spawn(&db).await;
    let b = ServerProcess::spawn(&db).await;
    // Alice connects to `a` first: `a` owns her, `b` follows.
    let mut on_a = a.ws("alice").await;
    assert_eq!(on_a.recv().await["last_seq"], 0);
    let mut on_b = b.ws("alice").await;
    let connected = on_b.recv().await;
    assert_eq!(connected["type"], "connected");
    assert_eq!(connected["last_seq"], 0);
    assert_eq!(metric_at(&a.addr, "sessions_owned").await, 1.0);
    assert_eq!(metric_at(&b.addr, "sessions_following").await, 1.0);
    // `enclave cluster-status` shows both nodes: `a` owns alice, each holds one of her sockets
    // (as reported at their next lease renewal).
    eventually("cluster-status shows both nodes' users and sockets", || {
        let nodes = cluster_status(&db);
        let of = |addr: &str| {
            let node = nodes.iter().find(|n| n["address"] == addr).cloned();
            node.map(|n| (n["live"].clone(), n["users"].clone(), n["sockets"].clone()))
        };
        let seen = (of(&a.addr), of(&b.addr));
        let want = |users| Some((json!(true), json!(users), json!(1)));
        (seen == (want(1), want(0)) && nodes.len() == 2, nodes)
    })
    .await;

    // A message sent on the follower runs on the owner; both sockets get the same events.
    on_b.say("analyse my usage").await;
    let seen_b = sequenced(&on_b.recv_runs(1).await);
    let seen_a = sequenced(&on_a.recv_runs(1).await);
    assert_eq!(seen_a, seen_b);
    assert_gapless(&seen_a, 1);
    assert_eq!(seen_a.last().unwrap()["type"], "run_completed");
    // And one sent on the owner reaches the follower's socket.
    on_a.say("cut my LLM costs by 20%").await;
    let more_a = sequenced(&on_a.recv_runs(1).await);
    let more_b = sequenced(&on_b.recv_runs(1).await);
    assert_eq!(more_a, more_b);
    assert_gapless(&more_a, seen_a.len() as i64 + 1);

    // A refusal of a relayed request comes back to the asking socket alone.
    let unknown = uuid::Uuid::new_v4().to_string();
    on_b.send(json!({"type": "cancel_run", "run_id": unknown}))
        .await;
    let refused = on_b.recv().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "not_found");
    assert_eq!(refused["ref"], Value::String(unknown));
    // A replay on the follower is the stored sequence.
    let all: Vec<Value> = seen_a.iter().chain(&more_a).cloned().collect();
    assert_eq!(sequenced(&on_b.ws_replay_from(0).await), all);

    // HTTP on the follower: an upload begins and ends through the owner's session, and a
    // thread deletion is numbered and stored by the owner, seen on both sockets.
    let (status, body) = upload_to(&b.addr, "alice", records(50)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 50);
    assert_eq!(requests_of(&a.addr, "alice").await, 50);
    let thread = all[0]["thread_id"].as_str().unwrap();
    assert_eq!(
        delete_at(&b.addr, &format!("/api/threads/{thread}"), "alice").await,
        200
    );
    let deleted_a = on_a.recv().await;
    let deleted_b = on_b.recv().await;
    assert_eq!(deleted_a["type"], "thread_deleted");
    assert_eq!(deleted_a, deleted_b);
    assert_eq!(
        assert_stored_gapless(&db, "alice"),
        deleted_a["seq"].as_i64().unwrap()
    );
    // Alice's run left (the other went with its thread) was created by her owner.
    let by_owner = "user_id = 'alice' AND node_id = \
                    (SELECT node_id FROM user_leases WHERE user_id = 'alice')";
    assert_eq!(count_where(&db, "runs", by_owner), 1);
    assert_eq!(count_where(&db, "runs", "user_id = 'alice'"), 1);
    a.kill().await;
    b.kill().await;
}
on_postgres!(a_users_sockets_on_two_nodes_see_one_sequence);

/// Connects `user` to `node` and replays from 0 until the replay holds `until`: a follower of a
/// lost node replays what is stored and is closed 4009 once the node's lease is seen gone; the
/// next connection claims the user (bounded). Returns the socket and the replayed events.
async fn reconnect_until(
    node: &ServerProcess,
    user: &str,
    until: impl Fn(&Value) -> bool,
) -> (WsClient, Vec<Value>) {
    for _ in 0..10 {
        let mut socket = node.ws(user).await;
        assert_eq!(socket.recv().await["type"], "connected");
        socket.send(json!({"type": "resume", "after_seq": 0})).await;
        let (mut frames, mut resumed) = (Vec::new(), false);
        loop {
            match socket.recv_or_close().await {
                Ok(frame) if frame["type"] == "resumed" => resumed = true,
                Ok(frame) => frames.push(frame),
                Err(Closed::Code(4009)) => break,
                Err(closed) => panic!("closed {closed:?}"),
            }
            // Replayed, and the live events after the replay, until the one awaited.
            if resumed && frames.iter().any(&until) {
                return (socket, sequenced(&frames));
            }
        }
    }
    panic!("{user} was never claimed on {}", node.addr);
}

async fn a_killed_nodes_users_are_taken_over_and_it_rejoins(db: TestDb) {
    // Alice's triage takes a minute: her run is live on `a` when it dies.
    let a =
        ServerProcess::spawn_with_env(&db, &[("ENCLAVE_FAULTS", "triage:slow:60000@alice")]).await;
    let b = ServerProcess::spawn(&db).await;
    let (_alice, live) = alice_mid_run(&a).await;
    let run_id = live.last().unwrap()["run_id"].clone();
    let killed_at = a.addr.clone();
    a.kill().await;

    // Alice reconnects to `b` at once; once `a`'s lease is gone `b` takes her over.
    let interrupted = |f: &Value| f["type"] == "run_interrupted" && f["run_id"] == run_id;
    let (mut alice, replay) = reconnect_until(&b, "alice", interrupted).await;
    // Everything she had before the kill is stored, identical; then her run ended node_lost.
    assert_eq!(replay[..live.len()], live[..]);
    let tail = &replay[live.len()..];
    assert_eq!(tail.len(), 1, "{tail:?}");
    assert_eq!(tail[0]["data"]["reason"], "node_lost");
    assert_gapless(&replay, 1);
    assert_eq!(metric_at(&b.addr, "failovers_total").await, 1.0);
    // New runs succeed on the survivor.
    alice.say("cut my LLM costs by 20%").await;
    let more = sequenced(&alice.recv_runs(1).await);
    assert_eq!(more.last().unwrap()["type"], "run_completed");
    assert_gapless(&more, replay.len() as i64 + 1);

    // The killed node, started again (on a new port), rejoins: alice's socket there follows
    // `b`, and her sequence goes on.
    let again = ServerProcess::spawn(&db).await;
    assert_ne!(again.addr, killed_at);
    let mut there = again.ws("alice").await;
    let connected = there.recv().await;
    let last = more.last().unwrap()["seq"].as_i64().unwrap();
    assert_eq!(connected["last_seq"], last);
    there.say("and now?").await;
    let after = sequenced(&there.recv_runs(1).await);
    assert_eq!(after, sequenced(&alice.recv_runs(1).await));
    assert_gapless(&after, last + 1);
    assert_eq!(
        assert_stored_gapless(&db, "alice"),
        after.last().unwrap()["seq"].as_i64().unwrap()
    );
    b.kill().await;
    again.kill().await;
}
on_postgres!(a_killed_nodes_users_are_taken_over_and_it_rejoins);

async fn a_stalled_owner_cannot_write_after_another_node_took_over(db: TestDb) {
    let a = ServerProcess::spawn(&db).await;
    let b = ServerProcess::spawn(&db).await;
    let mut on_a = a.ws("alice").await;
    on_a.recv().await;
    on_a.say("analyse my usage").await;
    let first = sequenced(&on_a.recv_runs(1).await);
    // Bob's socket on `a` stays idle: nothing of his is ever written there again.
    let mut bob_on_a = a.ws("bob").await;
    bob_on_a.recv().await;

    // `a` stalls past its lease; alice and bob, reconnecting to `b`, are claimed there.
    a.signal("STOP");
    let owner_lapsed = "node_id = (SELECT node_id FROM user_leases WHERE user_id = 'alice') \
                        AND lease_until < (extract(epoch from clock_timestamp()) * 1000)::bigint";
    eventually("a's lease has run out", || {
        let lapsed = count_where(&db, "nodes", owner_lapsed);
        (lapsed == 1, lapsed)
    })
    .await;
    let mut bob_on_b = b.ws("bob").await;
    bob_on_b.recv().await;
    let mut on_b = b.ws("alice").await;
    assert_eq!(on_b.recv().await["last_seq"], first.len() as i64);
    on_b.say("cut my LLM costs by 20%").await;
    let second = sequenced(&on_b.recv_runs(1).await);
    assert_gapless(&second, first.len() as i64 + 1);

    // Alice's socket there sends a message while `a` is stopped (the kernel holds it); once
    // continued, `a` finds both claims superseded — alice's by the refused write or the lease
    // check, bob's, who sends nothing, by the lease check — stores nothing and closes both
    // sockets, which reconnect.
    on_a.say("from the stalled node").await;
    a.signal("CONT");
    for socket in [&mut on_a, &mut bob_on_a] {
        closed_4009_with_no_event(socket).await;
    }
    assert_eq!(metric_at(&a.addr, "fenced_sessions_total").await, 2.0);
    assert_eq!(
        count_where(&db, "events", "data LIKE '%from the stalled node%'"),
        0
    );
    let stored = assert_stored_gapless(&db, "alice");
    assert_eq!(stored, second.last().unwrap()["seq"].as_i64().unwrap());
    // `b` still owns alice, and `a` serves her as a follower of it.
    let mut back = a.ws("alice").await;
    assert_eq!(back.recv().await["last_seq"], stored);
    back.say("and now?").await;
    let third = sequenced(&back.recv_runs(1).await);
    assert_eq!(third, sequenced(&on_b.recv_runs(1).await));
    assert_gapless(&third, stored + 1);
    a.kill().await;
    b.kill().await;
}
on_postgres!(a_stalled_owner_cannot_write_after_another_node_took_over);

/// The fence itself, below the sessions: once another node has claimed a user, a batch that
/// carries the earlier claim's epoch is refused `Fenced` and stores nothing — also inside a
/// group with another user's batch, which is stored — and one with the latest epoch is stored.
async fn a_batch_of_a_superseded_claim_is_refused(db: TestDb) {
    let config = test_config(&db);
    let (pool, _) = enclave::server::open_and_migrate(&config).unwrap();
    let backend = Backend::from_url(&db.url).unwrap();
    let writer_pool =
        enclave::store::open_writer_pool(&backend, 2, config.db_timeout, config.sqlite_synchronous)
            .unwrap();
    // Node n1 claims alice and bob, then its lease runs out; n2 claims alice.
    execute(
        &db,
        "INSERT INTO nodes (node_id, started_at, heartbeat_at, lease_until) VALUES \
         ('n1', 0, 0, 0), ('n2', 0, 0, 9000000000000)",
    );
    let (alice, bob) = (
        UserId::parse("alice").unwrap(),
        UserId::parse("bob").unwrap(),
    );
    let mut conn = pool.get().unwrap();
    execute(
        &db,
        "UPDATE nodes SET lease_until = 9000000000000 WHERE node_id = 'n1'",
    );
    let claim = |conn: &mut _, user: &UserId, node: &str| match leases::claim(conn, user, node) {
        Ok(Claim::Owned { epoch, .. }) => epoch.unwrap(),
        other => panic!("{other:?}"),
    };
    let stale = claim(&mut conn, &alice, "n1");
    let bobs = claim(&mut conn, &bob, "n1");
    execute(&db, "UPDATE nodes SET lease_until = 0 WHERE node_id = 'n1'");
    let latest = claim(&mut conn, &alice, "n2");
    assert_eq!(latest, stale + 1);
    drop(conn);

    // Every batch waits 300 ms at the writer: the two below queue behind a first one and are
    // stored as one group.
    let metrics = Arc::new(Metrics::new());
    let db_handle = Db::start(
        pool,
        writer_pool,
        1,
        1,
        Arc::new(Faults::parse("store:slow:300").unwrap()),
        "n1",
        metrics.clone(),
    )
    .unwrap();
    let batch = |user: &UserId, lease: Option<i64>| {
        let mut event = Event::new(ThreadDeleted {}, Some(ThreadId::new()), None, None);
        event.seq = 1;
        WriteBatch {
            user_id: user.clone(),
            ops: Vec::new(),
            events: vec![event],
            lease,
        }
    };
    // Carol's batch (unfenced) holds the writer while alice's and bob's queue behind it.
    let carol = UserId::parse("carol").unwrap();
    let (first, fenced, stored) = futures_util::future::join3(
        db_handle.write(batch(&carol, None)),
        db_handle.write(batch(&alice, Some(stale))),
        db_handle.write(batch(&bob, Some(bobs))),
    )
    .await;
    first.unwrap();
    assert!(
        matches!(fenced, Err(StoreError::Fenced { .. })),
        "{fenced:?}"
    );
    stored.unwrap();
    // Alice's and bob's were one group, which the fence failed, then stored one by one.
    assert_eq!(metrics.group_retries.get(), 1);
    assert_eq!(rows_of(&db, "events", "alice"), 0);
    assert_eq!(rows_of(&db, "events", "bob"), 1);
    db_handle.write(batch(&alice, Some(latest))).await.unwrap();
    assert_eq!(rows_of(&db, "events", "alice"), 1);
}
on_postgres!(a_batch_of_a_superseded_claim_is_refused);

/// A follower's socket never hears anything ahead of the events before it: a repeated
/// `client_msg_id` sent on it while the first is still being stored gets its copy of the
/// acceptance only after the events up to it; a socket joining or resuming there with a `seq`
/// seen on the owner's side is answered from the database, not from behind it.
async fn a_follower_is_never_ahead_or_behind(db: TestDb) {
    let (a, b, mut on_a, mut on_b) = alice_on_two_nodes(&db).await;
    for round in 0..10 {
        let message = json!({"type": "user_message", "content": "analyse my usage",
                             "client_msg_id": format!("m{round}")});
        on_a.send(message.clone()).await;
        on_b.send(message).await;
        let owner_frames = on_a.recv_runs(1).await;
        let frames = on_b.recv_runs(1).await;
        let on_owner = first_of_each_seq(&owner_frames);
        let accepted = on_owner
            .iter()
            .find(|f| f["type"] == "run_started" || f["type"] == "run_queued")
            .unwrap();
        let upto = accepted["seq"].as_i64().unwrap();
        // Whichever of the two sockets' messages reached the owner second is the repeat, and
        // its socket gets the copy: a second frame of the acceptance's seq.
        let copies_on = |frames: &[Value]| frames.iter().filter(|f| f["seq"] == upto).count();
        match (copies_on(&owner_frames), copies_on(&frames)) {
            (1, 2) => {
                let copy_at = frames.iter().rposition(|f| f["seq"] == upto).unwrap();
                let before: Vec<i64> = seqs(&frames[..copy_at]);
                let first = on_owner.first().unwrap()["seq"].as_i64().unwrap();
                assert!(
                    (first..=upto).all(|seq| before.contains(&seq)),
                    "round {round}: the copy of {upto} came before events up to it: {frames:?}"
                );
            }
            // The follower's message was first; the owner's own socket got the copy.
            (2, 1) => {}
            counts => panic!("round {round}: one copy expected, saw {counts:?}"),
        }
        // Whatever else, the stream itself is the owner's.
        assert_eq!(first_of_each_seq(&frames), on_owner, "round {round}");
    }
    // A client that saw everything on `a` joins `b` with ?after_seq and resumes there: no
    // history is missing and none is new.
    let last = assert_stored_gapless(&db, "alice");
    let token = token_for(&Auth::new(SECRET.as_bytes()), "alice");
    let mut joining = WsClient::connect(&format!(
        "ws://{}/ws?token={token}&after_seq={last}",
        b.addr
    ))
    .await
    .unwrap();
    let connected = joining.recv().await;
    assert_eq!(connected["last_seq"], last);
    assert_eq!(
        joining.recv().await,
        json!({"type": "resumed", "through_seq": last})
    );
    a.kill().await;
    b.kill().await;
}
on_postgres!(a_follower_is_never_ahead_or_behind);

/// `DELETE /api/account` on the owner closes the user's sockets on every node (4009), as on
/// one server, and the user starts afresh wherever they come back.
async fn a_deleted_account_closes_its_sockets_on_every_node(db: TestDb) {
    let (a, b, mut on_a, mut on_b) = alice_on_two_nodes(&db).await;
    on_b.say("analyse my usage").await;
    on_b.recv_runs(1).await;
    on_a.recv_runs(1).await;
    assert_eq!(delete_at(&a.addr, "/api/account", "alice").await, 202);
    for socket in [&mut on_a, &mut on_b] {
        closed_4009_with_no_event(socket).await;
    }
    let mut again = b.ws("alice").await;
    assert_eq!(again.recv().await["last_seq"], 0);
    a.kill().await;
    b.kill().await;
}
on_postgres!(a_deleted_account_closes_its_sockets_on_every_node);

/// A node killed in the middle of an upload: a node that stays up discards the half-written
/// upload once it finds the node lost (not only a node starting later), so the same records
/// sent again are stored whole, none taken for a duplicate.
async fn a_lost_nodes_upload_is_discarded_by_the_survivors(db: TestDb) {
    let env = [
        ("ENCLAVE_BULK_CHUNK", "100"),
        ("ENCLAVE_BULK_CHUNK_MS", "1000"),
        ("ENCLAVE_FAULTS", "bulk:slow_chunk:200"),
    ];
    let a = ServerProcess::spawn_with_env(&db, &env).await;
    let b = ServerProcess::spawn(&db).await;
    let addr = a.addr.clone();
    let uploading =
        actix_web::rt::spawn(async move { upload_to(&addr, "alice", records(2_000)).await });
    eventually("some chunks of the upload are stored", || {
        let stored = rows_of(&db, "usage_records", "alice");
        (stored > 0, stored)
    })
    .await;
    a.kill().await;
    let _ = uploading.await;
    eventually("the survivor discards the lost node's upload", || {
        let left =
            rows_of(&db, "usage_records", "alice") + rows_of(&db, "pending_uploads", "alice");
        (left == 0, left)
    })
    .await;
    let (status, answer) = upload_to(&b.addr, "alice", records(2_000)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2000);
    assert_eq!(answer["duplicates"], 0);
    assert_eq!(requests_of(&b.addr, "alice").await, 2000);
    b.kill().await;
}
on_postgres!(a_lost_nodes_upload_is_discarded_by_the_survivors);
