//! The listener: a thread of its own with a PostgreSQL connection of its own, `LISTEN`ing on
//! this node's channel (`store/cluster.rs`). diesel only polls for notifications (it reads
//! what the socket holds, never waits on it), so the thread looks every `POLL` and sleeps in
//! between — on its own thread, not an arbiter's, and on a connection no pool hands out.
//!
//! `mail` wakes the `Mailroom`; `e:<user>` tells the registry the user's followers have events
//! to read. After a (re)connect it says both might have been missed (`MailWaits`, `CatchUp`).
//! It ends when the mailroom stops.

use std::time::Duration;

use actix::prelude::*;
use diesel::{Connection, PgConnection, RunQueryDsl};

use super::mailroom::{MailWaits, Mailroom};
use super::{CatchUp, EventsStored};
use crate::context::UserId;
use crate::store::cluster::{EVENTS_OF, MAIL_WAITS, channel_of};

/// How often the thread looks for notifications.
const POLL: Duration = Duration::from_millis(2);

/// The longest wait between attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How often the quiet connection is asked something, so a dead one (the database restarted,
/// a half-open TCP connection) is noticed and replaced rather than listened to forever.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Where what the listener hears goes.
pub struct Ears {
    /// Told when mail waits.
    pub mailroom: Addr<Mailroom>,
    /// Told whose events were stored.
    pub events: Recipient<EventsStored>,
    /// Told to catch up after a reconnect.
    pub catch_up: Recipient<CatchUp>,
}

/// Starts the listener thread for `node` on the database at `url`.
pub fn start(url: String, node: &str, ears: Ears) -> std::io::Result<()> {
    let channel = channel_of(node);
    std::thread::Builder::new()
        .name("cluster-listener".into())
        .spawn(move || listen(&url, &channel, &ears))
        .map(|_| ())
}

fn listen(url: &str, channel: &str, ears: &Ears) {
    let mut backoff = Duration::from_millis(10);
    while ears.mailroom.connected() {
        match connect(url, channel) {
            Ok(mut conn) => {
                backoff = Duration::from_millis(10);
                ears.mailroom.do_send(MailWaits);
                ears.catch_up.do_send(CatchUp);
                hear(&mut conn, ears);
            }
            Err(e) => log::warn!("the cluster listener cannot connect: {e}"),
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A connection of its own, listening on `channel`.
fn connect(url: &str, channel: &str) -> Result<PgConnection, String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("LISTEN \"{channel}\""))
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Hears notifications until the connection fails or the mailroom stops.
fn hear(conn: &mut PgConnection, ears: &Ears) {
    let mut probed = std::time::Instant::now();
    while ears.mailroom.connected() {
        if probed.elapsed() >= PROBE_EVERY {
            if let Err(e) = diesel::sql_query("SELECT 1").execute(conn) {
                log::warn!("the cluster listener lost its connection: {e}");
                return;
            }
            probed = std::time::Instant::now();
        }
        let mut heard = false;
        for notification in conn.notifications_iter() {
            let notification = match notification {
                Ok(notification) => notification,
                Err(e) => {
                    log::warn!("the cluster listener lost its connection: {e}");
                    return;
                }
            };
            heard = true;
            let payload = notification.payload;
            if payload == MAIL_WAITS {
                ears.mailroom.do_send(MailWaits);
            } else if let Some(user) = payload.strip_prefix(EVENTS_OF)
                && let Ok(user) = UserId::from_stored(user)
            {
                ears.events.do_send(EventsStored { user });
            }
        }
        if !heard {
            std::thread::sleep(POLL);
        }
    }
}
