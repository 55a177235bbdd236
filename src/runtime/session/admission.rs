//! `Admission`: the way in for a user's messages. Messages are admitted one at a time in
//! arrival order (admitting one may wait for the database), and a `client_msg_id` is claimed
//! while its message's fate is open, so two copies of one message (two tabs, a retry) can
//! never both start a run: a repeat waits for the first one's acceptance event and gets a
//! copy of it. Plain state, unit-tested below.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::context::ConnectionId;
use crate::protocol::UserMessage;

/// A `client_msg_id` whose message is being admitted or whose run is live.
struct Claim {
    /// The first message's content; a repeat with other content is a `conflict`.
    content: String,
    /// The stored acceptance event, once durable.
    acceptance: Option<Arc<str>>,
    /// Sockets that sent a repeat before the acceptance was stored.
    waiters: Vec<ConnectionId>,
}

/// What claiming a message id found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimResult {
    /// The id is new to the session: the message goes on (the database may still know it).
    New,
    /// The id names another message.
    Conflict,
    /// The id's run is accepted: answer with this copy of its acceptance event.
    Copy(Arc<str>),
    /// The id's message is being admitted: the asker waits for its acceptance.
    Waiting,
}

/// A message waiting for its turn.
pub(crate) type Queued = (ConnectionId, UserMessage);

/// The admission queue and the message-id claims of one user.
#[derive(Default)]
pub(crate) struct Admission {
    /// Messages behind the one being admitted, in arrival order.
    queue: VecDeque<Queued>,
    /// A message is being admitted.
    admitting: bool,
    /// Claimed `client_msg_id`s.
    claims: HashMap<String, Claim>,
}

impl Admission {
    /// Nothing is being admitted, waits, or holds a claim.
    pub(crate) fn is_idle(&self) -> bool {
        !self.admitting && self.queue.is_empty() && self.claims.is_empty()
    }

    /// Queues a message; returns the message to admit now if none was being admitted.
    pub(crate) fn arrive(&mut self, conn_id: ConnectionId, message: UserMessage) -> Option<Queued> {
        self.queue.push_back((conn_id, message));
        if self.admitting {
            return None;
        }
        self.next()
    }

    /// The message being admitted is settled; returns the next one to admit.
    pub(crate) fn next(&mut self) -> Option<Queued> {
        let next = self.queue.pop_front();
        self.admitting = next.is_some();
        next
    }

    /// Takes every waiting message (the server is shutting down).
    pub(crate) fn take_waiting(&mut self) -> Vec<Queued> {
        self.queue.drain(..).collect()
    }

    /// Claims `key` for a message with `content` sent on `conn_id`.
    pub(crate) fn claim(&mut self, key: &str, content: &str, conn_id: ConnectionId) -> ClaimResult {
        let Some(claim) = self.claims.get_mut(key) else {
            self.claims.insert(
                key.to_owned(),
                Claim {
                    content: content.to_owned(),
                    acceptance: None,
                    waiters: Vec::new(),
                },
            );
            return ClaimResult::New;
        };
        if claim.content != content {
            return ClaimResult::Conflict;
        }
        match &claim.acceptance {
            Some(frame) => ClaimResult::Copy(frame.clone()),
            None => {
                claim.waiters.push(conn_id);
                ClaimResult::Waiting
            }
        }
    }

    /// The message holding `key` was not admitted (or the database answered for it): the
    /// claim goes, and the sockets that waited on it are returned.
    pub(crate) fn release(&mut self, key: Option<&str>) -> Vec<ConnectionId> {
        key.and_then(|k| self.claims.remove(k))
            .map(|claim| claim.waiters)
            .unwrap_or_default()
    }

    /// The acceptance event of the run holding `key` is stored: later repeats get `frame`,
    /// and the sockets that waited are returned to be sent it.
    pub(crate) fn accepted(&mut self, key: &str, frame: Arc<str>) -> Vec<ConnectionId> {
        let Some(claim) = self.claims.get_mut(key) else {
            return Vec::new();
        };
        claim.acceptance = Some(frame);
        std::mem::take(&mut claim.waiters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(content: &str) -> UserMessage {
        UserMessage {
            content: content.into(),
            thread_id: None,
            client_msg_id: None,
        }
    }

    #[test]
    fn admits_one_at_a_time_in_order() {
        let mut admission = Admission::default();
        let conn = ConnectionId::new();
        let first = admission.arrive(conn, message("a")).map(|(_, m)| m.content);
        assert_eq!(first.as_deref(), Some("a"));
        assert!(admission.arrive(conn, message("b")).is_none());
        assert!(admission.arrive(conn, message("c")).is_none());
        let next = admission.next().map(|(_, m)| m.content);
        assert_eq!(next.as_deref(), Some("b"));
        assert_eq!(admission.take_waiting().len(), 1);
        assert!(admission.next().is_none());
        assert!(admission.is_idle());
    }

    #[test]
    fn a_repeated_id_waits_for_the_acceptance_then_gets_copies() {
        let mut admission = Admission::default();
        let (first, second, third) = (
            ConnectionId::new(),
            ConnectionId::new(),
            ConnectionId::new(),
        );
        assert_eq!(admission.claim("m1", "hi", first), ClaimResult::New);
        assert_eq!(admission.claim("m1", "hi", second), ClaimResult::Waiting);
        assert_eq!(admission.claim("m1", "other", third), ClaimResult::Conflict);
        let frame: Arc<str> = Arc::from("{\"type\":\"run_started\"}");
        assert_eq!(admission.accepted("m1", frame.clone()), [second]);
        assert_eq!(admission.claim("m1", "hi", third), ClaimResult::Copy(frame));
        assert!(admission.release(Some("m1")).is_empty());
        assert_eq!(admission.claim("m1", "other", third), ClaimResult::New);
    }

    #[test]
    fn a_released_claim_returns_its_waiters() {
        let mut admission = Admission::default();
        let (first, second) = (ConnectionId::new(), ConnectionId::new());
        assert_eq!(admission.claim("m1", "hi", first), ClaimResult::New);
        assert_eq!(admission.claim("m1", "hi", second), ClaimResult::Waiting);
        assert_eq!(admission.release(Some("m1")), [second]);
        assert!(admission.release(None).is_empty());
    }
}
