//! Three PostgreSQL-backed nodes under load (issue 15, point 1 and 2): 300 users through nginx,
//! and 300 users whose two sockets are straight on two different nodes, all verified by
//! `enclave loadtest` (each user's `seq` gapless and identical on every socket, no other user's
//! ids, every run ended) and in the events table itself (no gap, no duplicate); and one user
//! through nginx and directly on a node that does not own them, getting the same sequence.

use std::process::Output;

use serde_json::{Value, json};

use enclave::auth::Auth;

use crate::balancer::Nginx;
use crate::helpers::*;
use crate::on_postgres;

/// What every node here is started with: it believes nginx (on loopback) about the client's
/// address, as `deploy/cluster/run` sets them up; the one load client's address may open its
/// 300 sockets at once (through a proxy nothing is exempt from the per-address rates); and a
/// 3 s lease, which a renewal late under this load on 2 cores does not miss.
const NODE_ENV: [(&str, &str); 4] = [
    ("ENCLAVE_TRUSTED_PROXIES", "127.0.0.1"),
    ("ENCLAVE_CONNECTION_BURST_PER_IP", "10000"),
    ("ENCLAVE_UPGRADE_BURST_PER_IP", "10000"),
    ("ENCLAVE_NODE_LEASE_MS", "3000"),
];

/// Three nodes started with `env`.
async fn three_nodes(db: &TestDb, env: &[(&str, &str)]) -> Vec<ServerProcess> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(ServerProcess::spawn_with_env(db, env).await);
    }
    nodes
}

