//! Measures one run on an idle server, as a client sees it: from sending a `user_message` to
//! its first event and to `run_completed`, over `runs` runs one after another, and the longest
//! pause between two events of a run. For BENCHMARKS.md (issue 9 point 2: TCP_NODELAY).
//!
//! `cargo run --release --example idle_run_latency -- URL SECRET [RUNS] [GENERATE]` against
//! `ENCLAVE_JWT_SECRET=SECRET enclave serve`. With GENERATE, another user first asks for that
//! many synthetic records and the runs are measured while they are generated and stored
//! (issue 9 point 4). Loopback only.

#![allow(clippy::indexing_slicing)]

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
    let generate: Option<u64> = args.get(4).map(|n| n.parse()).transpose()?;
    let auth = Auth::new(secret.as_bytes());
    let ws_of = |user: &str| -> anyhow::Result<String> {
        let token = auth.issue(&UserId::parse(user)?, Duration::from_secs(3600))?;
        Ok(format!(
            "{}/ws?token={token}",
            url.replacen("http", "ws", 1)
        ))
    };
    let mut generating = None;
    if let Some(n) = generate {
        let (mut bulk, _) = tokio_tungstenite::connect_async(ws_of("bulk")?).await?;
        bulk.next().await; // connected
        let ask = format!(
            r#"{{"type":"user_message","content":"generate {n} synthetic usage records for a chatbot"}}"#
        );
        bulk.send(Message::text(ask)).await?;
        // Measured once the generation is storing batches; read on until it ends.
        while let Some(frame) = bulk.next().await {
            if let Message::Text(text) = frame?
                && text.contains(r#""type":"progress""#)
            {
                break;
            }
        }
        generating = Some(actix_web::rt::spawn(async move {
            while let Some(Ok(frame)) = bulk.next().await {
                if let Message::Text(text) = frame
                    && text.contains(r#""type":"run_"#)
                    && !text.contains(r#""type":"run_started""#)
                {
                    break;
                }
            }
        }));
    }
    let ws_url = ws_of("latency")?;
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
    let generation_ongoing = generating.as_ref().is_some_and(|g| !g.is_finished());
    for values in [&mut first, &mut total, &mut pause] {
        values.sort_by(f64::total_cmp);
    }
    println!(
        "{{\"runs\":{runs},\"first_event_ms_p50\":{:.2},\"run_ms_p50\":{:.2},\"run_ms_p95\":{:.2},\
         \"run_ms_max\":{:.2},\"longest_pause_ms_p50\":{:.2},\"generation_ongoing_at_end\":{generation_ongoing}}}",
        quantile(&first, 0.5),
        quantile(&total, 0.5),
        quantile(&total, 0.95),
        quantile(&total, 1.0),
        quantile(&pause, 0.5)
    );
    Ok(())
}
