//! A simulated user's sockets: opening (with a replay when resuming), closing on purpose,
//! sending, and waiting for whatever comes next on any of them (a frame, a socket's end, a
//! ping due, a run late). A socket the server drops is reported and reconnected.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::stream::{self, BoxStream, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{Incoming, PING_EVERY, SEND_TIMEOUT, User};
use crate::loadtest::connect::Socket;
use crate::loadtest::report::Report;

impl User {
    /// Opens a socket, replaying after `after_seq` if given; its id, or `None` if it failed.
    pub(super) async fn connect(&mut self, after_seq: Option<i64>) -> Option<u64> {
        let sources = &self.plan.sources;
        let source = match sources.len() {
            0 => None,
            n => sources
                .get((self.index + self.next_socket as usize) % n)
                .copied(),
        };
        let plan = Arc::clone(&self.plan);
        let target = plan.targets.for_socket(self.index, self.next_socket);
        let socket = match target
            .open(&self.name, &self.token, after_seq, source)
            .await
        {
            Ok(socket) => socket,
            Err(reason) => {
                self.report(Report::ConnectFailed(reason));
                return None;
            }
        };
        let id = self.next_socket;
        self.next_socket += 1;
        let (sink, read) = socket.split();
        self.outgoing.insert(id, sink);
        self.incoming.push(tagged(id, read));
        match after_seq {
            Some(after) => self.verifier.socket_opened(id, after, true),
            None => {
                self.awaiting_connected.insert(id);
            }
        }
        let live = &self.plan.live;
        let open = live.sockets.fetch_add(1, Ordering::Relaxed) + 1;
        live.sockets_peak.fetch_max(open, Ordering::Relaxed);
        self.report(Report::Connected);
        Some(id)
    }

    /// Closes `socket` on purpose; where a socket resuming its place should start.
    pub(super) async fn close(&mut self, socket: u64) -> Option<i64> {
        self.closing.insert(socket);
        self.send_on(socket, Message::Close(None)).await;
        if self.outgoing.remove(&socket).is_some() {
            self.plan.live.sockets.fetch_sub(1, Ordering::Relaxed);
        }
        self.verifier.last_seq(socket)
    }

    /// Sends a `user_message` on `socket`; false if it could not be sent.
    pub(super) async fn send_message(&mut self, socket: u64) -> bool {
        self.sent += 1;
        // Unique to this test run: the server keeps `client_msg_id`s for a day, and a repeat
        // would be answered with an old run's acceptance.
        let msg_id = format!("{}-m{}", self.plan.run_tag, self.sent);
        if !self.outgoing.contains_key(&socket) {
            return false;
        }
        self.pending.insert(msg_id.clone(), Instant::now());
        self.sent_on.insert(msg_id.clone(), socket);
        if !self.send_user_message(socket, &msg_id).await {
            self.pending.remove(&msg_id);
            self.report(Report::Unsent);
            return false;
        }
        true
    }

    /// Sends (or sends again) the message `msg_id` on `socket`; false if it could not be sent
    /// in time.
    async fn send_user_message(&mut self, socket: u64, msg_id: &str) -> bool {
        let frame = serde_json::json!({
            "type": "user_message",
            "content": self.plan.content,
            "client_msg_id": msg_id,
        });
        self.send_on(socket, Message::text(frame.to_string())).await
    }

