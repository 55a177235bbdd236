//! What the browser tests stand on: a real `enclave serve` in dev mode on a fresh SQLite file,
//! a `chromedriver` with headless Chromium, and small waits on the page's state (the DOM is
//! polled: WebDriver offers no event to await).

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

/// How long a page state may take to appear (a loaded CI machine included).
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// One browser at a time, whatever the test threads.
static TURN: Mutex<()> = Mutex::const_new(());

/// The caller's turn with the browser; `None` (and a line saying the test is skipped) when
/// this machine has no chromium — never under CI, where that fails the test.
pub async fn browser_turn() -> Option<MutexGuard<'static, ()>> {
    let present = which("chromium") && which("chromedriver");
    if !present {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must install chromium and chromium-driver"
        );
        eprintln!("skipped: chromium and chromedriver are not installed");
        return None;
    }
    Some(TURN.lock().await)
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A real `enclave serve` in dev mode (`--dev` with a fixed secret, so a restarted server
/// takes the page's token) on a fresh SQLite file.
pub struct Server {
    addr: String,
    child: Child,
    dir: TempDir,
}

/// The servers' secret (a restarted server must accept the tokens of the first).
const SECRET: &str = "browser-tests-secret-browser-tests-secret";

impl Server {
    pub async fn start() -> Self {
        Self::start_with::<&str>(&[]).await
    }

    /// The server with extra environment (`ENCLAVE_FAULTS`, …).
    pub async fn start_with<V: AsRef<str>>(env: &[(&str, V)]) -> Self {
        let dir = TempDir::new();
        let (addr, child) = spawn_server(&dir, "127.0.0.1:0", env).await;
        Self { addr, child, dir }
    }

    /// Kills the server (`kill -9`) and starts another on the same address and database.
    pub async fn kill_and_restart<V: AsRef<str>>(mut self, env: &[(&str, V)]) -> Self {
        self.child.kill().await.unwrap();
        let (addr, child) = spawn_server(&self.dir, &self.addr, env).await;
        assert_eq!(addr, self.addr);
        Self {
            addr,
            child,
            dir: self.dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A dev-mode token for `user`.
    pub async fn dev_token(&self, user: &str) -> String {
        let answer: Value = post_json(&self.url("/api/dev/token"), &json!({ "user": user })).await;
        answer["token"].as_str().unwrap().to_owned()
    }

    /// A request to `path` with a dev-mode token of `user`.
    async fn as_user(
        &self,
        method: awc::http::Method,
        path: &str,
        user: &str,
    ) -> awc::ClientRequest {
        let token = self.dev_token(user).await;
        awc::Client::default()
            .request(method, self.url(path))
            .insert_header(("Authorization", format!("Bearer {token}")))
    }

    /// `path` read with a dev-mode token of `user`, as JSON.
    pub async fn get_json(&self, path: &str, user: &str) -> Value {
        serde_json::from_str(&self.get_text(path, user).await).unwrap()
    }

    /// `path` read with a dev-mode token of `user`, as text.
    pub async fn get_text(&self, path: &str, user: &str) -> String {
        let mut resp = self
            .as_user(awc::http::Method::GET, path, user)
            .await
            .send()
            .await
            .unwrap();
        String::from_utf8(resp.body().limit(8 << 20).await.unwrap().to_vec()).unwrap()
    }

    /// Uploads NDJSON `rows` as `user`'s usage records; the server's answer.
    pub async fn upload(&self, user: &str, rows: String) -> Value {
        self.upload_as(user, "", "application/x-ndjson", rows).await
    }

    /// `POST /api/usage{query}` of `body` as `content_type` for `user`; the server's answer.
    pub async fn upload_as(
        &self,
        user: &str,
        query: &str,
        content_type: &str,
        body: String,
    ) -> Value {
        let mut resp = self
            .as_user(awc::http::Method::POST, &format!("/api/usage{query}"), user)
            .await
            .insert_header(("Content-Type", content_type))
            .send_body(body)
            .await
            .unwrap();
        serde_json::from_slice(&resp.body().await.unwrap()).unwrap()
    }

    /// Starts one thread per text for `user` over a WebSocket of its own (each a message with
    /// no thread) and waits until every run has ended.
    pub async fn start_threads(&self, user: &str, texts: &[String]) {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let token = self.dev_token(user).await;
        let url = format!("ws://{}/ws?token={token}", self.addr);
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        for text in texts {
            let frame = json!({"type": "user_message", "content": text});
            socket.send(Message::text(frame.to_string())).await.unwrap();
        }
        let mut ended = 0;
        while ended < texts.len() {
            let frame = tokio::time::timeout(PAGE_WAIT, socket.next())
                .await
                .expect("the runs end")
                .unwrap()
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let event: Value = serde_json::from_str(&text).unwrap();
            assert_ne!(event["type"], "error", "{event}");
            if event["type"] == "run_completed" {
                ended += 1;
            }
        }
        socket.close(None).await.unwrap();
    }

    /// `DELETE /api/account` for `user`; the status.
    pub async fn delete_account(&self, user: &str) -> u16 {
        let resp = self
            .as_user(awc::http::Method::DELETE, "/api/account", user)
            .await
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    }

    /// A counter or gauge of `/metrics` (name without the `enclave_` prefix).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = http(&self.url("/metrics"), "GET", None).await;
        crate::prometheus::series(&text, name)
    }

    /// Uploads `examples/sample-usage.ndjson` as `user`'s usage (1,500 records).
    pub async fn upload_sample(&self, user: &str) {
        let sample = std::fs::read_to_string(sample_usage_path()).unwrap();
        assert_eq!(self.upload(user, sample).await["accepted"], 1500);
    }

    /// The usage records `user` has stored, as the summary counts them.
    pub async fn stored_requests(&self, user: &str) -> u64 {
        let summary = self.get_json("/api/usage/summary", user).await;
        summary["totals"]["requests"].as_u64().unwrap()
    }
}

/// Starts `enclave serve` on `bind` with its database in `dir`; its address and process.
async fn spawn_server(
    dir: &TempDir,
    bind: &str,
    env: &[(&str, impl AsRef<str>)],
) -> (String, Child) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_enclave"));
    command
        .args(["serve", "--dev", "--bind", bind, "--database"])
        .arg(format!("sqlite://{}", dir.0.join("enclave.db").display()))
        .env("ENCLAVE_JWT_SECRET", SECRET)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value.as_ref());
    }
    let mut child = command.spawn().expect("enclave starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PAGE_WAIT, lines.next_line())
        .await
        .expect("the server prints its address")
        .unwrap()
        .unwrap();
    let addr = first
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (addr, child)
}

