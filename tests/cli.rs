//! The `enclave` command line: `token`, `migrate` and `--help`, run as the real binary.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use enclave::auth::Auth;

fn enclave() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_enclave"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("ENCLAVE_JWT_SECRET")
        .env("RUST_LOG", "error");
    cmd
}

#[test]
fn token_prints_a_token_signed_with_the_secret() {
    let out = enclave()
        .args(["token", "--user", "alice", "--ttl", "1h"])
        .env("ENCLAVE_JWT_SECRET", "cli-secret")
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let identity = Auth::new(b"cli-secret").verify(token.trim()).unwrap();
    assert_eq!(identity.user_id.as_str(), "alice");
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
        .env("ENCLAVE_JWT_SECRET", "cli-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("placeholder"));
    let out = enclave()
        .args(["token", "--user", "alice", "--ttl", "5y"])
        .env("ENCLAVE_JWT_SECRET", "cli-secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
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
        "applied 1 migration(s)"
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
    for command in ["serve", "migrate", "token"] {
        assert!(help.contains(command), "{help}");
    }
}
