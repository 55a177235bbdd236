//! When a run executes: at most `max_running_per_user` of a user's runs hold or wait for a
//! server slot at once (a run awaiting approval counts), the rest wait in the user's queue;
//! every run needs one of the server's slots (`RunSlots`), which go round the users fairly.
//!
//! How a run ends is recorded here too (`push_run_end`): its terminal event and its row
//! change in one batch, its slot released, a pending approval cancelled.
//!
//! Acceptance stores `thread_created`, `message_received` and `run_started` or `run_queued`
//! (`user_limit` or `server_busy`) together; a queued run is announced with `run_started` when
//! it gets its slot.

use actix::prelude::*;
use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::context::{ConnectionId, RunId, ThreadId, UserContext};
use crate::error::ErrorCode;
use crate::protocol::{ApprovalOutcome, EventKind, FrameError, RunStatus, UserMessage};
use crate::runtime::run_events::RunEvents;
use crate::runtime::run_slots::{Acquire, Release, SlotAnswer, SlotGranted};
use crate::runtime::run_supervisor::{RunOutcome, RunSupervisor};
use crate::runtime::session::{Acquiring, Awaiting, LiveRun, RunPhase, UserSession};
use crate::store::batch::WriteOp;
use crate::store::repo::runs::RunEnd;

/// How a run enters the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acceptance {
    Start,
    Queued(&'static str),
}

impl UserSession {
    /// Runs holding or waiting for a server slot.
    fn occupying(&self) -> usize {
        self.runs.values().filter(|r| r.holds_user_slot()).count()
    }

    fn queued(&self) -> usize {
        self.runs.values().filter(|r| r.is_queued()).count()
    }

    /// Accepts a message on `thread` (a new one when `None`), then finishes its admission.
    pub(super) fn accept(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        message: UserMessage,
        thread: Option<ThreadId>,
    ) {
        let config = &self.deps.config;
        let (occupying, queued) = (self.occupying(), self.queued());
        let run_id = RunId::new();
        if occupying < config.max_running_per_user {
            let acquire = self.deps.slots.send(Acquire {
                user_id: self.user_id.clone(),
                run_id,
                notify: ctx.address().recipient(),
            });
            self.acquiring = Some(Acquiring {
                run_id,
                granted: false,
            });
            ctx.spawn(acquire.into_actor(self).map(move |answer, act, ctx| {
                let granted_early = act.acquiring.take().is_some_and(|a| a.granted);
                let acceptance = match answer {
                    Ok(SlotAnswer::Granted) => Acceptance::Start,
                    Ok(SlotAnswer::Waiting) if granted_early => Acceptance::Start,
                    Ok(SlotAnswer::Waiting) => Acceptance::Queued("server_busy"),
                    Err(_) => {
                        let error = FrameError::new(ErrorCode::Unavailable, "shutting down");
                        let key = message.client_msg_id.clone();
                        act.release_msg_id(key.as_deref(), Some(conn_id), error);
                        return act.admission_finished(ctx);
                    }
                };
                act.record_acceptance(ctx, conn_id, run_id, message, thread, acceptance);
                act.admission_finished(ctx);
            }));
            return;
        }
        if queued >= config.max_queued_per_user {
            let mut error = FrameError::new(
                ErrorCode::RateLimited,
                format!(
                    "{occupying} runs are executing and {queued} queued, the most allowed; \
                     wait for one to finish"
                ),
            );
            if let Some(id) = &message.client_msg_id {
                error = error.with_ref(id.clone());
            }
            let key = message.client_msg_id.clone();
            self.release_msg_id(key.as_deref(), Some(conn_id), error);
            return self.admission_finished(ctx);
        }
        let acceptance = Acceptance::Queued("user_limit");
        self.record_acceptance(ctx, conn_id, run_id, message, thread, acceptance);
        self.admission_finished(ctx);
    }

