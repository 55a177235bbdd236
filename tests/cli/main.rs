//! The `enclave` command line: `token`, `migrate`, `ingest`, `serve`, `loadtest` and `--help`,
//! run as the real binary.

#![allow(clippy::unwrap_used)]
#![allow(clippy::indexing_slicing)]

mod backup;
mod config;
mod ingest;
mod loadtest;

use std::process::Command;

use enclave::auth::Auth;

fn enclave() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_enclave"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("ENCLAVE_JWT_SECRET")
        .env_remove("ENCLAVE_JWT_SECRETS")
        .env_remove("ENCLAVE_JWT_ISSUER")
        .env_remove("ENCLAVE_JWT_AUDIENCE")
        .env_remove("ENCLAVE_CONFIG")
        .env("RUST_LOG", "error");
    cmd
}

#[test]
fn token_prints_a_token_signed_with_the_secret() {
    let out = enclave()
        .args(["token", "--user", "alice", "--ttl", "1h"])
        .env("ENCLAVE_JWT_SECRET", "cli-secret-cli-secret-cli-secret-0")
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let identity = Auth::new(b"cli-secret-cli-secret-cli-secret-0")
        .verify(token.trim())
        .unwrap();
    assert_eq!(identity.user_id.as_str(), "alice");
}

/// `enclave token --user alice` with `env`, which must succeed: the token it printed.
fn alices_token(env: &[(&str, &str)]) -> String {
    let out = enclave()
        .args(["token", "--user", "alice"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `ENCLAVE_JWT_SECRETS=new,old`: the first signs (and the server takes both); a secret under
/// 32 bytes stops the command with a message naming the variable, not the secret.
#[test]
fn secrets_rotate_and_a_short_one_is_refused() {
    let new = "new-secret-new-secret-new-secret-0";
    let old = "old-secret-old-secret-old-secret-0";
    let token = alices_token(&[
        ("ENCLAVE_JWT_SECRETS", &format!("{new},{old}")),
        ("ENCLAVE_JWT_ISSUER", "enclave-tests"),
    ]);
    let strict = Auth::with_policy(new.as_bytes(), &[], Some("enclave-tests"), None);
    assert_eq!(
        strict.verify(token.trim()).unwrap().user_id.as_str(),
        "alice"
    );
    assert!(
        Auth::new(old.as_bytes()).verify(token.trim()).is_err(),
        "the old key does not sign"
    );

    for (name, value) in [
        ("ENCLAVE_JWT_SECRET", "short-secret"),
        (
            "ENCLAVE_JWT_SECRETS",
            "new-secret-new-secret-new-secret-0,short-secret",
        ),
    ] {
        let out = enclave()
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database",
                "sqlite:///nonexistent/x.db",
            ])
            .env(name, value)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{stderr}");
        assert!(stderr.contains("at least 32"), "{stderr}");
        assert!(
            !stderr.contains("short-secret"),
            "the secret is not shown: {stderr}"
        );
    }
    // The one secret of ENCLAVE_JWT_SECRET is taken whole, commas and all.
    let with_comma = "secret,with,commas-secret,with,commas-0";
    let token = alices_token(&[("ENCLAVE_JWT_SECRET", with_comma)]);
    assert!(
        Auth::new(with_comma.as_bytes())
            .verify(token.trim())
            .is_ok()
    );
    let out = enclave()
        .args(["token", "--user", "alice"])
        .env("ENCLAVE_JWT_SECRET", new)
        .env("ENCLAVE_JWT_SECRETS", new)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}

#[test]
fn token_refuses_without_a_secret_or_with_a_bad_user() {
    let out = enclave()
        .args(["token", "--user", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ENCLAVE_JWT_SECRET is not set"));
    let out = enclave()
        .args(["token", "--user", "undefined"])
        .env("ENCLAVE_JWT_SECRET", "cli-secret-cli-secret-cli-secret-0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("placeholder"));
    let out = enclave()
        .args(["token", "--user", "alice", "--ttl", "5y"])
        .env("ENCLAVE_JWT_SECRET", "cli-secret-cli-secret-cli-secret-0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
    // Retention shorter than the 24 hours a client_msg_id is answered for is refused.
    let out = enclave()
        .args([
            "serve",
            "--database",
            "sqlite:///nonexistent/never-opened.db",
        ])
        .env("ENCLAVE_JWT_SECRET", "cli-secret-cli-secret-cli-secret-0")
        .env("ENCLAVE_RETAIN_EVENTS", "12h")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ENCLAVE_RETAIN_EVENTS"), "{stderr}");
    assert!(stderr.contains("at least a day"), "{stderr}");
}

#[test]
fn migrate_applies_once() {
    let dir = std::env::temp_dir().join(format!("enclave-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("m.db").display());
    let first = enclave()
        .args(["migrate", "--database", &url])
        .output()
        .unwrap();
    assert!(first.status.success());
    assert_eq!(
        String::from_utf8_lossy(&first.stdout).trim(),
        "applied 10 migration(s)"
    );
    let second = enclave()
        .args(["migrate", "--database", &url])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "applied 0 migration(s)"
    );
    let bad = enclave()
        .args(["migrate", "--database", "mysql://nowhere/db"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither postgres"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn help_names_every_command() {
    let out = enclave().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in [
        "serve", "migrate", "token", "ingest", "loadtest", "config", "backup",
    ] {
        assert!(help.contains(command), "{help}");
    }
}

/// `enclave serve` on a free port with a temp SQLite file; killed when dropped.
struct Serve {
    child: std::process::Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Serve {
    fn start(secret: Option<&str>) -> Self {
        Self::start_with(secret, &["--bind", "127.0.0.1:0"])
    }

    /// `enclave serve ARGS` with its log (warnings included) in `stderr.log`, once it listens.
    fn start_with(secret: Option<&str>, args: &[&str]) -> Self {
        Self::start_with_env(secret, args, &[])
    }

    /// `start_with`, the server's environment extended by `env`.
    fn start_with_env(secret: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let dir =
            std::env::temp_dir().join(format!("enclave-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = format!("sqlite://{}", dir.join("e.db").display());
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut cmd = enclave();
        cmd.args(["serve", "--database", &db])
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr);
        if let Some(secret) = secret {
            cmd.env("ENCLAVE_JWT_SECRET", secret);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout);
        let mut first = String::new();
        lines.read_line(&mut first).unwrap();
        // Keep reading, as a terminal would.
        std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        Self { child, url, dir }
    }
}

impl Serve {
    /// What the server logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const RECORDS: &str = "{\"id\":\"r1\",\"ts\":1700000000000,\"model\":\"gpt-4o\",\"prompt_tokens\":10,\"completion_tokens\":5,\"latency_ms\":100}\n\
{\"id\":\"r2\",\"ts\":1700000000001,\"model\":\"gpt-4o\",\"prompt_tokens\":10,\"completion_tokens\":5,\"latency_ms\":120}\n";

#[test]
fn ingest_uploads_a_file_and_reports_rows() {
    let server = Serve::start(Some("cli-secret-cli-secret-cli-secret-0"));
    let dir = &server.dir;
    let good = dir.join("usage.ndjson");
    std::fs::write(&good, RECORDS).unwrap();
    let run = |path: &std::path::Path| {
        enclave()
            .args([
                "ingest",
                path.to_str().unwrap(),
                "--user",
                "alice",
                "--url",
                &server.url,
            ])
            .env("ENCLAVE_JWT_SECRET", "cli-secret-cli-secret-cli-secret-0")
            .output()
            .unwrap()
    };
    let out = run(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "accepted 2, rejected 0, duplicates 0 (1 upload)"
    );
    let out = run(&good);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "accepted 0, rejected 0, duplicates 2 (1 upload)"
    );

    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "ts,model,prompt_tokens,completion_tokens,latency_ms\n1700000000000,m,1,1,1\n1700000000001,m,many,1,1\n",
    )
    .unwrap();
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("row 2, prompt_tokens: must be a whole number"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was sent"), "{stderr}");

    let unknown = dir.join("usage.txt");
    std::fs::write(&unknown, "x").unwrap();
    let out = run(&unknown);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name it .ndjson"));
}

#[test]
fn ingest_uses_a_dev_token_without_a_secret() {
    let server = Serve::start(None);
    let file = server.dir.join("usage.jsonl");
    std::fs::write(&file, RECORDS).unwrap();
    let out = enclave()
        .args([
            "ingest",
            file.to_str().unwrap(),
            "--user",
            "bob",
            "--url",
            &server.url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "accepted 2, rejected 0, duplicates 0 (1 upload)"
    );
}

#[test]
fn serve_refuses_a_bad_price_catalog() {
    let dir = std::env::temp_dir().join(format!("enclave-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let prices = dir.join("prices.json");
    std::fs::write(
        &prices,
        r#"{"as_of":"2030-01-01","currency":"USD","models":[]}"#,
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("e.db").display());
    let out = enclave()
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &db])
        .env("ENCLAVE_PRICES", &prices)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("price catalog: `models` is empty"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dev_mode_refuses_a_non_loopback_bind_unless_asked() {
    let dir = std::env::temp_dir().join(format!("enclave-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("e.db").display());
    let out = enclave()
        .args(["serve", "--bind", "0.0.0.0:0", "--database", &db])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no ENCLAVE_JWT_SECRET is set and 0.0.0.0:0 is not a loopback address")
            && stderr.contains("pass --dev"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);

    // Asked for explicitly: it serves, and says where.
    let server = Serve::start_with(None, &["--bind", "0.0.0.0:0", "--dev"]);
    assert!(server.url.starts_with("http://0.0.0.0:"), "{}", server.url);
    assert!(
        server
            .log()
            .contains("dev mode on 0.0.0.0:0, which is not a loopback address"),
        "{}",
        server.log()
    );
}

#[test]
fn dev_mode_on_loopback_serves_without_warnings_about_exposure() {
    let server = Serve::start_with(None, &["--bind", "127.0.0.1:0"]);
    assert!(server.url.starts_with("http://127.0.0.1:"));
    let log = server.log();
    assert!(
        log.contains("ENCLAVE_JWT_SECRET is not set: dev mode"),
        "{log}"
    );
    assert!(!log.contains("not a loopback address"), "{log}");
}

#[test]
fn dev_flag_with_a_secret_warns_that_tokens_are_production_valid() {
    let server = Serve::start_with(
        Some("cli-secret-cli-secret-cli-secret-0"),
        &["--bind", "127.0.0.1:0", "--dev"],
    );
    let log = server.log();
    assert!(
        log.contains("--dev with ENCLAVE_JWT_SECRET set: POST /api/dev/token mints tokens"),
        "{log}"
    );
    let without = Serve::start_with(
        Some("cli-secret-cli-secret-cli-secret-0"),
        &["--bind", "127.0.0.1:0"],
    );
    assert!(!without.log().contains("--dev"), "{}", without.log());
}

#[test]
fn cluster_status_on_sqlite_says_there_is_no_cluster() {
    let dir = std::env::temp_dir().join(format!("enclave-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("c.db").display());
    let output = enclave()
        .args(["cluster-status", "--database", &url])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is a SQLite database") && stderr.contains("postgres://"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
