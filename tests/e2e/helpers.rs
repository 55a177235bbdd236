//! Test harness: a fresh database per test (a temp SQLite file, or a new PostgreSQL database
//! on `ENCLAVE_TEST_PG_URL`), the real server on an ephemeral port (in-process on its own
//! actix system, or the real binary), real WebSocket clients and an HTTP client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::dev::ServerHandle;
use diesel::{Connection, RunQueryDsl, pg::PgConnection};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use enclave::auth::Auth;
use enclave::config::Config;
use enclave::context::UserId;
use enclave::faults::Faults;
use enclave::runtime::pipeline::Pipeline;
use enclave::runtime::registry::SessionRegistry;
use enclave::runtime::shutdown::Drain;
use enclave::server::Server;

pub const SECRET: &str = "test-secret-for-enclave-0123456789";
/// Upper bound on waiting for any one frame: a failure guard, never a synchronisation.
const FRAME_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs the test body once per backend; PostgreSQL needs `ENCLAVE_TEST_PG_URL`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name(
                    $crate::helpers::TestDb::new($crate::helpers::Backend::Sqlite)
                        .expect("sqlite is always available"),
                )
                .await;
            }

            #[actix_web::test]
            async fn postgres() {
                $crate::helpers::with_postgres(super::$name).await;
            }
        }
    };
}

/// Runs `$name(db)` on a PostgreSQL database of its own: tests of several nodes, which SQLite
/// does not have.
#[macro_export]
macro_rules! on_postgres {
    ($name:ident) => {
        mod $name {
            #[actix_web::test]
            async fn postgres() {
                $crate::helpers::with_postgres(super::$name).await;
            }
        }
    };
}

/// Runs `test` on a PostgreSQL database of its own; without `ENCLAVE_TEST_PG_URL` it is
/// skipped, except under CI, which must run it.
pub async fn with_postgres<F: Future<Output = ()>>(test: impl FnOnce(TestDb) -> F) {
    match TestDb::new(Backend::Postgres) {
        Some(db) => test(db).await,
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI must run the PostgreSQL tests: set ENCLAVE_TEST_PG_URL")
        }
        None => eprintln!("skipped: ENCLAVE_TEST_PG_URL is not set"),
    }
}

/// Alice's run on `server` waiting in a triage that takes a minute (the server started with
/// `ENCLAVE_FAULTS=triage:slow:60000@alice`): her socket and the events she got so far.
pub async fn alice_mid_run(server: &ServerProcess) -> (WsClient, Vec<Value>) {
    let mut alice = server.ws("alice").await;
    alice.recv().await;
    alice.say("analyse my usage").await;
    let live = sequenced(
        &alice
            .recv_until(|f| f["type"] == "agent_started" && f["agent"] == "triage")
            .await,
    );
    (alice, live)
}

/// A database of this test's own, removed when dropped.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

impl TestDb {
    /// A PostgreSQL database (nodes share it) rather than a SQLite file (one server owns it).
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

/// Waits until no node's lease on `db` is live any more (PostgreSQL; at once on SQLite): the
/// nodes killed before are lost, and whoever starts or claims next recovers their runs.
pub async fn wait_for_lapsed_leases(db: &TestDb) {
    if !db.is_postgres() {
        return;
    }
    let live = "lease_until > (extract(epoch from clock_timestamp()) * 1000)::bigint";
    eventually("every node's lease has run out", || {
        let left = count_where(db, "nodes", live);
        (left == 0, left)
    })
    .await;
}

enum Cleanup {
    Dir(PathBuf),
    PgDatabase { admin_url: String, name: String },
}

impl TestDb {
    pub fn new(backend: Backend) -> Option<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("enclave-test-{id}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = format!("sqlite://{}", dir.join("enclave.db").display());
                Some(Self {
                    url,
                    cleanup: Cleanup::Dir(dir),
                })
            }
            Backend::Postgres => {
                let admin_url = std::env::var("ENCLAVE_TEST_PG_URL").ok()?;
                let name = format!("enclave_test_{id}");
                let mut admin =
                    PgConnection::establish(&admin_url).expect("ENCLAVE_TEST_PG_URL reachable");
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .expect("create test database");
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                let url = format!("{base}/{name}");
                Some(Self {
                    url,
                    cleanup: Cleanup::PgDatabase { admin_url, name },
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PgDatabase { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .execute(&mut admin);
                }
            }
        }
    }
}

/// The test configuration: fixed secret, ephemeral port, small pools.
pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config::for_database(&db.url);
    config.bind = "127.0.0.1:0".into();
    config.jwt_secrets = vec![SECRET.into()];
    config.session_arbiters = 2;
    config.db_pool_size = 4;
    config.db_reader_threads = 2;
    config.node_lease = Duration::from_secs(1);
    config
}

