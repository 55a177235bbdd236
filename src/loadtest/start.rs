//! Starting this process's simulated users: the `Plan` they share, and one task per user,
//! paced by the ramp. What they report comes back on the channel `start` returns; it closes
//! once every user is done.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::connect::Targets;
use super::report::Report;
use super::user::{self, Live, Plan};
use super::{LoadConfig, Scenario, Shape};

/// Starts the users holding `tokens`, the first of them the `first_index`th of the whole test;
/// the load began at `started`. Returns where they report and their progress counters.
pub(super) fn start(
    config: &LoadConfig,
    shape: &Shape,
    targets: Targets,
    tokens: Vec<(String, String)>,
    first_index: usize,
    sources: Vec<IpAddr>,
    started: Instant,
) -> (UnboundedReceiver<Report>, Arc<Live>) {
    let (reports, received) = mpsc::unbounded_channel();
    let live = Arc::new(Live::default());
    let plan = Arc::new(Plan {
        targets,
        scenario: config.scenario,
        users: config.users,
        sockets_per_user: config.sockets_per_user,
        messages: if config.scenario == Scenario::Idle {
            0
        } else {
            shape.messages
        },
        content: config.content.clone(),
        run_tag: uuid::Uuid::new_v4().simple().to_string(),
        load_until: started + shape.ramp_time + shape.hold,
        run_timeout: config.run_timeout,
        send_every: config
            .rate
            .and_then(|rate| Duration::try_from_secs_f64(config.users as f64 / rate).ok()),
        sources,
        reports,
        live: Arc::clone(&live),
    });
    tokio::spawn(start_users(
        plan,
        tokens,
        first_index,
        config.ramp,
        config.sockets_per_user,
    ));
    (received, live)
}

/// Starts one task per user, `ramp` sockets per second over the whole test; returns once every
/// user is done.
async fn start_users(
    plan: Arc<Plan>,
    tokens: Vec<(String, String)>,
    first_index: usize,
    ramp: f64,
    sockets: usize,
) {
    let started = tokio::time::Instant::now();
    let mut users = tokio::task::JoinSet::new();
    for (offset, (name, token)) in tokens.into_iter().enumerate() {
        let index = first_index + offset;
        if ramp > 0.0 {
            let at = Duration::from_secs_f64(((index * sockets) as f64 / ramp).min(1e9));
            tokio::time::sleep_until(started + at).await;
        }
        users.spawn(user::simulate(Arc::clone(&plan), index, name, token));
    }
    drop(plan);
    while users.join_next().await.is_some() {}
}
