//! The mail nodes send each other through the database (`store/cluster.rs`): a follower relays
//! a socket's request, or an HTTP request's question, to the node that owns the user; the owner
//! sends back the frames meant for that one socket, and the answer. The stream of events never
//! travels as mail: followers read it from the `events` table when notified. Frames for one
//! socket may hold a stored event (the copy of an acceptance that answers a repeated
//! `client_msg_id`): they carry the owner's last stored `seq`, and the follower holds them
//! until it has delivered that far, so a copy never arrives before the events it follows.
//!
//! Users are named by subject (the registry's key on every node); ids travel in their text
//! form. Mail is written and read only by enclave nodes on the same database.

use serde::{Deserialize, Serialize};

use crate::context::{ConnectionId, ThreadId};
use crate::protocol::{ApprovalDecision, UserMessage};
use crate::runtime::refusal::Refusal;

/// One letter's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mail {
    /// A socket on `reply_to` asks the user's owner something (`Command`).
    Command {
        /// The user (their subject).
        user: String,
        /// The node holding the socket, where the frames for it go.
        reply_to: String,
        /// The socket.
        conn: ConnectionId,
        /// What it asks.
        command: Command,
    },
    /// Frames for one socket of the addressee (errors, a repeat's acceptance copy).
    Frames {
        /// The user (their subject).
        user: String,
        /// The socket.
        conn: ConnectionId,
        /// The owner's last stored `seq` when it sent them: they follow every event up to it.
        after: i64,
        /// The frames, in order.
        frames: Vec<String>,
    },
    /// An HTTP request on `reply_to` needs the user's session (`Question`).
    Ask {
        /// The user (their subject).
        user: String,
        /// Where the answer goes.
        reply_to: String,
        /// Tells the answer to this question from others; `None` wants no answer.
        ask: Option<u64>,
        /// The question.
        question: Question,
    },
    /// The user's account was deleted: the addressee's sockets of the user close (4009).
    AccountDeleted {
        /// The user (their subject).
        user: String,
    },
    /// The answer to `Ask { ask }`.
    Answer {
        /// The question's number.
        ask: u64,
        /// The owner's answer.
        answer: Answer,
    },
}

impl Mail {
    /// The user the mail is about, if any (answers go to the asker, not to a session).
    pub fn user(&self) -> Option<&str> {
        match self {
            Mail::Command { user, .. }
            | Mail::Frames { user, .. }
            | Mail::Ask { user, .. }
            | Mail::AccountDeleted { user } => Some(user),
            Mail::Answer { .. } => None,
        }
    }
}

/// What a socket on a follower asks the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// `user_message`, validated by the socket.
    Message {
        /// The message.
        message: UserMessage,
    },
    /// `cancel_run`.
    CancelRun {
        /// The id as the client sent it.
        id: String,
    },
    /// `approval`.
    Approval {
        /// The id as the client sent it.
        id: String,
        /// The decision.
        decision: ApprovalDecision,
    },
    /// The socket has gone: the owner forgets where its frames went.
    Detached,
}

/// What an HTTP request on a follower asks the owner's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "question", rename_all = "snake_case")]
pub enum Question {
    /// May an upload start? Answered `Key`.
    BeginIngest,
    /// The upload that began is over.
    EndIngest,
    /// `DELETE /api/threads/{id}`. Answered `Done`.
    DeleteThread {
        /// The thread.
        thread_id: ThreadId,
    },
    /// `DELETE /api/account`. Answered `Done`.
    DeleteAccount,
}

/// The owner's answer to a `Question`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", content = "result", rename_all = "snake_case")]
pub enum Answer {
    /// The key the account stores under, or why the upload may not start.
    Key(Result<String, Refusal>),
    /// Done, or why not.
    Done(Result<(), Refusal>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_reads_back_as_written() {
        let letters = [
            Mail::Command {
                user: "alice".into(),
                reply_to: "n1".into(),
                conn: ConnectionId::new(),
                command: Command::Message {
                    message: UserMessage {
                        content: "cut my costs".into(),
                        thread_id: Some(ThreadId::new()),
                        client_msg_id: Some("m1".into()),
                    },
                },
            },
            Mail::Ask {
                user: "alice".into(),
                reply_to: "n1".into(),
                ask: Some(7),
                question: Question::DeleteThread {
                    thread_id: ThreadId::new(),
                },
            },
            Mail::Answer {
                ask: 7,
                answer: Answer::Done(Err(Refusal::MessageRate {
                    per_minute: 60,
                    burst: 20,
                    retry_ms: 1500,
                })),
            },
        ];
        for mail in letters {
            let text = serde_json::to_string(&mail).expect("serializes");
            let back: Mail = serde_json::from_str(&text).expect("reads back");
            assert_eq!(back, mail, "{text}");
        }
    }
}
