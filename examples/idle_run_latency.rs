//! Measures one run on an idle server, as a client sees it: from sending a `user_message` to
//! its first event and to `run_completed`, over `runs` runs one after another, and the longest
//! pause between two events of a run. For BENCHMARKS.md (issue 9 point 2: TCP_NODELAY).
//!
//! `cargo run --release --example idle_run_latency -- URL SECRET [RUNS]` against
//! `ENCLAVE_JWT_SECRET=SECRET enclave serve`. Loopback only.

use std::time::{Duration, Instant};

use enclave::auth::Auth;
use enclave::context::UserId;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// The value at `q` (0..=1) of sorted `values`, nearest rank.
fn quantile(values: &[f64], q: f64) -> f64 {
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, secret) = (&args[1], &args[2]);
    let runs: usize = args.get(3).map_or(Ok(50), |n| n.parse())?;
    let token = Auth::new(secret.as_bytes())
        .issue(&UserId::parse("latency")?, Duration::from_secs(3600))?;
    let ws_url = format!("{}/ws?token={token}", url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    ws.next().await; // connected
    let (mut first, mut total, mut pause) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let sent = Instant::now();
        ws.send(Message::text(
            r#"{"type":"user_message","content":"Where can I cut my LLM spend by 30% without hurting latency?"}"#,
        ))
        .await?;
        let (mut first_at, mut last_at, mut longest) = (None, sent, Duration::ZERO);
        while let Some(frame) = ws.next().await {
            let Message::Text(text) = frame? else {
                continue;
            };
            let now = Instant::now();
            first_at.get_or_insert(now);
            longest = longest.max(now - last_at);
            last_at = now;
            if text.contains(r#""type":"run_completed""#) {
                break;
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        first.push(ms(first_at.unwrap_or(last_at) - sent));
        total.push(ms(last_at - sent));
        pause.push(ms(longest));
    }
    for values in [&mut first, &mut total, &mut pause] {
        values.sort_by(f64::total_cmp);
    }
    println!(
        "{{\"runs\":{runs},\"first_event_ms_p50\":{:.2},\"run_ms_p50\":{:.2},\"run_ms_p95\":{:.2},\
         \"longest_pause_ms_p50\":{:.2}}}",
        quantile(&first, 0.5),
        quantile(&total, 0.5),
        quantile(&total, 0.95),
        quantile(&pause, 0.5)
    );
    Ok(())
}