/// Runs `enclave loadtest --url URL ARGS` as a separate process; its output and JSON summary.
fn loadtest(url: &str, args: &[&str]) -> (Output, Value) {
    let json = std::env::temp_dir().join(format!("enclave-lt-{}.json", uuid::Uuid::new_v4()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
        .args([
            "loadtest",
            "--url",
            url,
            "--threads",
            "2",
            "--run-timeout",
            "120s",
        ])
        .args(["--secret", SECRET, "--json"])
        .arg(&json)
        .args(args)
        .env_remove("ENCLAVE_CONFIG")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let summary = std::fs::read(&json)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_file(json);
    (output, summary)
}

/// Every user's stored events are `1..=n` (the primary key rules out a duplicate `seq`; the
/// count equal to the highest rules out a gap), read from the events table; returns how many
/// users have events.
fn assert_every_user_gapless(db: &TestDb) -> i64 {
    let gapped = count_where(
        db,
        "(SELECT user_id FROM events GROUP BY user_id \
          HAVING COUNT(*) <> MAX(seq) OR MIN(seq) <> 1) AS gapped",
        "true",
    );
    assert_eq!(gapped, 0, "users with a gap in their stored sequence");
    count_where(db, "(SELECT DISTINCT user_id FROM events) AS users", "true")
}

/// The loadtest passed, with every one of `runs` runs completed.
fn assert_passed(output: &Output, summary: &Value, runs: u64) {
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(summary["violations_found"], 0, "{said}");
    assert_eq!(summary["runs_completed"], runs, "{said}");
}

async fn three_hundred_users_through_nginx_and_straight_to_the_nodes(db: TestDb) {
    let nodes = three_nodes(&db, &NODE_ENV).await;
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let Some(nginx) = Nginx::start(&addrs).await else {
        return;
    };
    // Through nginx, sticky by user: every user's runs on the node their hint hashes to.
    let (output, summary) = loadtest(
        &format!("ws://{}/ws", nginx.addr),
        &[
            "--users",
            "300",
            "--messages",
            "2",
            "--user-prefix",
            "viaproxy",
        ],
    );
    assert_passed(&output, &summary, 600);
    let owners = "(SELECT DISTINCT node_id FROM runs WHERE user_id LIKE 'viaproxy-%') AS owners";
    assert_eq!(
        count_where(&db, owners, "true"),
        3,
        "the users are spread over the nodes"
    );

    // Straight to the nodes: each user's two sockets on two different nodes.
    let urls: Vec<String> = addrs.iter().map(|a| format!("ws://{a}/ws")).collect();
    let (output, summary) = loadtest(
        &urls.join(","),
        &[
            "--users",
            "300",
            "--sockets-per-user",
            "2",
            "--messages",
            "2",
            "--user-prefix",
            "direct",
        ],
    );
    assert_passed(&output, &summary, 600);
    assert_eq!(assert_every_user_gapless(&db), 600);
    for node in nodes {
        node.kill().await;
    }
}
on_postgres!(three_hundred_users_through_nginx_and_straight_to_the_nodes);

async fn one_user_through_nginx_and_on_another_node_sees_one_sequence(db: TestDb) {
    let nodes = three_nodes(&db, &NODE_ENV).await;
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let Some(nginx) = Nginx::start(&addrs).await else {
        return;
    };
    let token = token_for(&Auth::new(SECRET.as_bytes()), "alice");
    let mut proxied = WsClient::connect(&nginx.ws_url("alice", &token))
        .await
        .unwrap();
    assert_eq!(proxied.recv().await["type"], "connected");
    // The node nginx chose owns alice; her second socket goes straight to another one.
    let owner_addr = "address = (SELECT n.address FROM nodes n JOIN user_leases l \
                      ON l.node_id = n.node_id WHERE l.user_id = 'alice')";
    let other = nodes
        .iter()
        .find(|node| {
            count_where(
                &db,
                "nodes",
                &format!("{owner_addr} AND address = '{}'", node.addr),
            ) == 0
        })
        .unwrap();
    let mut direct = other.ws("alice").await;
    assert_eq!(direct.recv().await["type"], "connected");
    proxied.say("analyse my usage").await;
    direct.say("cut my LLM costs by 20%").await;
    let via_proxy = sequenced(&proxied.recv_runs(2).await);
    let via_other = sequenced(&direct.recv_runs(2).await);
    assert_eq!(
        via_proxy, via_other,
        "the identical sequence on both sockets"
    );
    assert_gapless(&via_proxy, 1);
    assert_eq!(assert_every_user_gapless(&db), 1);
    for node in nodes {
        node.kill().await;
    }
}
on_postgres!(one_user_through_nginx_and_on_another_node_sees_one_sequence);

/// A socket through nginx for `user`, replaying after `after` (0: everything) until the replay
/// and the live events after it hold `until`: a follower of a lost node is closed 4009 once
/// the node's lease is seen gone, and the next connection claims the user (bounded).
async fn through_nginx_until(
    nginx: &Nginx,
    user: &str,
    after: i64,
    until: impl Fn(&[Value]) -> bool,
) -> (WsClient, Vec<Value>) {
    let token = token_for(&Auth::new(SECRET.as_bytes()), user);
    let url = format!("{}&after_seq={after}", nginx.ws_url(user, &token));
    for _ in 0..20 {
        let mut socket = WsClient::connect(&url).await.unwrap();
        assert_eq!(socket.recv().await["type"], "connected");
        let (mut frames, mut resumed) = (Vec::new(), false);
        loop {
            match socket.recv_or_close().await {
                Ok(frame) if frame["type"] == "resumed" => resumed = true,
                Ok(frame) => frames.push(frame),
                Err(Closed::Code(4009) | Closed::WithoutCode) => break,
                Err(closed) => panic!("{user}: closed {closed:?}"),
            }
            if resumed && until(&frames) {
                return (socket, sequenced(&frames));
            }
        }
    }
    panic!("{user} was never claimed again");
}

async fn a_node_killed_mid_load_loses_nothing_and_its_users_move(db: TestDb) {
    // 100 synthetic records ask for consent.
    let [proxies, connections, upgrades, lease] = NODE_ENV;
    let env = [
        proxies,
        connections,
        upgrades,
        lease,
        ("ENCLAVE_SYNTHETIC_APPROVAL_THRESHOLD", "10"),
    ];
    let mut nodes = three_nodes(&db, &env).await;
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let Some(nginx) = Nginx::start(&addrs).await else {
        return;
    };
    let users: Vec<String> = (0..30).map(|n| format!("mover-{n}")).collect();
    // Every user at once (a socket left unread past the heartbeat timeout would be dropped).
    let started = users.iter().map(|user| async {
        let token = token_for(&Auth::new(SECRET.as_bytes()), user);
        let mut socket = WsClient::connect(&nginx.ws_url(user, &token))
            .await
            .unwrap();
        socket.recv().await;
        // Each run waits for its user's consent: it is live when a node dies.
        socket.say("generate 100 synthetic chatbot records").await;
        let live = socket
            .recv_until(|f| f["type"] == "approval_required")
            .await;
        (socket, sequenced(&live))
    });
    let started = futures_util::future::join_all(started).await;
    // The node owning the most of them dies, mid-run.
    let users_of = |addr: &str| {
        let owned = format!("n.address = '{addr}' AND l.user_id LIKE 'mover-%'");
        count_where(
            &db,
            "user_leases l JOIN nodes n ON n.node_id = l.node_id",
            &owned,
        )
    };
    let victim = (0..nodes.len())
        .max_by_key(|at| users_of(&nodes[*at].addr))
        .unwrap();
    let lost_users = users_of(&nodes[victim].addr);
    assert!(lost_users > 0);
    let on_victim: Vec<bool> = users
        .iter()
        .map(|user| {
            let owned = format!(
                "n.address = '{}' AND l.user_id = '{user}'",
                nodes[victim].addr
            );
            count_where(
                &db,
                "user_leases l JOIN nodes n ON n.node_id = l.node_id",
                &owned,
            ) == 1
        })
        .collect();
    nodes.remove(victim).kill().await;

    // Its users reconnect through nginx and resume where they were: their runs ended
    // node_lost; everyone else's runs complete where they are. Then a new run succeeds for
    // everyone.
    let nginx = &nginx;
    let go_on = started.into_iter().zip(&users).zip(&on_victim).map(
        |(((mut socket, mut seen), user), moved)| async move {
            let before = seen.last().unwrap()["seq"].as_i64().unwrap();
            if *moved {
                let ended =
                    |frames: &[Value]| frames.iter().any(|f| f["type"] == "run_interrupted");
                let (again, resumed) = through_nginx_until(nginx, user, before, ended).await;
                let end = resumed
                    .iter()
                    .find(|f| f["type"] == "run_interrupted")
                    .unwrap();
                assert_eq!(end["data"]["reason"], "node_lost", "{user}");
                seen.extend(resumed);
                socket = again;
            } else {
                let asked = seen.last().unwrap()["data"]["approval_id"].clone();
                socket
                    .send(json!({"type": "approval", "approval_id": asked, "decision": "approve"}))
                    .await;
                let ended = sequenced(&socket.recv_runs(1).await);
                assert_eq!(ended.last().unwrap()["type"], "run_completed", "{user}");
                seen.extend(ended);
            }
            socket.say("cut my LLM costs by 20%").await;
            seen.extend(sequenced(&socket.recv_runs(1).await));
            assert_gapless(&seen, 1);
            seen
        },
    );
    let seen = futures_util::future::join_all(go_on).await;
    let ended_lost = |frames: &Vec<Value>| {
        frames
            .iter()
            .filter(|f| f["type"] == "run_interrupted")
            .count() as i64
    };
    assert_eq!(seen.iter().map(ended_lost).sum::<i64>(), lost_users);
    // Everything any client received is stored, identical, with no gap and no duplicate.
    for (at, user) in users.iter().enumerate() {
        let (_, stored) = through_nginx_until(nginx, user, 0, |_| true).await;
        assert_eq!(stored, seen[at], "{user}");
    }
    assert_eq!(assert_every_user_gapless(&db), users.len() as i64);

    // The killed node, started again on a new port, rejoins and serves users: seq goes on.
    let again = ServerProcess::spawn_with_env(&db, &NODE_ENV).await;
    let mut there = again.ws(&users[0]).await;
    let last = seen[0].last().unwrap()["seq"].as_i64().unwrap();
    assert_eq!(there.recv().await["last_seq"], last);
    there.say("and now?").await;
    assert_gapless(&sequenced(&there.recv_runs(1).await), last + 1);
    assert_eq!(assert_every_user_gapless(&db), users.len() as i64);
    again.kill().await;
    for node in nodes {
        node.kill().await;
    }
}
on_postgres!(a_node_killed_mid_load_loses_nothing_and_its_users_move);