    /// Sends `message` on `socket` within `SEND_TIMEOUT`; false if it could not (a server that
    /// stopped reading must not hang the user).
    pub(super) async fn send_on(&mut self, socket: u64, message: Message) -> bool {
        let Some(sink) = self.outgoing.get_mut(&socket) else {
            return false;
        };
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await,
            Ok(Ok(()))
        )
    }

    /// Handles what happens next, until `until`: false once `until` has passed.
    pub(super) async fn step(&mut self, until: Instant) -> bool {
        let mut deadline = until;
        if let Some(ping) = self.next_ping {
            deadline = deadline.min(ping);
        }
        let oldest = self.pending.values().chain(self.running.values()).min();
        if let Some(sent) = oldest {
            deadline = deadline.min(*sent + self.plan.run_timeout);
        }
        let sleep = tokio::time::sleep_until(deadline.into());
        tokio::select! {
            next = self.incoming.next(), if !self.incoming.is_empty() => {
                if let Some((socket, incoming)) = next {
                    self.receive(socket, incoming).await;
                }
            }
            () = sleep => self.on_timer().await,
        }
        Instant::now() < until
    }

    /// A deadline passed: sends the pings due and times out late runs.
    pub(super) async fn on_timer(&mut self) {
        let now = Instant::now();
        if let Some(ping) = self.next_ping
            && ping <= now
        {
            let sockets: Vec<u64> = self.outgoing.keys().copied().collect();
            for socket in sockets {
                self.send_on(socket, Message::text(r#"{"type":"ping"}"#))
                    .await;
            }
            self.next_ping = Some(now + PING_EVERY);
        }
        let timeout = self.plan.run_timeout;
        let on_time = |sent: &mut Instant| now.duration_since(*sent) < timeout;
        let before = self.pending.len() + self.running.len();
        self.pending.retain(|_, sent| on_time(sent));
        self.running.retain(|_, sent| on_time(sent));
        let timed_out = before - self.pending.len() - self.running.len();
        if timed_out > 0 {
            // The user stops sending; what is still on time may yet end.
            self.gave_up = true;
            for _ in 0..timed_out {
                self.plan.live.runs.fetch_add(1, Ordering::Relaxed);
                self.report(Report::RunTimedOut);
            }
        }
    }

    /// Sends again what waits for `socket`'s replay to end, if it has ended; the verifier then
    /// accepts one copy of each message's acceptance on that socket.
    async fn resend_if_resumed(&mut self, socket: u64) {
        if self.verifier.replaying(socket) {
            return;
        }
        let Some(msg_ids) = self.resend_after_resumed.remove(&socket) else {
            return;
        };
        for msg_id in msg_ids {
            if self.pending.contains_key(&msg_id) {
                self.verifier.expect_copy(socket, &msg_id);
                self.sent_on.insert(msg_id.clone(), socket);
                self.send_user_message(socket, &msg_id).await;
            }
        }
    }

    /// Handles what `socket` yielded.
    pub(super) async fn receive(&mut self, socket: u64, incoming: Incoming) {
        match incoming {
            Incoming::Message(Message::Text(text)) => {
                self.text(socket, text.as_str());
                self.resend_if_resumed(socket).await;
            }
            Incoming::Message(Message::Close(frame)) => {
                let code =
                    frame.map_or_else(|| "no code".to_owned(), |f| u16::from(f.code).to_string());
                self.close_codes.insert(socket, code);
            }
            Incoming::Message(_) => {}
            Incoming::Ended(reason) => self.ended(socket, reason).await,
        }
    }

    /// `socket` ended: forgotten if it was closed on purpose, else reported and reconnected.
    pub(super) async fn ended(&mut self, socket: u64, reason: String) {
        let reason = self.close_codes.remove(&socket).unwrap_or(reason);
        let resume_from = self.verifier.last_seq(socket);
        self.verifier.socket_forgotten(socket);
        self.awaiting_connected.remove(&socket);
        if self.closing.remove(&socket) {
            return;
        }
        if self.outgoing.remove(&socket).is_some() {
            self.plan.live.sockets.fetch_sub(1, Ordering::Relaxed);
        }
        self.report(Report::Dropped(reason));
        if self.reconnects_left > 0 && !self.gave_up {
            self.reconnects_left -= 1;
            if let Some(new_socket) = self.connect(resume_from).await {
                self.report(Report::Reconnected);
                // Messages sent on the dropped socket and not yet accepted may never have
                // reached the server: once the new socket's replay is done, they are sent again
                // under the same id (one that was accepted is answered with its acceptance).
                let unanswered: Vec<String> = self
                    .pending
                    .keys()
                    .filter(|id| self.sent_on.get(*id) == Some(&socket))
                    .cloned()
                    .collect();
                if !unanswered.is_empty() {
                    self.resend_after_resumed.insert(new_socket, unanswered);
                }
            }
        }
    }
}

/// `read`'s frames tagged with `id`, ending with `Incoming::Ended`.
pub(super) fn tagged(id: u64, read: SplitStream<Socket>) -> BoxStream<'static, (u64, Incoming)> {
    stream::unfold(Some(read), move |state| async move {
        let mut read = state?;
        match read.next().await {
            Some(Ok(message)) => Some(((id, Incoming::Message(message)), Some(read))),
            Some(Err(e)) => Some(((id, Incoming::Ended(e.to_string())), None)),
            None => Some(((id, Incoming::Ended("eof".to_owned())), None)),
        }
    })
    .boxed()
}
