//! The session's children: a run's supervisor starts once its `run_started` is durable, with
//! the session's address as its only way back, and every supervisor stops when the session
//! stops, whatever stops it (`Children` is dropped with the session, also on a panic).

use std::collections::HashMap;

use actix::prelude::*;

use super::UserSession;
use crate::context::{RunId, UserContext};
use crate::runtime::run_events::RunEvents;
use crate::runtime::run_slots::Acquire;
use crate::runtime::run_supervisor::{AbortRun, RunSupervisor};
use crate::runtime::session::run_table::RunStart;

/// The supervisors of a session's runs: its children. Dropping the session (a normal stop, or
/// a panic that skips `stopped`) drops this, which stops every one of them.
#[derive(Default)]
pub(super) struct Children(HashMap<RunId, Addr<RunSupervisor>>);

impl Children {
    /// Sends `message` to `run_id`'s supervisor, if it has one.
    pub(super) fn tell<M>(&self, run_id: RunId, message: M)
    where
        M: Message<Result = ()> + Send + 'static,
        RunSupervisor: Handler<M>,
    {
        if let Some(supervisor) = self.0.get(&run_id) {
            supervisor.do_send(message);
        }
    }

    /// Stops `run_id`'s supervisor without a word.
    pub(super) fn abort(&mut self, run_id: RunId) {
        if let Some(supervisor) = self.0.remove(&run_id) {
            supervisor.do_send(AbortRun);
        }
    }

    /// `run_id` left the session; its supervisor has stopped on its own.
    pub(super) fn forget(&mut self, run_id: RunId) {
        self.0.remove(&run_id);
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for supervisor in self.0.values() {
            supervisor.do_send(AbortRun);
        }
    }
}

impl UserSession {
    /// Asks `RunSlots` for a slot for `run_id`.
    pub(super) fn acquire_slot(&mut self, ctx: &mut Context<Self>, run_id: RunId) {
        let acquire = self.deps.slots.send(Acquire {
            user_id: self.user_id.clone(),
            run_id,
            notify: ctx.address().recipient(),
        });
        ctx.spawn(acquire.into_actor(self).map(move |answer, act, ctx| {
            act.core.slot_answered(run_id, answer.map_err(|_| ()));
            act.perform(ctx);
        }));
    }

    /// Starts the supervisor of a run whose `run_started` is durable, as this session's child.
    pub(super) fn start_supervisor(&mut self, ctx: &mut Context<Self>, start: RunStart) {
        let RunStart {
            run_id,
            thread_id,
            content,
            client_msg_id,
        } = start;
        let user_ctx = UserContext::new(
            self.user_id.clone(),
            thread_id,
            run_id,
            client_msg_id.as_deref(),
        );
        let session = ctx.address();
        let events = RunEvents::new(
            session.clone().recipient(),
            session.clone().recipient(),
            thread_id,
            run_id,
            self.deps.metrics.events_in_flight.clone(),
        );
        let supervisor = RunSupervisor::new(
            user_ctx,
            content,
            self.deps.clone(),
            events,
            session.recipient(),
        )
        .start();
        self.children.0.insert(run_id, supervisor);
    }
}
