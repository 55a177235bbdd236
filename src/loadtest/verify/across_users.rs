//! `Verifier`: the check across users — no run or thread id seen by two of them — and, for
//! callers that feed every frame to one place (the tests), each user's `UserVerifier`.

use std::collections::HashMap;

use super::{UserVerifier, Violation};
use crate::loadtest::frame::Frame;

/// The verification across users: which user each run and thread id belongs to.
#[derive(Debug, Default)]
pub struct Verifier {
    /// One user's part each, for callers that feed every frame here (tests, small loads).
    users: HashMap<String, UserVerifier>,
    /// The user each run and thread id was first seen by.
    owners: HashMap<String, String>,
    /// `Foreign` violations found.
    violations: Vec<Violation>,
}

impl Verifier {
    /// `user` saw `ids`: a `Foreign` violation for each that another user saw first.
    pub fn ids_seen(&mut self, user: &str, ids: Vec<String>) {
        for id in ids {
            match self.owners.get(&id) {
                Some(owner) if owner != user => self.violations.push(Violation::Foreign {
                    user: user.to_owned(),
                    id,
                    owner: owner.clone(),
                }),
                Some(_) => {}
                None => {
                    self.owners.insert(id, user.to_owned());
                }
            }
        }
    }

    /// A socket of `user` starts after `after_seq` (see `UserVerifier::socket_opened`).
    pub fn socket_opened(&mut self, user: &str, socket: u64, after_seq: i64) {
        self.user(user)
            .socket_opened(socket, after_seq, after_seq > 0);
    }

    /// A frame `socket` of `user` received.
    pub fn frame(&mut self, user: &str, socket: u64, text: &str) {
        let verifier = self.user(user);
        let Ok(frame) = serde_json::from_str::<Frame<'_>>(text) else {
            return verifier.unreadable(socket, text);
        };
        verifier.frame(socket, &frame, text);
        let ids = verifier.take_new_ids();
        self.ids_seen(user, ids);
    }

    /// The `Foreign` violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// The test is over: every violation, with each user's unfinished runs.
    pub fn finish(self) -> Vec<Violation> {
        let mut found = Vec::new();
        let mut users: Vec<_> = self.users.into_values().collect();
        users.sort_by(|a, b| a.user.cmp(&b.user));
        for user in users {
            found.extend(user.finish());
        }
        found.extend(self.violations);
        found
    }

    /// `user`'s part, made on first use.
    pub(super) fn user(&mut self, user: &str) -> &mut UserVerifier {
        self.users
            .entry(user.to_owned())
            .or_insert_with(|| UserVerifier::new(user))
    }
}