/// A server running in this process on its own actix system and thread.
pub struct TestApp {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    /// The server's session registry, which `drain` asks as SIGTERM would.
    registry: Addr<SessionRegistry>,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    auth: Auth,
}

impl TestApp {
    pub async fn spawn(db: &TestDb) -> Self {
        Self::spawn_with(test_config(db)).await
    }

    pub async fn spawn_with(config: Config) -> Self {
        Self::spawn_with_pipeline(config, Pipeline::standard).await
    }

    /// A server whose pipeline `pipeline()` builds (on the server's own thread).
    pub async fn spawn_with_pipeline(
        config: Config,
        pipeline: impl FnOnce() -> Pipeline + Send + 'static,
    ) -> Self {
        // Awaited, not blocked on: the test's own tasks (a proxy, a fake API) keep running.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                match Server::build(config, pipeline()).await {
                    Ok(server) => {
                        let parts = (
                            server.addr(),
                            server.faults(),
                            server.handle(),
                            server.registry(),
                        );
                        let _ = tx.send(Ok(parts));
                        let _ = server.run_until_stopped().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            });
        });
        let (addr, faults, handle, registry) = rx
            .await
            .expect("server thread reports")
            .expect("server starts");
        Self {
            addr,
            faults,
            registry,
            handle,
            thread: Some(thread),
            auth: Auth::new(SECRET.as_bytes()),
        }
    }

    pub fn token(&self, user: &str) -> String {
        token_for(&self.auth, user)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A socket for `user` with the token in the query string.
    pub async fn ws(&self, user: &str) -> WsClient {
        self.ws_query(user, "").await
    }

    /// A socket for `user`; `extra` is appended to the query (e.g. `&after_seq=3`).
    pub async fn ws_query(&self, user: &str, extra: &str) -> WsClient {
        let url = format!("ws://{}/ws?token={}{}", self.addr, self.token(user), extra);
        WsClient::connect(&url).await.expect("socket opens")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let client = awc::Client::default();
        let mut req = client.get(self.http(path));
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let mut resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let body = resp.body().await.expect("body read");
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, value)
    }

    /// Drains every session as SIGTERM does (runs finish within `grace` or are cancelled,
    /// everything is stored, sockets close 1001), without stopping the server.
    pub async fn drain(&self, grace: Duration) {
        self.registry
            .send(Drain { grace })
            .await
            .expect("the registry drains");
    }

    /// Stops the server without waiting for open sockets to close.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let handle = self.handle.clone();
            actix_web::rt::spawn(async move { handle.stop(false).await });
        }
    }
}

/// A one-hour token for `user` signed with the test secret.
pub fn token_for(auth: &Auth, user: &str) -> String {
    let user = UserId::parse(user).expect("valid test user");
    auth.issue(&user, Duration::from_secs(3600)).expect("signs")
}

/// The real `enclave serve` binary on an ephemeral port.
pub struct ServerProcess {
    pub addr: String,
    child: tokio::process::Child,
}

impl ServerProcess {
    pub async fn spawn(db: &TestDb) -> Self {
        Self::spawn_with_env(db, &[]).await
    }

