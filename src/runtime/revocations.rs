//! `Revocations`: the actor that owns the server's copy of the token revocations, so a token
//! of a revoked user issued before its revocation is refused on every route and upgrade
//! without a database read per request.
//!
//! `enclave token revoke --user ID` writes the row (it may run on another machine); this actor
//! reads the table again every `auth.revocation_check` and closes the sockets a newly revoked
//! user holds here with 4001, as an expired token's are. The first load happens before the
//! server accepts a connection.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

use crate::context::UserId;
use crate::runtime::registry::{CloseSocketsOf, SessionRegistry};
use crate::runtime::socket::close_code;
use crate::store::{Db, StoreError, repo};

/// Whether a token of `subject` issued at `issued_at` (epoch seconds) is still honoured.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Honoured {
    /// The token's `sub`.
    pub subject: String,
    /// The token's `iat`, if it has one (a token without cannot show it came later).
    pub issued_at: Option<i64>,
}

/// The actor (see the module comment).
pub struct Revocations {
    /// Where the revocations are read from.
    db: Db,
    /// Told to close the sockets of a user revoked anew.
    registry: Addr<SessionRegistry>,
    /// Each revoked subject's last revoked second.
    through: HashMap<String, i64>,
    /// How often the table is read again.
    every: Duration,
}

impl Revocations {
    /// Reads every revocation (the server does not start without them).
    pub async fn load(
        db: Db,
        registry: Addr<SessionRegistry>,
        every: Duration,
    ) -> Result<Self, StoreError> {
        let rows = db.read(|conn| Ok(repo::revocations::all(conn)?)).await?;
        Ok(Self {
            db,
            registry,
            through: rows.into_iter().collect(),
            every,
        })
    }

    /// Takes in `rows`, closing the sockets of users revoked anew.
    fn take(&mut self, rows: Vec<(String, i64)>) {
        for (subject, through) in rows {
            let known = self.through.get(&subject).copied();
            if known.is_some_and(|known| known >= through) {
                continue;
            }
            self.through.insert(subject.clone(), through);
            if let Ok(user_id) = UserId::parse(&subject) {
                log::info!("user={subject} tokens through {through} revoked");
                self.registry.do_send(CloseSocketsOf {
                    user_id,
                    code: close_code::TOKEN_EXPIRED,
                    reason: "token revoked",
                });
            }
        }
    }
}

impl Actor for Revocations {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.every, |act, ctx| {
            // The whole table (a row per revoked user): a revocation stamped by a machine
            // whose clock is behind another's must not be missed.
            let db = act.db.clone();
            let read = async move { db.read(|conn| Ok(repo::revocations::all(conn)?)).await };
            ctx.spawn(read.into_actor(act).map(|rows, act, _| match rows {
                Ok(rows) => act.take(rows),
                Err(e) => log::warn!("cannot read token revocations: {e}"),
            }));
        });
    }
}

impl Handler<Honoured> for Revocations {
    type Result = bool;

    fn handle(&mut self, token: Honoured, _: &mut Context<Self>) -> bool {
        match (self.through.get(&token.subject), token.issued_at) {
            (None, _) => true,
            // A token without `iat` cannot show it came after the revocation.
            (Some(_), None) => false,
            (Some(through), Some(issued_at)) => issued_at > *through,
        }
    }
}
