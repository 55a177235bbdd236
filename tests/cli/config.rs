//! The configuration file (issue 14): `enclave.toml` sets a running server's limits, the
//! environment overrides it, `enclave config show` tells where each value came from with
//! secrets masked, a bad key or value stops the start naming it, and the shipped
//! `enclave.example.toml` is what `enclave config example` prints.

use std::path::PathBuf;

use crate::ingest::get_signed;
use crate::{Serve, enclave};

const SECRET: &str = "config-secret-config-secret-config-0";

/// A fresh directory holding `enclave.toml` with `text`.
fn dir_with_file(text: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("enclave-cfg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("enclave.toml");
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

#[test]
fn the_file_sets_a_running_servers_limits_and_the_environment_overrides_it() {
    let (dir, file) =
        dir_with_file("[usage]\nmax_upload_bytes = 12345\n\n[runs]\nmax_content_chars = 777\n");
    let server = Serve::start_with_env(
        Some(SECRET),
        &["--bind", "127.0.0.1:0", "--config", file.to_str().unwrap()],
        &[("ENCLAVE_MAX_CONTENT_CHARS", "888")],
    );
    let limits = get_signed(&server, SECRET, "/api/limits");
    assert_eq!(limits["max_upload_bytes"], 12345, "{limits}");
    assert_eq!(limits["max_content_chars"], 888, "{limits}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_key_or_value_stops_the_start_naming_it() {
    for (text, said) in [
        (
            "[sockets]\nmax_per_usr = 3\n",
            "unknown key sockets.max_per_usr (did you mean sockets.max_per_user?)",
        ),
        (
            "[limits]\nmax_per_user = 3\n",
            "unknown key limits.max_per_user",
        ),
        (
            "bind = \"127.0.0.1:0\"\n",
            "unknown key bind (did you mean server.bind?)",
        ),
        (
            "[sockets]\nmax_per_user = \"ten\"\n",
            "sockets.max_per_user = \"ten\" is not valid: expected a number, found string",
        ),
        (
            "[sockets]\nheartbeat = 10\n",
            "sockets.heartbeat = 10 is not valid: expected a string",
        ),
        ("[sockets\n", "unclosed table"),
        (
            "[database]\ntimeout = \"0s\"\n",
            "database.timeout = \"0s\" is not valid: must be more than 0",
        ),
        (
            "[auth]\nsecrets = [\"short-one\"]\n",
            "auth.secrets = (not shown) is not valid: secret 1 has 9 bytes",
        ),
    ] {
        let (dir, file) = dir_with_file(text);
        let db = format!("sqlite://{}", dir.join("e.db").display());
        for args in [
            vec!["serve", "--bind", "127.0.0.1:0", "--database", &db],
            vec!["config", "show"],
        ] {
            let out = enclave()
                .arg("--config")
                .arg(&file)
                .args(&args)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?} with {text:?}: {stderr}"
            );
            assert!(stderr.contains(said), "{args:?} with {text:?}: {stderr}");
            assert!(
                !stderr.contains("short-one"),
                "a secret was shown: {stderr}"
            );
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains("listening"),
                "{args:?} started"
            );
        }
        assert!(
            !dir.join("e.db").exists(),
            "nothing was opened for {text:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn config_show_says_where_each_value_came_from_and_masks_secrets() {
    let (dir, _) = dir_with_file(&format!(
        "[auth]\nsecrets = [\"{SECRET}\"]\n\n[sockets]\nmax_per_user = 3\nheartbeat = \"5s\"\n"
    ));
    // ./enclave.toml in the working directory is read without --config.
    let out = enclave()
        .args(["config", "show"])
        .current_dir(&dir)
        .env("ENCLAVE_BIND", "127.0.0.1:9999")
        .env("ENCLAVE_LLM_API_KEY", "sk-the-llm-key")
        .env(
            "DATABASE_URL",
            "postgres://enclave:db-password@db.internal/enclave",
        )
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "max_per_user = 3  # file enclave.toml",
        "heartbeat = \"5s\"  # file enclave.toml",
        "bind = \"127.0.0.1:9999\"  # env ENCLAVE_BIND",
        "pool_size = 8  # default",
        "secrets = [\"(set, not shown)\"]  # file enclave.toml",
        "api_key = \"(set, not shown)\"  # env ENCLAVE_LLM_API_KEY",
        "# url is unset  # default",
        "url = \"postgres://enclave:***@db.internal/enclave\"  # env DATABASE_URL",
    ] {
        assert!(shown.lines().any(|l| l == line), "no {line:?} in:\n{shown}");
    }
    for secret in [SECRET, "sk-the-llm-key", "db-password"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    // What it prints is itself a configuration file.
    let table: toml::Table = toml::from_str(&shown).unwrap();
    assert_eq!(table["sockets"]["max_per_user"].as_integer(), Some(3));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_shipped_example_is_what_config_example_prints() {
    let out = enclave().args(["config", "example"]).output().unwrap();
    assert!(out.status.success());
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("enclave.example.toml"),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        shipped,
        "run `enclave config example > enclave.example.toml`"
    );
    for key in [
        "max_per_user",
        "max_upload_bytes",
        "secrets",
        "heartbeat",
        "retry_avoidable_share",
    ] {
        assert!(
            shipped.contains(&format!("\n#{key} ")),
            "{key} is not in the example"
        );
    }
}
