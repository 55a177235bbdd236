//! What a simulated user does with each frame it receives: verification, latency, and the
//! bookkeeping of its runs from acceptance (matched by `client_msg_id`) to terminal event.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::{LATENCY_BATCH, User};
use crate::loadtest::frame::Frame;
use crate::loadtest::report::Report;
use crate::protocol::EventKind;

impl User {
    /// Handles one text frame `socket` received.
    pub(super) fn text(&mut self, socket: u64, text: &str) {
        let Ok(frame) = serde_json::from_str::<Frame<'_>>(text) else {
            self.verifier.unreadable(socket, text);
            return self.count_violations();
        };
        if frame.kind == "connected" && self.awaiting_connected.remove(&socket) {
            let last_seq = frame.last_seq.unwrap_or(0);
            self.verifier.socket_opened(socket, last_seq, false);
        }
        let replaying = self.verifier.replaying(socket);
        self.verifier.frame(socket, &frame, text);
        let ids = self.verifier.take_new_ids();
        if !ids.is_empty() {
            let user = self.name.clone();
            self.report(Report::Ids { user, ids });
        }
        self.count_violations();
        if let Some(ts) = frame.seq.and(frame.ts) {
            self.events += 1;
            if !replaying {
                self.latencies.push(latency_micros(ts));
            }
        }
        if let (Some(msg_id), Some(run_id)) = (frame.acceptance_of(), &frame.run_id) {
            if let Some(sent) = self.pending.remove(msg_id) {
                self.running.insert(run_id.to_string(), sent);
            }
        } else if frame.kind == "error" {
            let code = frame.code.as_deref().unwrap_or("unknown").to_owned();
            if let Some(msg_id) = frame.ref_id.as_deref()
                && self.pending.remove(msg_id).is_some()
            {
                self.refused = true;
                self.report(Report::Refused(code));
            } else {
                self.report(Report::Error(code));
            }
        } else if frame.is_terminal()
            && let Some(sent) = frame.run_id.as_deref().and_then(|r| self.running.remove(r))
        {
            let outcome = match frame.event_kind() {
                Some(EventKind::RunCompleted) => "completed".to_owned(),
                Some(EventKind::RunCancelled) => "cancelled".to_owned(),
                Some(EventKind::RunInterrupted) => "interrupted".to_owned(),
                _ => {
                    let code = frame.data.as_ref().and_then(|d| d.code.as_deref());
                    format!("failed:{}", code.unwrap_or("unknown"))
                }
            };
            self.plan.live.runs.fetch_add(1, Ordering::Relaxed);
            self.report(Report::RunEnded {
                elapsed: sent.elapsed(),
                outcome,
            });
            self.flush();
        }
        if self.latencies.len() >= LATENCY_BATCH {
            self.flush();
        }
    }

    /// Sends the latencies and event count gathered so far to the tally.
    pub(super) fn flush(&mut self) {
        if !self.latencies.is_empty() {
            let latencies = std::mem::take(&mut self.latencies);
            self.report(Report::Latencies(latencies));
        }
        if self.events > 0 {
            self.plan
                .live
                .events
                .fetch_add(self.events, Ordering::Relaxed);
            let events = std::mem::take(&mut self.events);
            self.report(Report::Events(events));
        }
    }

    /// Whether an open socket has not yet received every event another one has.
    pub(super) fn lagging(&self) -> bool {
        self.outgoing
            .keys()
            .any(|socket| self.verifier.behind(*socket))
    }

    /// Adds the violations found since the last call to the progress counter.
    pub(super) fn count_violations(&mut self) {
        let found = self.verifier.violations().len();
        if found > self.violations_reported {
            let new = (found - self.violations_reported) as u64;
            self.plan.live.violations.fetch_add(new, Ordering::Relaxed);
            self.violations_reported = found;
        }
    }
}

/// Microseconds from the server's `ts` (epoch ms) to now.
pub(super) fn latency_micros(ts_ms: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let sent = u128::try_from(ts_ms).unwrap_or(0) * 1000;
    u64::try_from(now.saturating_sub(sent)).unwrap_or(u64::MAX)
}