    /// The binary with extra environment (`ENCLAVE_FAULTS`, limits, …).
    pub async fn spawn_with_env(db: &TestDb, env: &[(&str, &str)]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_enclave"));
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--database", &db.url])
            .env("ENCLAVE_JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            // A killed server's PostgreSQL lease runs out soon, for the next test server.
            .env("ENCLAVE_NODE_LEASE_MS", "1000")
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("enclave binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(FRAME_WAIT, lines.next_line())
            .await
            .expect("server prints its address")
            .expect("stdout readable")
            .expect("a first line");
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        actix_web::rt::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { addr, child }
    }

    /// Starts the binary on `db` expecting it to refuse: its exit code and what it printed on
    /// stderr.
    pub async fn refused(db: &TestDb) -> (Option<i32>, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
            .args(["serve", "--bind", "127.0.0.1:0", "--database", &db.url])
            .env("ENCLAVE_JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .env("ENCLAVE_NODE_LEASE_MS", "1000")
            .env_remove("DATABASE_URL")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("exits within a minute")
            .expect("enclave binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stderr)
    }

    pub async fn ws(&self, user: &str) -> WsClient {
        let token = token_for(&Auth::new(SECRET.as_bytes()), user);
        WsClient::connect(&format!("ws://{}/ws?token={token}", self.addr))
            .await
            .expect("socket opens")
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("exits within a minute")
            .expect("waitable");
        status.code()
    }

    /// Sends the process `signal` (`STOP`, `CONT`, …).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }

    /// `kill -9`, and wait until the process is gone.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("killed");
    }
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A real WebSocket client.
pub struct WsClient {
    stream: Stream,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Code(u16),
    WithoutCode,
}

impl WsClient {
    pub async fn connect(url: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self { stream })
    }

    /// A client over a socket already open.
    pub fn from_stream(stream: Stream) -> Self {
        Self { stream }
    }

    /// Connects with the token in an `Authorization` header.
    pub async fn connect_with_header(
        url: &str,
        token: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("header value"),
        );
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { stream })
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text.to_owned()))
            .await
            .expect("frame sent");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream
            .send(Message::binary(bytes))
            .await
            .expect("frame sent");
    }

    /// Sends a text frame whose payload is not UTF-8.
    pub async fn send_invalid_utf8(&mut self) {
        let frame = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
        self.stream
            .send(Message::Frame(frame))
            .await
            .expect("frame sent");
    }

    /// Sends `user_message`.
    pub async fn say(&mut self, content: &str) {
        self.send(json!({ "type": "user_message", "content": content }))
            .await;
    }

    /// The next JSON frame; panics on close or after `FRAME_WAIT`.
    pub async fn recv(&mut self) -> Value {
        match self.recv_or_close().await {
            Ok(frame) => frame,
            Err(closed) => panic!("expected a text frame, got a close: {closed:?}"),
        }
    }

    /// The next JSON frame, or `None` if the server closed the socket instead.
    pub async fn recv_or_closed(&mut self) -> Option<Value> {
        self.recv_or_close().await.ok()
    }

    /// The next JSON frame, skipping pings, or how the server ended the socket instead; the
    /// wait is one `FRAME_WAIT`, which the server's pings do not extend.
    pub async fn recv_or_close(&mut self) -> Result<Value, Closed> {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a frame within the wait");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("server frames are JSON"));
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Err(Closed::Code(frame.code.into()));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return Err(Closed::WithoutCode),
            }
        }
    }

    /// A fresh socket for `user` after its session failed (4009): like any client, it
    /// reconnects until a fresh session takes the socket (bounded). Returns it and `connected`.
    pub async fn reconnect_after_restart(app: &TestApp, user: &str) -> (Self, Value) {
        for _ in 0..4 {
            let mut socket = app.ws(user).await;
            if let Some(connected) = socket.recv_or_closed().await {
                return (socket, connected);
            }
        }
        panic!("no session took {user}'s socket");
    }

    /// Frames up to and including the first one `done` accepts.
    pub async fn recv_until(&mut self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            let stop = done(&frame);
            frames.push(frame);
            if stop {
                return frames;
            }
        }
    }

    /// Like `recv_runs`, but keeps frames as text until the end, so a large burst is read as
    /// fast as it arrives.
    pub async fn drain_runs(&mut self, n: usize) -> Vec<Value> {
        let mut texts = Vec::new();
        let mut ended = 0;
        let mut deadline = tokio::time::Instant::now() + FRAME_WAIT;
        while ended < n {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a frame within the wait");
            match next {
                Some(Ok(Message::Text(text))) => {
                    // Pings do not extend the wait; text frames do.
                    deadline = tokio::time::Instant::now() + FRAME_WAIT;
                    if RUN_ENDS.iter().any(|end| text.as_str().starts_with(end)) {
                        ended += 1;
                    }
                    texts.push(text);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
        texts
            .iter()
            .map(|t| serde_json::from_str(t.as_str()).expect("server frames are JSON"))
            .collect()
    }

    /// Frames until `n` runs have ended.
    pub async fn recv_runs(&mut self, n: usize) -> Vec<Value> {
        let mut ended = 0;
        let mut frames = Vec::new();
        while ended < n {
            let frame = self.recv().await;
            if is_run_end(&frame) {
                ended += 1;
            }
            frames.push(frame);
        }
        frames
    }

    /// Frames until `resumed` has arrived and `runs` runs have ended (in whatever order).
    pub async fn recv_resumed_and_runs(&mut self, runs: usize) -> Vec<Value> {
        let mut frames = self.recv_until(|f| f["type"] == "resumed").await;
        let ended = frames.iter().filter(|f| is_run_end(f)).count();
        if ended < runs {
            frames.extend(self.recv_runs(runs - ended).await);
        }
        frames
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn closed(&mut self) -> Closed {
        loop {
            let next = tokio::time::timeout(FRAME_WAIT, self.stream.next())
                .await
                .expect("close within the wait");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => return Closed::Code(frame.code.into()),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    return Closed::WithoutCode;
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// `ping` with a nonce answers `pong` with it; returns the frames that came before it.
    pub async fn ping_pong(&mut self, nonce: &str) -> Vec<Value> {
        self.send(json!({ "type": "ping", "nonce": nonce })).await;
        let mut frames = self.recv_until(|f| f["type"] == "pong").await;
        let pong = frames.pop().expect("pong");
        assert_eq!(pong["nonce"], nonce);
        frames
    }

    /// Sends `resume {after_seq}` and returns the frames up to `resumed` (excluded).
    pub async fn ws_replay_from(&mut self, after_seq: i64) -> Vec<Value> {
        self.send(json!({ "type": "resume", "after_seq": after_seq }))
            .await;
        let mut frames = self.recv_until(|f| f["type"] == "resumed").await;
        frames.pop();
        frames
    }

    /// The socket's two halves, to send and read at once.
    pub fn into_parts(
        self,
    ) -> (
        futures_util::stream::SplitSink<Stream, Message>,
        futures_util::stream::SplitStream<Stream>,
    ) {
        self.stream.split()
    }

    /// Sends `messages` while reading whatever arrives meanwhile (so this socket never counts
    /// as slow), then closes.
    pub async fn send_all_reading(self, messages: Vec<Value>) {
        let (mut sink, mut incoming) = self.stream.split();
        let drain =
            actix_web::rt::spawn(async move { while let Some(Ok(_)) = incoming.next().await {} });
        for message in messages {
            sink.send(Message::text(message.to_string()))
                .await
                .expect("frame sent");
        }
        let _ = sink.close().await;
        let _ = drain.await;
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// How a run's last frame starts on the wire (`type` is serialised first).
const RUN_ENDS: [&str; 4] = [
    r#"{"type":"run_completed""#,
    r#"{"type":"run_failed""#,
    r#"{"type":"run_cancelled""#,
    r#"{"type":"run_interrupted""#,
];

pub fn is_run_end(frame: &Value) -> bool {
    matches!(
        frame["type"].as_str(),
        Some("run_completed" | "run_failed" | "run_cancelled" | "run_interrupted")
    )
}

/// The sequenced frames (those with `seq`).
pub fn sequenced(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f.get("seq").is_some())
        .cloned()
        .collect()
}

pub fn seqs(frames: &[Value]) -> Vec<i64> {
    sequenced(frames)
        .iter()
        .map(|f| f["seq"].as_i64().expect("seq is an integer"))
        .collect()
}

/// Asserts `frames`' seqs are exactly `first..=last` with no gap or duplicate.
pub fn assert_gapless(frames: &[Value], first: i64) {
    let seqs = seqs(frames);
    let expected: Vec<i64> = (first..first + seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "seq must be gapless from {first}");
}

/// base64url without padding, for hand-made tokens.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Opens a socket by hand and then neither reads nor answers pings; returns the close code the
/// server finally sends (a client library would answer pings and never look silent).
pub async fn silent_socket_close_code(addr: SocketAddr, token: &str) -> u16 {
    SlowReader::open(addr, token).await.read_to_close().await.1
}

/// Every route and socket message that names an object, tried by `attacker` with `victim`'s
/// thread and run ids: each must answer `not_found`, exactly as for ids that do not exist, and
/// change nothing of the victim's. Later features add their routes and messages here.
pub async fn assert_cross_user_not_found(
    app: &TestApp,
    attacker: &str,
    thread: &str,
    run: &str,
    approval: Option<&str>,
) {
    let token = app.token(attacker);
    let client = awc::Client::default();
    let gets = [
        format!("/api/threads/{thread}/events"),
        format!("/api/runs/{run}"),
        format!("/api/reports/{run}.md"),
        format!("/api/reports/{run}.html"),
    ];
    for path in gets {
        let (status, body) = app.get(&path, Some(&token)).await;
        assert_eq!(status, 404, "GET {path}");
        assert_eq!(body["error"]["code"], "not_found", "GET {path}");
        // HEAD is routed as GET: the same refusal, without a body.
        let resp = client
            .head(app.http(&path))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status().as_u16(), 404, "HEAD {path}");
    }
    let mut resp = client
        .delete(app.http(&format!("/api/threads/{thread}")))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status().as_u16(), 404, "DELETE thread");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");

    let mut socket = app.ws(attacker).await;
    socket.recv().await;
    let messages = [
        json!({"type":"user_message","content":"let me in","thread_id":thread,"client_msg_id":"x-1"}),
        json!({"type":"cancel_run","run_id":run}),
        json!({"type":"approval","approval_id":approval.unwrap_or(run),"decision":"approve"}),
    ];
    for message in messages {
        socket.send(message.clone()).await;
        let answer = socket.recv_until(|f| f["type"] == "error").await;
        let answer = answer.last().expect("an error");
        assert_eq!(answer["code"], "not_found", "{message}");
    }
    socket.close().await;
}

/// Every stored event after `after`, read the way a client catches up: `?after_seq=` until
/// `resumed`, reconnecting after each 4008 (with a test's small bounds a reader slowed by a
/// loaded machine may be closed so) from the last seq it got, with no gap or duplicate.
pub async fn catch_up(app: &TestApp, user: &str, mut after: i64) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..100 {
        let mut socket = app.ws_query(user, &format!("&after_seq={after}")).await;
        assert_eq!(socket.recv().await["type"], "connected");
        loop {
            match socket.recv_or_close().await {
                Ok(frame) if frame["type"] == "resumed" => {
                    socket.close().await;
                    return got;
                }
                Ok(frame) => {
                    if let Some(seq) = frame["seq"].as_i64() {
                        assert_eq!(seq, after + 1, "a gap or a duplicate: {frame}");
                        after = seq;
                        got.push(frame);
                    }
                }
                Err(closed) => {
                    assert_eq!(closed, Closed::Code(4008));
                    break;
                }
            }
        }
    }
    panic!("never caught up");
}

/// Reads `socket` until `n` runs have ended, as a client does: a socket closed 4008 — which a
/// reader slowed by a loaded machine can be, with the small bounds some tests set — is reopened
/// with `after_seq` of the last event it saw, and reading goes on. Every event must come exactly
/// once, in order, from seq 1 (across reconnections too). Returns them.
pub async fn follow_runs(app: &TestApp, user: &str, mut socket: WsClient, n: usize) -> Vec<Value> {
    let mut events: Vec<Value> = Vec::new();
    let mut ended = 0;
    while ended < n {
        match socket.recv_or_close().await {
            Ok(frame) => {
                let Some(seq) = frame["seq"].as_i64() else {
                    continue;
                };
                let last = events.last().map_or(0, |f| f["seq"].as_i64().unwrap());
                assert_eq!(seq, last + 1, "a gap or a duplicate: {frame}");
                if is_run_end(&frame) {
                    ended += 1;
                }
                events.push(frame);
            }
            Err(closed) => {
                assert_eq!(closed, Closed::Code(4008), "only a slow reader is closed");
                let after = events.last().map_or(0, |f| f["seq"].as_i64().unwrap());
                socket = app.ws_query(user, &format!("&after_seq={after}")).await;
            }
        }
    }
    events
}

/// A socket opened by hand with a small receive buffer, that reads nothing until asked.
pub struct SlowReader {
    tcp: TcpStream,
}

impl SlowReader {
    pub async fn open(addr: SocketAddr, token: &str) -> Self {
        Self::open_query(addr, token, "").await
    }

    /// Like `open`; `extra` is appended to the upgrade URL's query (e.g. `&after_seq=0`).
    pub async fn open_query(addr: SocketAddr, token: &str, extra: &str) -> Self {
        use tokio::io::AsyncWriteExt;
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("small receive buffer");
        let mut tcp = socket.connect(addr).await.expect("tcp connects");
        let request = format!(
            "GET /ws?token={token}{extra} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes())
            .await
            .expect("request sent");
        Self { tcp }
    }

    /// Sends a text frame right behind the upgrade request (masked with a zero key, which
    /// leaves the payload as it is), so the server reads it as soon as the socket opens.
    pub async fn send_text(&mut self, text: &str) {
        use tokio::io::AsyncWriteExt;
        let payload = text.as_bytes();
        let mut frame = vec![0x81_u8];
        match u16::try_from(payload.len()) {
            Ok(n) if n < 126 => frame.push(0x80 | n as u8),
            Ok(n) => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&n.to_be_bytes());
            }
            Err(_) => panic!("a test frame under 64 KiB"),
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.tcp.write_all(&frame).await.expect("frame sent");
    }

    /// Sends `bytes` as they are (a frame the test built by hand, valid or not).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        // The server may close before reading all of a frame it refuses.
        let _ = self.tcp.write_all(bytes).await;
    }

    /// Reads everything the server sent up to its close frame: the text frames and the code.
    pub async fn read_to_close(self) -> (Vec<Value>, u16) {
        match self.read_to_end().await {
            (frames, Some(code)) => (frames, code),
            (_, None) => panic!("connection ended without a close frame"),
        }
    }

    /// Reads everything the server sent: the text frames, and the close code if a close frame
    /// came before the connection ended.
    pub async fn read_to_end(mut self) -> (Vec<Value>, Option<u16>) {
        use tokio::io::AsyncReadExt;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 65536];
        let mut frames = Vec::new();
        let mut at = None;
        loop {
            let read = tokio::time::timeout(FRAME_WAIT, self.tcp.read(&mut chunk))
                .await
                .expect("bytes within the wait");
            let n = match read {
                Ok(0) | Err(_) => return (frames, None),
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            if at.is_none() {
                at = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
            }
            let Some(start) = at.as_mut() else {
                continue;
            };
            loop {
                let rest = &buf[*start..];
                if rest.len() < 2 {
                    break;
                }
                let opcode = rest[0] & 0x0f;
                let (len, header) = match rest[1] & 0x7f {
                    126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
                    127 if rest.len() >= 10 => {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&rest[2..10]);
                        (u64::from_be_bytes(n) as usize, 10)
                    }
                    126 | 127 => break,
                    n => (n as usize, 2),
                };
                if rest.len() < header + len {
                    break;
                }
                let payload = &rest[header..header + len];
                match opcode {
                    0x1 => frames.push(serde_json::from_slice(payload).expect("JSON frames")),
                    0x8 => return (frames, Some(u16::from_be_bytes([payload[0], payload[1]]))),
                    _ => {}
                }
                *start += header + len;
            }
        }
    }
}

/// A TCP proxy the test can cut: while cut, open connections are dropped and new ones closed
/// at once (the database looks unreachable to the server), until restored.
pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("bound");
        let (cut, watch) = tokio::sync::watch::channel(false);
        actix_web::rt::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *watch.borrow() {
                    continue;
                }
                let mut watch = watch.clone();
                actix_web::rt::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }
}