    /// Stores the acceptance events and starts or queues the run.
    fn record_acceptance(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        run_id: RunId,
        message: UserMessage,
        thread: Option<ThreadId>,
        acceptance: Acceptance,
    ) {
        let now = now_ms();
        let with_msg_id = |data: Value| with_client_msg_id(data, message.client_msg_id.as_deref());
        let thread_id = match thread {
            Some(thread_id) => thread_id,
            None => {
                let thread_id = ThreadId::new();
                let title = thread_title(&message.content);
                let op = WriteOp::CreateThread {
                    thread_id,
                    title: title.clone(),
                    ts: now,
                };
                let data = with_msg_id(json!({ "title": title }));
                let kind = EventKind::ThreadCreated;
                self.push(thread_id, Some(run_id), None, kind, data, Some(op));
                self.known_threads.insert(thread_id);
                thread_id
            }
        };
        let data = with_msg_id(json!({ "content": message.content }));
        let kind = EventKind::MessageReceived;
        self.push(thread_id, Some(run_id), None, kind, data, None);
        let (status, kind, data) = match acceptance {
            Acceptance::Start => {
                let plan = self.deps.pipeline.names();
                let data = with_msg_id(json!({ "plan": plan }));
                (RunStatus::Running, EventKind::RunStarted, data)
            }
            Acceptance::Queued(reason) => {
                let position = self.queued() + 1;
                let data = with_msg_id(json!({ "position": position, "reason": reason }));
                (RunStatus::Queued, EventKind::RunQueued, data)
            }
        };
        let op = WriteOp::CreateRun {
            run_id,
            thread_id,
            status,
            content: message.content.clone(),
            client_msg_id: message.client_msg_id.clone(),
            accept_seq: 0,
            ts: now,
        };
        self.push(thread_id, Some(run_id), None, kind, data, Some(op));
        self.accepted_runs += 1;
        let client_msg_id = message.client_msg_id.as_deref();
        let phase = match acceptance {
            Acceptance::Start => {
                self.spawn_supervisor(ctx, run_id, thread_id, message.content, client_msg_id)
            }
            Acceptance::Queued(reason) => {
                self.deps.metrics.queued_runs.inc();
                RunPhase::Queued {
                    content: message.content,
                    awaiting: if reason == "server_busy" {
                        Awaiting::ServerSlot
                    } else {
                        Awaiting::UserSlot
                    },
                }
            }
        };
        self.runs.insert(
            run_id,
            LiveRun {
                thread_id,
                phase,
                order: self.accepted_runs,
                accepted: false,
                origin: conn_id,
                client_msg_id: message.client_msg_id,
                parked_reply: None,
            },
        );
        self.flush(ctx);
    }

    /// Moves queued runs, oldest first, from the user's queue to the server's while the user
    /// has room; each starts when it gets its slot.
    pub(super) fn promote(&mut self, ctx: &mut Context<Self>) {
        while self.occupying() < self.deps.config.max_running_per_user {
            let next = self
                .runs
                .iter_mut()
                .filter(|(_, run)| {
                    matches!(
                        run.phase,
                        RunPhase::Queued {
                            awaiting: Awaiting::UserSlot,
                            ..
                        }
                    )
                })
                .min_by_key(|(_, run)| run.order);
            let Some((run_id, run)) = next else {
                return;
            };
            let run_id = *run_id;
            if let RunPhase::Queued { awaiting, .. } = &mut run.phase {
                *awaiting = Awaiting::ServerSlot;
            }
            let acquire = self.deps.slots.send(Acquire {
                user_id: self.user_id.clone(),
                run_id,
                notify: ctx.address().recipient(),
            });
            ctx.spawn(acquire.into_actor(self).map(move |answer, act, ctx| {
                if let Ok(SlotAnswer::Granted) = answer {
                    act.start_granted(ctx, run_id);
                }
            }));
        }
    }

    /// `run_id` has a server slot: start it, or give the slot back if it is gone.
    fn start_granted(&mut self, ctx: &mut Context<Self>, run_id: RunId) {
        if let Some(acquiring) = self.acquiring.as_mut().filter(|a| a.run_id == run_id) {
            // Not yet accepted: `accept` starts it when the answer to its request arrives.
            acquiring.granted = true;
            return;
        }
        let Some(run) = self.runs.get_mut(&run_id) else {
            return self.deps.slots.do_send(Release { run_id });
        };
        let RunPhase::Queued { .. } = &run.phase else {
            return self.deps.slots.do_send(Release { run_id });
        };
        let RunPhase::Queued { content, .. } = std::mem::replace(&mut run.phase, RunPhase::Ending)
        else {
            return;
        };
        self.deps.metrics.queued_runs.dec();
        let thread_id = run.thread_id;
        let client_msg_id = run.client_msg_id.clone();
        let plan = json!({ "plan": self.deps.pipeline.names() });
        let data = with_client_msg_id(plan, client_msg_id.as_deref());
        let op = WriteOp::MarkRunning {
            run_id,
            thread_id,
            ts: now_ms(),
        };
        self.push(
            thread_id,
            Some(run_id),
            None,
            EventKind::RunStarted,
            data,
            Some(op),
        );
        let phase =
            self.spawn_supervisor(ctx, run_id, thread_id, content, client_msg_id.as_deref());
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.phase = phase;
        }
        self.flush(ctx);
    }

    fn spawn_supervisor(
        &self,
        ctx: &mut Context<Self>,
        run_id: RunId,
        thread_id: ThreadId,
        content: String,
        client_msg_id: Option<&str>,
    ) -> RunPhase {
        let user_ctx = UserContext::new(self.user_id.clone(), thread_id, run_id, client_msg_id);
        let session = ctx.address();
        let events = RunEvents::new(
            session.clone().recipient(),
            session.recipient(),
            thread_id,
            run_id,
            self.deps.metrics.events_in_flight.clone(),
        );
        let supervisor = RunSupervisor::new(
            user_ctx,
            content,
            self.deps.clone(),
            events,
            ctx.address().recipient(),
        )
        .start();
        RunPhase::Running { supervisor }
    }
}

