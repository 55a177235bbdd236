//! `Frame`: the fields of a server frame a load test reads, parsed once per frame without
//! copying strings (JSON escapes aside). Everything else in the frame is skipped.

use std::borrow::Cow;

use serde::Deserialize;

use crate::protocol::EventKind;

/// A server frame, as much of it as the load test needs.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    /// `type`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// `seq` of a sequenced event.
    pub seq: Option<i64>,
    /// `ts` of a sequenced event: server time, epoch ms.
    pub ts: Option<i64>,
    /// `run_id` of a run's event.
    #[serde(borrow)]
    pub run_id: Option<Cow<'a, str>>,
    /// `thread_id` of a sequenced event.
    #[serde(borrow)]
    pub thread_id: Option<Cow<'a, str>>,
    /// `user_id` of `connected`.
    #[serde(borrow)]
    pub user_id: Option<Cow<'a, str>>,
    /// `last_seq` of `connected`.
    pub last_seq: Option<i64>,
    /// `code` of an `error` frame.
    #[serde(borrow)]
    pub code: Option<Cow<'a, str>>,
    /// `ref` of an `error` frame: the `client_msg_id`, `run_id` or `approval_id` it is about.
    #[serde(rename = "ref", borrow)]
    pub ref_id: Option<Cow<'a, str>>,
    /// `data`, for `run_failed`'s code and the acceptance's `client_msg_id`.
    #[serde(borrow)]
    pub data: Option<FrameData<'a>>,
}

/// The part of an event's `data` a load test reads.
#[derive(Debug, Deserialize)]
pub struct FrameData<'a> {
    /// `run_failed.data.code`.
    #[serde(borrow)]
    pub code: Option<Cow<'a, str>>,
    /// The `client_msg_id` of the message a run's first events answer.
    #[serde(borrow)]
    pub client_msg_id: Option<Cow<'a, str>>,
}

impl Frame<'_> {
    /// The event's kind, if it is an event enclave knows.
    pub fn event_kind(&self) -> Option<EventKind> {
        EventKind::from_wire(&self.kind)
    }

    /// Whether this event accepts a run (`run_started` or `run_queued`).
    pub fn is_acceptance(&self) -> bool {
        matches!(
            self.event_kind(),
            Some(EventKind::RunStarted | EventKind::RunQueued)
        )
    }

    /// The `client_msg_id` this event accepts, if it is a run's acceptance answering a message
    /// that had one.
    pub fn acceptance_of(&self) -> Option<&str> {
        if !self.is_acceptance() {
            return None;
        }
        self.data.as_ref()?.client_msg_id.as_deref()
    }

    /// Whether this event ends its run.
    pub fn is_terminal(&self) -> bool {
        self.event_kind().is_some_and(EventKind::is_terminal)
    }
}
