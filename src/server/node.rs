//! What a server on PostgreSQL runs as a node among others (`runtime/cluster/`): its post
//! office and listener, and the lease checks after a lapse of its own lease.

use std::sync::Arc;

use actix::prelude::*;

use crate::config::Config;
use crate::runtime::cluster::CheckLeases;
use crate::runtime::cluster::listener::{self, Ears};
use crate::runtime::cluster::mailroom::Mailroom;
use crate::runtime::registry::SessionRegistry;
use crate::store::Db;

/// Starts the mailroom (whose address the sessions already hold) delivering to `registry`, and
/// the thread that listens for this node's notifications.
pub(super) fn open_post_office(
    post_office: Context<Mailroom>,
    config: &Config,
    node_id: &str,
    db: &Db,
    registry: &Addr<SessionRegistry>,
) -> std::io::Result<()> {
    let mailroom = post_office.run(Mailroom::new(
        Arc::from(node_id),
        db.clone(),
        registry.clone().recipient(),
        registry.clone().recipient(),
        config.node_lease,
    ));
    let ears = Ears {
        mailroom,
        events: registry.clone().recipient(),
        catch_up: registry.clone().recipient(),
    };
    listener::start(config.database_url.clone(), node_id, ears)
}

/// Each time this node's lease ran out before it was renewed, the sessions check their claims.
pub(super) async fn check_leases_when_lapsed(
    mut lapses: tokio::sync::mpsc::UnboundedReceiver<()>,
    registry: Addr<SessionRegistry>,
) {
    while lapses.recv().await.is_some() {
        registry.do_send(CheckLeases);
    }
}