impl UserSession {
    /// Records how a run ended: its terminal event and its row change, in one batch.
    pub(super) fn push_run_end(
        &mut self,
        ctx: &mut Context<Self>,
        run_id: RunId,
        thread_id: ThreadId,
        outcome: RunOutcome,
    ) {
        if let Some(approval_id) = self.approval_of(run_id) {
            self.resolve_approval(ctx, approval_id, ApprovalOutcome::Cancelled);
        }
        if let Some(run) = self.runs.get_mut(&run_id) {
            if run.is_queued() {
                self.deps.metrics.queued_runs.dec();
            }
            if run.holds_user_slot() {
                self.deps.slots.do_send(Release { run_id });
            }
            run.phase = RunPhase::Ending;
        }
        let (kind, data, end) = match outcome {
            RunOutcome::Completed(answer) => {
                let end = RunEnd {
                    status: RunStatus::Completed,
                    finished_at: now_ms(),
                    error: None,
                    result: Some(answer.result.to_string()),
                    report_markdown: Some(answer.report_markdown.clone()),
                };
                let data = json!({
                    "summary": answer.summary,
                    "report_markdown": answer.report_markdown,
                    "result": answer.result,
                });
                (EventKind::RunCompleted, data, end)
            }
            RunOutcome::Failed { code, error } => {
                let end = RunEnd {
                    status: RunStatus::Failed,
                    finished_at: now_ms(),
                    error: Some(error.clone()),
                    result: None,
                    report_markdown: None,
                };
                (
                    EventKind::RunFailed,
                    json!({ "error": error, "code": code }),
                    end,
                )
            }
            RunOutcome::Interrupted { reason } => {
                let end = RunEnd {
                    status: RunStatus::Interrupted,
                    finished_at: now_ms(),
                    error: None,
                    result: None,
                    report_markdown: None,
                };
                (EventKind::RunInterrupted, json!({ "reason": reason }), end)
            }
            RunOutcome::Cancelled { reason } => {
                let end = RunEnd {
                    status: RunStatus::Cancelled,
                    finished_at: now_ms(),
                    error: None,
                    result: None,
                    report_markdown: None,
                };
                (EventKind::RunCancelled, json!({ "reason": reason }), end)
            }
        };
        self.deps
            .metrics
            .runs
            .with_label_values(&[end.status.as_str()])
            .inc();
        let op = WriteOp::FinishRun {
            run_id,
            thread_id,
            end,
        };
        self.push(thread_id, Some(run_id), None, kind, data, Some(op));
    }
}

/// A queued run got its server slot.
impl Handler<SlotGranted> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: SlotGranted, ctx: &mut Context<Self>) {
        self.start_granted(ctx, msg.run_id);
    }
}

/// `data` with the client's `client_msg_id`, which the first three events of a run carry.
fn with_client_msg_id(mut data: Value, client_msg_id: Option<&str>) -> Value {
    if let (Some(id), Some(object)) = (client_msg_id, data.as_object_mut()) {
        object.insert("client_msg_id".into(), json!(id));
    }
    data
}

/// A thread's title: the first line of its first message, at most 80 characters.
fn thread_title(content: &str) -> String {
    let first_line = content.lines().next().unwrap_or_default().trim();
    let mut title: String = first_line.chars().take(80).collect();
    if first_line.chars().count() > 80 {
        title.push('…');
    }
    title
}
