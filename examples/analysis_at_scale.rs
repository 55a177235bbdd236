//! Measures the analysis of a big window, as a user sees it (issue 12, goals 1 and 4): one
//! user generates RECORDS synthetic records, then asks "cut my LLM costs by 30%" RUNS times;
//! each run is timed from the message to `run_completed`, with the server's RSS sampled
//! (peak over the baseline before the first analysis). Meanwhile a second user sends a
//! trivial message every 100 ms and its run times are reported too. Then
//! `GET /api/usage/summary` of the big user is timed, and the largest frame an analysis run
//! sent is reported. With `ANALYSE_USER=NAME` the records of
//! that user (generated earlier) are analysed instead of generating new ones. The second user
//! starts before the generation, so its run times are reported for the generation and for the
//! analyses apart. With `PROBE_SECS=N` only the second user runs, for N seconds (to measure
//! it while something else — `enclave ingest` — loads the server).
//!
//! `cargo run --release --example analysis_at_scale -- URL SECRET SERVER_PID [RECORDS] [RUNS]`
//! against `ENCLAVE_JWT_SECRET=SECRET ENCLAVE_SYNTHETIC_APPROVAL_THRESHOLD=100000000
//! ENCLAVE_MESSAGE_BURST=10000 ENCLAVE_MESSAGES_PER_MINUTE=100000 enclave serve`. Loopback only.

#![allow(clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use enclave::auth::Auth;
use enclave::context::UserId;
use enclave::loadtest::process::rss_kib;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The value at `q` (0..=1) of sorted `values`, nearest rank.
fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Sends `content` and reads until the run ends; the terminal frame and the size of the
/// largest frame of the run.
async fn run(ws: &mut Socket, content: &str) -> anyhow::Result<(String, usize)> {
    let frame = serde_json::json!({"type": "user_message", "content": content});
    ws.send(Message::text(frame.to_string())).await?;
    let mut largest = 0;
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame? {
            largest = largest.max(text.len());
            if text.contains(r#""type":"run_completed""#)
                || text.contains(r#""type":"run_failed""#)
                || text.contains(r#""type":"run_cancelled""#)
            {
                return Ok((text.to_string(), largest));
            }
        }
    }
    anyhow::bail!("the socket closed mid-run")
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, secret, pid) = (&args[1], &args[2], &args[3]);
    let records: u64 = args.get(4).map_or(Ok(1_000_000), |n| n.parse())?;
    let runs: usize = args.get(5).map_or(Ok(3), |n| n.parse())?;
    let auth = Auth::new(secret.as_bytes());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let token = |user: &str| -> anyhow::Result<String> {
        Ok(auth.issue(&UserId::parse(user)?, Duration::from_secs(3600))?)
    };
    let ws_of = |user: &str| -> anyhow::Result<String> {
        Ok(format!(
            "{}/ws?token={}",
            url.replacen("http", "ws", 1),
            token(user)?
        ))
    };
    // The second user: a trivial message every 100 ms, from before the generation to the end.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let (mut probe, _) =
        tokio_tungstenite::connect_async(ws_of(&format!("probe-{}", &tag[..8]))?).await?;
    probe.next().await; // connected
    let prober = actix_web::rt::spawn(async move {
        let mut times = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {
                    let sent = Instant::now();
                    if run(&mut probe, "hello").await.is_err() {
                        break;
                    }
                    times.push((sent, sent.elapsed().as_secs_f64() * 1000.0));
                }
            }
        }
        times
    });
    if let Ok(secs) = std::env::var("PROBE_SECS") {
        tokio::time::sleep(Duration::from_secs(secs.parse()?)).await;
        let _ = stop.send(());
        let mut times: Vec<f64> = prober.await?.into_iter().map(|(_, ms)| ms).collect();
        times.sort_by(f64::total_cmp);
        println!("{{\"probe\":{}}}", stats(&times));
        return Ok(());
    }

    // ANALYSE_USER names a user whose records are already there (no generation).
    let existing = std::env::var("ANALYSE_USER").ok();
    let big = existing
        .clone()
        .unwrap_or_else(|| format!("big-{}", &tag[..8]));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_of(&big)?).await?;
    ws.next().await; // connected
    let started = Instant::now();
    if existing.is_none() {
        let (end, _) = run(
            &mut ws,
            &format!("generate {records} synthetic usage records for a chatbot"),
        )
        .await?;
        anyhow::ensure!(end.contains("run_completed"), "generation: {end}");
    }
    let generated_s = started.elapsed().as_secs_f64();
    let generated_at = Instant::now();

    let rss_before = rss_kib(pid).unwrap_or(0);
    let mut rss_peak = rss_before;
    let mut times = Vec::new();
    let mut largest_frame = 0;
    for _ in 0..runs {
        let sent = Instant::now();
        let analysis = run(&mut ws, "cut my LLM costs by 30%");
        let mut analysis = std::pin::pin!(analysis);
        let mut sample = tokio::time::interval(Duration::from_millis(20));
        let (end, largest) = loop {
            tokio::select! {
                end = &mut analysis => break end?,
                _ = sample.tick() => rss_peak = rss_peak.max(rss_kib(pid).unwrap_or(0)),
            }
        };
        anyhow::ensure!(end.contains("run_completed"), "analysis: {end}");
        largest_frame = largest_frame.max(largest);
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = stop.send(());
    let probe_times = prober.await?;
    let phase = |during_generation: bool| {
        let mut times: Vec<f64> = probe_times
            .iter()
            .filter(|(sent, _)| (*sent < generated_at) == during_generation)
            .map(|(_, ms)| *ms)
            .collect();
        times.sort_by(f64::total_cmp);
        stats(&times)
    };
    let summary_started = Instant::now();
    let response = awc::Client::default()
        .get(format!("{url}/api/usage/summary"))
        .insert_header(("Authorization", format!("Bearer {}", token(&big)?)))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("summary: {e}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "summary: {}",
        response.status()
    );
    let summary_ms = summary_started.elapsed().as_secs_f64() * 1000.0;
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"records\":{records},\"generated_s\":{generated_s:.1},\"analysis_ms\":{times:?},\
         \"rss_growth_mib\":{:.1},\"summary_ms\":{summary_ms:.0},\
         \"probe_during_generation\":{},\"probe_during_analysis\":{},\
         \"largest_frame_bytes\":{largest_frame}}}",
        rss_peak.saturating_sub(rss_before) as f64 / 1024.0,
        phase(true),
        phase(false),
    );
    Ok(())
}

/// Run times (sorted, ms) as `{"runs","p50_ms","p99_ms","max_ms"}`.
fn stats(sorted: &[f64]) -> String {
    if sorted.is_empty() {
        return String::from("{\"runs\":0}");
    }
    format!(
        "{{\"runs\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        sorted.len(),
        quantile(sorted, 0.5),
        quantile(sorted, 0.99),
        quantile(sorted, 1.0)
    )
}
