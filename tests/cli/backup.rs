//! `enclave backup FILE` (issue 14): a consistent copy of a SQLite database taken while the
//! server serves it holds what was stored; an existing file is never overwritten; PostgreSQL
//! is pointed at `pg_dump`.

use diesel::prelude::*;

use crate::{RECORDS, Serve, enclave};

const SECRET: &str = "backup-secret-backup-secret-backup-0";

fn backup(server: &Serve, file: &std::path::Path) -> std::process::Output {
    let db = format!("sqlite://{}", server.dir.join("e.db").display());
    enclave()
        .arg("backup")
        .arg(file)
        .args(["--database", &db])
        .output()
        .unwrap()
}

#[test]
fn a_backup_taken_while_serving_holds_what_was_stored() {
    let server = Serve::start(Some(SECRET));
    let usage = server.dir.join("usage.ndjson");
    std::fs::write(&usage, RECORDS).unwrap();
    let ingested = enclave()
        .args([
            "ingest",
            usage.to_str().unwrap(),
            "--user",
            "alice",
            "--url",
            &server.url,
        ])
        .env("ENCLAVE_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(ingested.status.success());

    let copy = server.dir.join("copy.db");
    let out = backup(&server, &copy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("integrity ok"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut conn = SqliteConnection::establish(copy.to_str().unwrap()).unwrap();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM usage_records")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(count.n, 2);
    // The server still serves.
    let summary = crate::ingest::get_signed(&server, SECRET, "/api/usage/summary");
    assert_eq!(summary["totals"]["requests"], 2, "{summary}");

    // A second backup to the same file is refused; the copy is untouched.
    let before = std::fs::read(&copy).unwrap();
    let out = backup(&server, &copy);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists; name a new file"));
    assert_eq!(std::fs::read(&copy).unwrap(), before);
}

#[test]
fn a_database_that_is_not_there_is_not_created_and_backed_up() {
    let dir = std::env::temp_dir().join(format!("enclave-bk-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = enclave()
        .arg("backup")
        .arg(dir.join("copy.db"))
        .args([
            "--database",
            &format!("sqlite://{}", dir.join("typo.db").display()),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no database at"));
    assert!(!dir.join("typo.db").exists() && !dir.join("copy.db").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn postgresql_is_pointed_at_pg_dump() {
    let out = enclave()
        .args([
            "backup",
            "/tmp/never.dump",
            "--database",
            "postgres://u:pw-secret@127.0.0.1:1/db",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pg_dump") && !stderr.contains("pw-secret"),
        "{stderr}"
    );
    assert!(!std::path::Path::new("/tmp/never.dump").exists());
}
