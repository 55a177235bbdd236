//! Several nodes on one PostgreSQL database (DESIGN.md §8). Each user's session is owned by one
//! node at a time (`store/leases.rs`); a node holding sockets of a user another node owns runs
//! a *follower* session for them, which reads the user's events from the database when the
//! owner's batches notify it, and relays its sockets' requests to the owner as mail. This
//! module is the transport: `mail.rs` (what nodes send each other), `mailroom.rs` (sending,
//! taking, asking, and which nodes live), `listener.rs` (the thread that hears PostgreSQL's
//! notifications). Nothing here exists on SQLite, which has one node.
//!
//! PostgreSQL `LISTEN/NOTIFY` rather than NATS: the database is already the one thing every
//! node shares, a notification is sent by the very transaction that stores what it announces
//! (so a follower is never told of an event that is not durable), and a cluster needs no
//! second service to run, secure and monitor.

pub mod listener;
pub mod mail;
pub mod mailroom;

use std::sync::Arc;

use actix::prelude::*;

use crate::context::UserId;
use mail::Mail;

/// A letter from node `from` about a user: for that user's session on this node (started if
/// the letter asks something of it).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct FromNode {
    /// The sending node.
    pub from: String,
    /// The letter.
    pub mail: Mail,
}

/// A batch of `user`'s events was stored (a notification): their follower reads it.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct EventsStored {
    /// The user, by the key their account stores under.
    pub user: UserId,
}

/// Nodes whose lease is gone: followers of their users close their sockets (which reconnect and
/// claim the user), owners forget those nodes' sockets and uploads.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct NodesLost {
    /// The lost nodes' ids.
    pub nodes: Arc<[String]>,
}

/// This node's lease ran out before it was renewed (the process was paused, or cut off): every
/// owner session checks that its claim is still the latest, and stops if another node's is.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct CheckLeases;

/// Notifications may have been missed (the listener reconnected): every follower reads again.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct CatchUp;