/// `enclave_<name>` from the Prometheus text of `/metrics`.
pub async fn metric(app: &TestApp, name: &str) -> f64 {
    metric_at(&app.addr.to_string(), name).await
}

/// A series of the server listening on `addr`.
pub async fn metric_at(addr: &str, name: &str) -> f64 {
    let mut resp = awc::Client::default()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    crate::prometheus::series(&text, name)
}

/// Waits until `holds` (a look at the database, say) is true of work the server does in the
/// background, looking every 20 ms; fails after a minute, naming `what` and the last answer.
pub async fn eventually<T: std::fmt::Debug>(what: &str, mut look: impl FnMut() -> (bool, T)) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (holds, seen) = look();
        if holds {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: never happened; last seen {seen:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `DELETE path` as `user`: the status and the JSON body (null if none).
pub async fn http_delete(app: &TestApp, path: &str, user: &str) -> (u16, Value) {
    let mut resp = awc::Client::default()
        .delete(app.http(path))
        .insert_header(("Authorization", format!("Bearer {}", app.token(user))))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

/// Rows of `table` whose `column` is `value`, counted in the database itself (not through the
/// server): what is stored, whatever the routes show.
pub fn rows_where(db: &TestDb, table: &str, column: &str, value: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let placeholder = if db.url.starts_with("postgres") {
        "$1"
    } else {
        "?"
    };
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = {placeholder}");
    let query = diesel::sql_query(sql).bind::<diesel::sql_types::Text, _>(value);
    let counted: Count = if db.url.starts_with("postgres") {
        let mut conn = PgConnection::establish(&db.url).unwrap();
        query.get_result(&mut conn).unwrap()
    } else {
        let path = db.url.trim_start_matches("sqlite://");
        let mut conn = diesel::sqlite::SqliteConnection::establish(path).unwrap();
        query.get_result(&mut conn).unwrap()
    };
    counted.n
}

/// Rows of `table` meeting the SQL `condition`, counted in a PostgreSQL database itself.
pub fn count_where(db: &TestDb, table: &str, condition: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}");
    let mut conn = PgConnection::establish(&db.url).unwrap();
    let counted: Count = diesel::sql_query(sql).get_result(&mut conn).unwrap();
    counted.n
}

/// Runs `sql` (no binds) on the database itself, as an operator or a crashed process would
/// have left it.
pub fn execute(db: &TestDb, sql: &str) {
    if db.url.starts_with("postgres") {
        let mut conn = PgConnection::establish(&db.url).unwrap();
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    } else {
        let path = db.url.trim_start_matches("sqlite://");
        let mut conn = diesel::sqlite::SqliteConnection::establish(path).unwrap();
        // The stopped server's connections may still be closing.
        diesel::sql_query("PRAGMA busy_timeout = 10000")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }
}

/// Rows of `user` stored in `table`.
pub fn rows_of(db: &TestDb, table: &str, user: &str) -> i64 {
    rows_where(db, table, "user_id", user)
}
