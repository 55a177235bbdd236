//! The actor runtime: `SessionRegistry` → `UserSession` (one per user) → `RunSupervisor` (one
//! per run) → agent runners. Isolation between users is the actor boundary: a user's state
//! lives in that user's session and nowhere else.

pub mod agent_runner;
pub mod attempt_failure;
pub mod attempt_timer;
pub mod cluster;
pub mod housekeeper;
pub mod pipeline;
pub mod rate_limit;
pub mod refusal;
pub mod registry;
pub mod restart_intensity;
pub mod revocations;
pub mod run_events;
pub mod run_memory;
pub mod run_slots;
pub mod run_supervisor;
pub mod session;
pub mod shutdown;
pub mod socket;