/// Headless Chromium behind its own `chromedriver`, and the WebDriver session on it. Dropped
/// (a failed test included), it kills the browser by its own profile directory — killing
/// chromedriver alone would leave Chromium running — and removes the directory.
pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_url: String,
    profile: TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .arg("-f")
            .arg(self.profile.0.display().to_string())
            .status();
    }
}

impl Browser {
    pub async fn start() -> Self {
        let profile = TempDir::new();
        let port = free_port();
        let driver_url = format!("http://127.0.0.1:{port}");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        // Ready when its status says so (bounded).
        let mut ready = false;
        for _ in 0..200 {
            if let Some(status) = try_http(&format!("{driver_url}/status")).await {
                ready = status.contains("\"ready\":true");
                if ready {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "chromedriver did not get ready");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-background-networking",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.0.display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .expect("a WebDriver session");
        Self {
            client,
            driver,
            driver_url,
            profile,
        }
    }

    /// The browser console's errors so far (chromedriver's log of the page: script errors,
    /// policy violations, failed loads), each as `source: message`.
    pub async fn console_errors(&self) -> Vec<String> {
        let session = self.client.session_id().await.unwrap().unwrap();
        let url = format!("{}/session/{session}/se/log", self.driver_url);
        let answer: Value = post_json(&url, &json!({ "type": "browser" })).await;
        answer["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| format!("{}: {}", entry["source"], entry["message"]))
            .collect()
    }

    /// Runs a Chrome DevTools Protocol command (`Emulation.…`) through chromedriver; its
    /// answer.
    pub async fn devtools(&self, command: &str, params: Value) -> Value {
        let session = self.client.session_id().await.unwrap().unwrap();
        let url = format!("{}/session/{session}/goog/cdp/execute", self.driver_url);
        post_json(&url, &json!({ "cmd": command, "params": params })).await
    }

    /// Writes the page as it looks now to `target/screenshots/NAME.png`, and with
    /// `UPDATE_SCREENSHOTS=1` to `docs/screenshots/` too (so CI leaves the checkout clean).
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = vec![root.join("target/screenshots")];
        if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            dirs.push(root.join("docs/screenshots"));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        }
    }

    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }

