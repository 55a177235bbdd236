//! `RunEvents`: the only way a run's supervisor and agents emit events or ask for the user's
//! consent, bound to one run of one user's session; agents reach it as their `RunChannel`.
//! An agent's copy is also bound to its attempt (`AttemptLink`): each event it emits tells the
//! supervisor the attempt is alive (its silence deadline moves on), and its approvals and
//! checkpoints go through the supervisor, which remembers them for the run's restarts.

use actix::Recipient;
use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use crate::agents::{Consent, RunChannel};
use crate::context::{RunId, ThreadId};
use crate::protocol::{ApprovalOutcome, EventPayload};
use crate::runtime::attempt_timer::AttemptActive;
use crate::runtime::run_memory::{AskApproval, AttemptCheckpoint};
use crate::runtime::session::{Emit, RequestApproval};
use prometheus::IntGauge;
use tokio::sync::oneshot;

/// One attempt of one agent, and the supervisor that awaits it.
#[derive(Clone)]
pub struct AttemptLink {
    /// The plan step: with `attempt`, it tags each message, so a stale attempt's are ignored.
    step: usize,
    /// Which attempt of the step, the other half of that tag.
    attempt: u32,
    /// The supervisor, told of each event, which moves the attempt's silence deadline.
    active: Recipient<AttemptActive>,
    /// The supervisor, which keeps the attempt's checkpoint for a restart of its agent.
    checkpoints: Recipient<AttemptCheckpoint>,
    /// The supervisor, which asks the user only for what this run has not approved already.
    approvals: Recipient<AskApproval>,
}

impl AttemptLink {
    /// The supervisor's link to an attempt it starts, tagged with its step and number.
    pub fn new(
        step: usize,
        attempt: u32,
        active: Recipient<AttemptActive>,
        checkpoints: Recipient<AttemptCheckpoint>,
        approvals: Recipient<AskApproval>,
    ) -> Self {
        Self {
            step,
            attempt,
            active,
            checkpoints,
            approvals,
        }
    }
}

#[derive(Clone)]
/// A run's way to its session, cloned for each attempt; agents see it only as `RunChannel`.
pub struct RunEvents {
    /// Counts events on their way to the session.
    in_flight: IntGauge,
    /// The run's session, which numbers, stores and fans out each event.
    session: Recipient<Emit>,
    /// The session again, asked directly only by the supervisor's copy (attempts use their link).
    approvals: Recipient<RequestApproval>,
    /// The run's thread, sent with each event so the session can check the run executes there.
    thread_id: ThreadId,
    /// The run every event and request is for: the session drops them once it no longer executes.
    run_id: RunId,
    /// Set on an agent attempt's copy; the supervisor's own copy has none.
    attempt: Option<AttemptLink>,
}

impl RunEvents {
    /// The emitter the session builds for each supervisor; `in_flight` is the server-wide gauge.
    pub fn new(
        session: Recipient<Emit>,
        approvals: Recipient<RequestApproval>,
        thread_id: ThreadId,
        run_id: RunId,
        in_flight: IntGauge,
    ) -> Self {
        Self {
            in_flight,
            session,
            approvals,
            thread_id,
            run_id,
            attempt: None,
        }
    }

    /// This emitter for one attempt of an agent: its events also reach the supervisor as signs
    /// of life, and its approvals and checkpoints go through the supervisor.
    pub fn for_attempt(&self, link: AttemptLink) -> Self {
        Self {
            attempt: Some(link),
            ..self.clone()
        }
    }

    /// Asks the user's consent for `action` and waits for the answer. A dropped request (the
    /// run was cancelled or the session stopped) reads as `Cancelled`. An attempt asks its
    /// supervisor, which answers at once what the user already approved in this run.
    pub async fn request_approval(&self, agent: &str, consent: Consent) -> ApprovalOutcome {
        let Consent {
            action,
            summary,
            details,
        } = consent;
        let (reply, answer) = oneshot::channel();
        match &self.attempt {
            Some(link) => link.approvals.do_send(AskApproval {
                step: link.step,
                attempt: link.attempt,
                agent: agent.to_owned(),
                action,
                summary,
                details,
                reply,
            }),
            None => self.approvals.do_send(RequestApproval {
                run_id: self.run_id,
                thread_id: self.thread_id,
                agent: agent.to_owned(),
                action,
                summary,
                details,
                reply,
            }),
        }
        answer.await.unwrap_or(ApprovalOutcome::Cancelled)
    }

    /// Leaves `state` with the supervisor for a restart of this attempt's agent to continue
    /// from (nothing without an attempt).
    pub fn checkpoint(&self, state: Value) {
        if let Some(link) = &self.attempt {
            link.checkpoints.do_send(AttemptCheckpoint {
                step: link.step,
                attempt: link.attempt,
                state,
            });
        }
    }

    /// Sends one event of this run to its session (never blocks; the session's mailbox keeps
    /// the run's events in emission order).
    pub fn emit(&self, payload: impl Into<EventPayload>, agent: Option<&str>) {
        self.in_flight.inc();
        self.session.do_send(Emit {
            run_id: self.run_id,
            thread_id: self.thread_id,
            agent: agent.map(str::to_owned),
            payload: payload.into(),
        });
        if let Some(link) = &self.attempt {
            link.active.do_send(AttemptActive {
                step: link.step,
                attempt: link.attempt,
            });
        }
    }
}

/// What an agent's `AgentContext` sends through: the attempt's copy of the run's emitter.
impl RunChannel for RunEvents {
    fn emit(&self, agent: &'static str, payload: EventPayload) {
        RunEvents::emit(self, payload, Some(agent));
    }

    fn request_approval(
        &self,
        agent: &'static str,
        consent: Consent,
    ) -> LocalBoxFuture<'static, ApprovalOutcome> {
        let events = self.clone();
        Box::pin(async move { RunEvents::request_approval(&events, agent, consent).await })
    }

    fn checkpoint(&self, state: Value) {
        RunEvents::checkpoint(self, state);
    }
}
