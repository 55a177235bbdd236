//! The actor runtime: `SessionRegistry` → `UserSession` (one per user) → `RunSupervisor` (one
//! per run) → agent runners. Isolation between users is the actor boundary: a user's state
//! lives in that user's session and nowhere else.

mod admission;
pub mod agent_runner;
pub mod approvals;
pub mod attempt_timer;
mod cancel;
mod delivery;
mod event_log;
pub mod pipeline;
pub mod rate_limit;
pub mod registry;
mod replay;
pub mod run_events;
pub mod run_memory;
pub mod run_slots;
pub mod run_supervisor;
mod scheduling;
pub mod session;
pub mod shutdown;
pub mod socket;
pub mod user_data;