    /// Checks the console logged no error, then stops.
    pub async fn stop_clean(self) {
        self.stop_clean_but(|_| false).await;
    }

    /// Checks the console logged no error but those `expected` accepts (say, the failed
    /// requests a test caused on purpose), then stops.
    pub async fn stop_clean_but(self, expected: impl Fn(&str) -> bool) {
        let errors = self.console_errors().await;
        let unexpected: Vec<&String> = errors.iter().filter(|e| !expected(e)).collect();
        assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
        self.stop().await;
    }
}

/// Opens the page and signs in as `user` by name (dev mode); returns once it is connected.
pub async fn sign_in(page: &Client, server: &Server, user: &str) {
    sign_in_at(page, &server.url("/"), user).await;
}

/// Opens the page at `url` (the server's, or a proxy's in front of it) and signs in as `user`.
pub async fn sign_in_at(page: &Client, url: &str, user: &str) {
    page.goto(url).await.unwrap();
    fill(page, "#user-name", user).await;
    click(page, "#dev-sign-in button[type=submit]").await;
    wait_for_text(page, "#connection", &format!("connected as {user}")).await;
}

/// Opens the page's usage panel if it is folded.
pub async fn open_usage_panel(page: &Client) {
    let panel = page.find(Locator::Css("#usage-panel")).await.unwrap();
    if panel.attr("open").await.unwrap().is_none() {
        click(page, "#usage-panel > summary").await;
    }
}

/// Uploads the file at `path` from the page's usage panel (opened if folded) and waits until
/// the page says how it went; that text.
pub async fn upload_file(page: &Client, path: &std::path::Path) -> String {
    open_usage_panel(page).await;
    let input = page.find(Locator::Css("#usage-file")).await.unwrap();
    input
        .send_keys(&path.canonicalize().unwrap().to_string_lossy())
        .await
        .unwrap();
    // Cleared first, so the last upload's words are not taken for this one's.
    page.execute(
        "document.getElementById('upload-status').textContent = '';",
        vec![],
    )
    .await
    .unwrap();
    click(page, "#upload-form button[type=submit]").await;
    wait_for_text_that(page, "#upload-status", "the upload's end", |status| {
        status.starts_with("Stored") || status.starts_with("Upload failed")
    })
    .await
}

/// The `seq` of each line of the runs' timelines on the page (a streamed answer's line by its
/// first piece), sorted: the page groups lines by run. A line shown twice is there twice.
pub async fn shown_seqs(page: &Client) -> Vec<i64> {
    let seqs = page
        .execute(
            "return [...document.querySelectorAll('.run .timeline li')]
               .map((step) => Number(step.dataset.seq));",
            vec![],
        )
        .await
        .unwrap();
    let mut seqs: Vec<i64> = serde_json::from_value(seqs).unwrap();
    seqs.sort_unstable();
    seqs
}

/// The `seq`s the page's timelines should show for `user`'s newest thread, from the server's
/// pages: each run event once, the pieces of a streamed answer after its first left out.
pub async fn stored_seqs(server: &Server, user: &str) -> Vec<i64> {
    let threads = server.get_json("/api/threads", user).await;
    let thread = threads["threads"][0]["thread_id"].as_str().unwrap();
    let stored = server
        .get_json(&format!("/api/threads/{thread}/events?limit=1000"), user)
        .await;
    let mut seqs = Vec::new();
    let mut streaming: Option<String> = None;
    for event in stored["events"].as_array().unwrap() {
        let kind = event["type"].as_str().unwrap();
        if !event["run_id"].is_string() || ["thread_created", "message_received"].contains(&kind) {
            continue;
        }
        let agent = event["agent"].as_str().map(str::to_owned);
        if kind == "agent_stream" && streaming.is_some() && streaming == agent {
            continue;
        }
        streaming = if kind == "agent_stream" { agent } else { None };
        seqs.push(event["seq"].as_i64().unwrap());
    }
    seqs
}

