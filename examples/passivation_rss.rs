//! Measures a server's memory (RSS) before, during and after a crowd of users: `users` users
//! connect, each runs one analysis and disconnects; once their sessions have passivated, the
//! server's RSS is read again. For BENCHMARKS.md.
//!
//! `cargo run --release --example passivation_rss -- URL PID SECRET [USERS]` against
//! `ENCLAVE_JWT_SECRET=SECRET ENCLAVE_PASSIVATE_AFTER_MS=… enclave serve`. Loopback only.

#![allow(clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use enclave::auth::Auth;
use enclave::context::UserId;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn rss_kib(pid: u32) -> u64 {
    enclave::loadtest::process::rss_kib(&pid.to_string()).unwrap_or(0)
}

async fn sessions(url: &str) -> f64 {
    let Ok(mut resp) = awc::Client::default()
        .get(format!("{url}/metrics"))
        .send()
        .await
    else {
        return f64::NAN;
    };
    let body = resp.body().await.unwrap_or_default();
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("enclave_sessions_active "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn one_user(ws_url: String) -> anyhow::Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    ws.next().await; // connected
    ws.send(Message::text(
        r#"{"type":"user_message","content":"analyse my usage"}"#,
    ))
    .await?;
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame?
            && text.contains(r#""type":"run_completed""#)
        {
            break;
        }
    }
    ws.close(None).await?;
    Ok(())
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, pid, secret) = (&args[1], args[2].parse::<u32>()?, &args[3]);
    let users: usize = args.get(4).map_or(Ok(1000), |n| n.parse())?;
    let auth = Auth::new(secret.as_bytes());
    let ws_base = url.replacen("http", "ws", 1);
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut peak = before;
    for wave in 0..users.div_ceil(100) {
        let clients = (wave * 100..((wave + 1) * 100).min(users)).map(|i| {
            let token = auth.issue(
                &UserId::parse(&format!("rss{i}")).expect("valid"),
                Duration::from_secs(3600),
            );
            one_user(format!("{ws_base}/ws?token={}", token.expect("signs")))
        });
        for result in futures_util::future::join_all(clients).await {
            result?;
        }
        peak = peak.max(rss_kib(pid));
    }
    let ran = started.elapsed();
    let active = sessions(url).await;
    let wait = Instant::now();
    while sessions(url).await != 0.0 && wait.elapsed() < Duration::from_secs(120) {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let after = rss_kib(pid);
    println!(
        "{{\"users\":{users},\"seconds\":{:.2},\"rss_kib_before\":{before},\"rss_kib_peak\":{peak},\
         \"sessions_after_runs\":{active},\"rss_kib_after_passivation\":{after},\
         \"passivation_wait_seconds\":{:.2}}}",
        ran.as_secs_f64(),
        wait.elapsed().as_secs_f64()
    );
    Ok(())
}
