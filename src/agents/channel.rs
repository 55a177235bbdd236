//! `RunChannel`: the only way out of an agent — events, approval requests and checkpoints,
//! bound to one run of one user. The runtime implements it (`runtime::run_events`); agents see
//! it only through `AgentContext`, so they depend on no actor, session or socket.
//!
//! The surface is kept narrow on purpose: one `emit` for every event an agent sends, so a
//! change of how events are typed is one change here and one in the runtime's implementation.

use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use crate::protocol::{ApprovalOutcome, EventPayload};

/// What an agent asks the user to consent to (`approval_required`).
#[derive(Debug, Clone, PartialEq)]
pub struct Consent {
    /// What will happen if approved; with `details`, what a run remembers an approval by.
    pub action: String,
    /// A sentence for the user.
    pub summary: String,
    /// The specifics the user consents to, as the approval card shows them.
    pub details: Value,
}

/// The run an agent works for: where its events, approval requests and checkpoints go.
///
/// An implementation is bound to one run of one user (and, for an attempt, to that attempt), so
/// nothing an agent sends through it can reach another run, thread or user.
pub trait RunChannel: Send + Sync + 'static {
    /// Sends one event of `agent` in this run to the user's session; never blocks, and the
    /// events of one channel arrive in the order sent.
    fn emit(&self, agent: &'static str, payload: EventPayload);

    /// Asks the user's consent for `action` on behalf of `agent` and resolves with the answer;
    /// `Cancelled` when the run is being stopped or the request could not be delivered.
    fn request_approval(
        &self,
        agent: &'static str,
        consent: Consent,
    ) -> LocalBoxFuture<'static, ApprovalOutcome>;

    /// Leaves `state` for a restart of the calling agent in this run to continue from; the
    /// last one left counts.
    fn checkpoint(&self, state: Value);
}