/// The controls on the page (buttons, inputs, selects, text areas, summaries) that a screen
/// reader would have no name for: no label, no `aria-label`, no text. Each as the start of
/// its markup.
pub async fn unnamed_controls(page: &Client) -> Vec<String> {
    let found = page
        .execute(
            "return [...document.querySelectorAll('button, input, select, textarea, summary')]
               .filter((c) => !(c.labels?.length || c.getAttribute('aria-label')?.trim()
                                || c.textContent.trim()))
               .map((c) => c.outerHTML.slice(0, 120));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// Sends `text` from the composer with Enter.
pub async fn say(page: &Client, text: &str) {
    fill(page, "#composer-input", text).await;
    press_enter(page, "#composer-input").await;
}

/// The text of the element `css` selects.
pub async fn text_of(page: &Client, css: &str) -> String {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Types `text` into the (cleared) input `css` selects.
pub async fn fill(page: &Client, css: &str, text: &str) {
    let input = page.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

pub async fn click(page: &Client, css: &str) {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The texts of every element `css` selects, in document order.
pub async fn texts_of(page: &Client, css: &str) -> Vec<String> {
    // Read in one script, so a rendering between two reads cannot leave a stale element; what
    // is not shown (a folded timeline) reads as nothing, as WebDriver's own text would.
    let texts = page
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map((e) =>
               e.checkVisibility() ? (e.innerText ?? e.textContent).trim() : '');",
            vec![json!(css)],
        )
        .await
        .unwrap();
    serde_json::from_value(texts).unwrap()
}

/// Presses Enter in the element `css` selects.
pub async fn press_enter(page: &Client, css: &str) {
    let enter = char::from(fantoccini::key::Key::Enter).to_string();
    let input = page.find(Locator::Css(css)).await.unwrap();
    input.send_keys(&enter).await.unwrap();
}

/// Waits (bounded) until the element `css` selects exists; returns it.
pub async fn wait_for(page: &Client, css: &str) -> fantoccini::elements::Element {
    page.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
}

/// Waits (bounded) until nothing matches `css`.
pub async fn wait_for_gone(page: &Client, css: &str) {
    let deadline = tokio::time::Instant::now() + PAGE_WAIT;
    while tokio::time::Instant::now() < deadline {
        if page.find_all(Locator::Css(css)).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css} is still there");
}

/// Waits (bounded) until the element `css` selects shows exactly `expected`.
pub async fn wait_for_text(page: &Client, css: &str, expected: &str) {
    wait_for_text_that(page, css, &format!("{expected:?}"), |text| text == expected).await;
}

/// Waits (bounded) until the text of the element `css` selects passes `done` (`wanted` says
/// what that is, for the failure); returns the text.
pub async fn wait_for_text_that(
    page: &Client,
    css: &str,
    wanted: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + PAGE_WAIT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(element) = page.find(Locator::Css(css)).await {
            last = element.text().await.unwrap_or_default();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css} shows {last:?}, not {wanted}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn post_json(url: &str, body: &Value) -> Value {
    serde_json::from_str(&http(url, "POST", Some(body.to_string())).await).unwrap()
}

async fn try_http(url: &str) -> Option<String> {
    let mut resp = awc::Client::default().get(url).send().await.ok()?;
    Some(String::from_utf8(resp.body().await.ok()?.to_vec()).unwrap())
}

async fn http(url: &str, method: &str, body: Option<String>) -> String {
    let client = awc::Client::default();
    let request = match method {
        "POST" => client
            .post(url)
            .insert_header(("Content-Type", "application/json")),
        _ => client.get(url),
    };
    let mut resp = match body {
        Some(body) => request.send_body(body).await.unwrap(),
        None => request.send().await.unwrap(),
    };
    String::from_utf8(resp.body().limit(8 << 20).await.unwrap().to_vec()).unwrap()
}

/// A temporary directory, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("enclave-browser-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Writes `contents` to the file `name` in the directory; its path.
    pub fn file(&self, name: &str, contents: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// `examples/sample-usage.ndjson`: a month of usage, 1,500 records.
pub fn sample_usage_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sample-usage.ndjson")
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
