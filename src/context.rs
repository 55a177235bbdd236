//! Identity values every request carries: `UserId`, `ThreadId`, `RunId` and the immutable
//! `UserContext` built once per request from the authenticated identity.
//!
//! This is enclave's answer to a hand-threaded `UserExecutionContext`: ids are validated
//! newtypes (a placeholder user id cannot be constructed), and every repository function takes
//! a `UserId`, so a query without its user cannot be written.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Ids PROTOCOL.md §1 refuses as a user, compared case-insensitively.
const PLACEHOLDER_USER_IDS: &[&str] = &[
    "none",
    "null",
    "undefined",
    "nil",
    "0",
    "1",
    "default",
    "anonymous",
    "placeholder",
    "registry",
    "system",
    "temp",
    "example",
    "demo",
    "sample",
    "template",
    "mock",
    "fake",
    "dummy",
    "xxx",
    "yyy",
];

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("user id must be 1-128 characters, got {0}")]
    UserIdLength(usize),
    #[error("user id {0:?} may only contain letters, digits and `_.@-`")]
    UserIdCharacters(String),
    #[error("user id {0:?} is a placeholder, not a real user")]
    UserIdPlaceholder(String),
    #[error("{0:?} is not a uuid")]
    NotUuid(String),
}

/// An authenticated user's id (the JWT `sub`). Only `UserId::parse` makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Validates `raw` against PROTOCOL.md §1: length, alphabet and the placeholder list.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let len = raw.chars().count();
        if !(1..=128).contains(&len) {
            return Err(IdError::UserIdLength(len));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-');
        if !raw.chars().all(allowed) {
            return Err(IdError::UserIdCharacters(raw.to_owned()));
        }
        if PLACEHOLDER_USER_IDS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(raw))
        {
            return Err(IdError::UserIdPlaceholder(raw.to_owned()));
        }
        Ok(Self(Arc::from(raw)))
    }

    /// The id as text, as rows and log lines carry it: the subject, followed by `~` and the
    /// account's generation once the account has been deleted at least once.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of this subject's account at `generation`: the subject itself for the first
    /// account, `subject~N` after N deletions (`~` is not allowed in a subject, so a key never
    /// names another user). Rows are stored under the key, so a deleted account's rows are
    /// unreachable from the moment the generation moves on.
    pub fn at_generation(&self, generation: i64) -> Self {
        if generation <= 0 {
            return Self(Arc::from(self.subject()));
        }
        Self(Arc::from(format!("{}~{generation}", self.subject())))
    }

    /// The token's `sub` this key belongs to (the key without its generation).
    pub fn subject(&self) -> &str {
        self.0
            .split_once('~')
            .map_or(&self.0, |(subject, _)| subject)
    }

    /// The generation of the account this key names (0 for the first account).
    pub fn generation(&self) -> i64 {
        self.0
            .split_once('~')
            .and_then(|(_, generation)| generation.parse().ok())
            .unwrap_or(0)
    }

    /// The subject alone, as the wire names the user (`connected.user_id`).
    pub fn subject_id(&self) -> Self {
        self.at_generation(0)
    }

    /// Reads a key back from a row: a valid subject, optionally with `~` and a generation.
    pub fn from_stored(raw: &str) -> Result<Self, IdError> {
        let Some((subject, generation)) = raw.split_once('~') else {
            return Self::parse(raw);
        };
        let subject = Self::parse(subject)?;
        match generation.parse::<i64>() {
            Ok(n) if n > 0 && n.to_string() == generation => Ok(subject.at_generation(n)),
            _ => Err(IdError::UserIdCharacters(raw.to_owned())),
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        /// A random uuid, sent and stored in its hyphenated text form.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// Parses the hyphenated (or simple) uuid text form.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                Uuid::parse_str(raw)
                    .map(Self)
                    .map_err(|_| IdError::NotUuid(raw.to_owned()))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A conversation thread of one user.
    ThreadId
);
uuid_id!(
    /// One request (a `user_message`) and the agents it runs.
    RunId
);
uuid_id!(
    /// One WebSocket connection, so a session can tell its sockets apart.
    ConnectionId
);
uuid_id!(
    /// A step of a run that waits for the user's consent.
    ApprovalId
);

/// Everything that scopes one request: who, which thread and run, which client message, and
/// where in the agent tree. Immutable; sub-agents get `child`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserContext {
    user_id: UserId,
    thread_id: ThreadId,
    run_id: RunId,
    request_id: Arc<str>,
    agent_path: Arc<str>,
}

impl UserContext {
    /// The root context of a run; `request_id` is the client's `client_msg_id` or a fresh uuid.
    pub fn new(
        user_id: UserId,
        thread_id: ThreadId,
        run_id: RunId,
        client_msg_id: Option<&str>,
    ) -> Self {
        let request_id = match client_msg_id {
            Some(id) => Arc::from(id),
            None => Arc::from(Uuid::new_v4().to_string()),
        };
        Self {
            user_id,
            thread_id,
            run_id,
            request_id,
            agent_path: Arc::from("run"),
        }
    }

    /// The same request one level down the agent tree (`run/triage`).
    pub fn child(&self, name: &str) -> Self {
        Self {
            agent_path: Arc::from(format!("{}/{}", self.agent_path, name)),
            ..self.clone()
        }
    }

    /// Whose request this is: every read and write it makes is scoped to this user.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// The thread the run belongs to, which its events name.
    pub fn thread_id(&self) -> ThreadId {
        self.thread_id
    }

    /// The run this request executes, which its events and rows name.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The client's `client_msg_id` for the request, or the uuid made up in its place.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Where in the agent tree this context is, e.g. `run/triage`.
    pub fn agent_path(&self) -> &str {
        &self.agent_path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rules() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("a.b@c-d_e").is_ok());
        assert_eq!(UserId::parse(""), Err(IdError::UserIdLength(0)));
        assert!(UserId::parse(&"a".repeat(129)).is_err());
        assert!(UserId::parse(&"a".repeat(128)).is_ok());
        assert!(matches!(
            UserId::parse("a b"),
            Err(IdError::UserIdCharacters(_))
        ));
        for p in ["None", "NULL", "0", "Demo", "xxx"] {
            assert!(
                matches!(UserId::parse(p), Err(IdError::UserIdPlaceholder(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn account_keys_name_their_subject_and_generation() {
        let alice = UserId::parse("alice").expect("valid");
        assert_eq!(alice.generation(), 0);
        let second = alice.at_generation(1);
        assert_eq!(second.as_str(), "alice~1");
        assert_eq!(second.subject(), "alice");
        assert_eq!(second.generation(), 1);
        assert_eq!(second.at_generation(2).as_str(), "alice~2");
        assert_eq!(second.subject_id(), alice);
        assert_eq!(UserId::from_stored("alice~1"), Ok(second));
        assert_eq!(UserId::from_stored("alice"), Ok(alice.clone()));
        for bad in [
            "alice~0",
            "alice~",
            "alice~01",
            "alice~x",
            "~1",
            "alice~1~2",
        ] {
            assert!(UserId::from_stored(bad).is_err(), "{bad}");
        }
        assert!(
            UserId::parse("alice~1").is_err(),
            "a key is never a subject"
        );
    }

    #[test]
    fn child_context_extends_the_path() {
        let ctx = UserContext::new(
            UserId::parse("alice").expect("valid"),
            ThreadId::new(),
            RunId::new(),
            Some("m1"),
        );
        let child = ctx.child("triage");
        assert_eq!(child.agent_path(), "run/triage");
        assert_eq!(child.request_id(), "m1");
        assert_eq!(child.user_id(), ctx.user_id());
    }
}
