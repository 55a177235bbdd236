//! `enclave cluster-status`: the nodes on a PostgreSQL database, their leases, the users they
//! own and the sessions and sockets they hold, as a table or (`--json`) one JSON document.

use anyhow::Context;

use enclave::config::Config;
use enclave::store::node_status::{self, NodeStatus};
use enclave::store::{self, Backend};

/// Prints the cluster's nodes.
pub fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let backend = Backend::from_url(&config.database_url).context("--database")?;
    if backend.is_sqlite() {
        anyhow::bail!(
            "{} is a SQLite database: one server uses it, there is no cluster (nodes share a \
             PostgreSQL database: --database postgres://…)",
            backend.display()
        );
    }
    let pool = store::open_pool(&backend, 1, config.db_timeout, config.sqlite_synchronous)
        .context("opening the database")?;
    let mut conn = pool.get().context("connecting to the database")?;
    let nodes = node_status::nodes(&mut conn)?;
    if json {
        println!("{}", serde_json::json!({ "nodes": nodes }));
        return Ok(());
    }
    print!("{}", table(&nodes));
    Ok(())
}

/// The nodes as an aligned table, with a line of totals over the live ones.
fn table(nodes: &[NodeStatus]) -> String {
    let mut rows = vec![
        [
            "NODE", "ADDRESS", "STATE", "LEASE", "UP", "USERS", "SESSIONS", "SOCKETS",
        ]
        .map(String::from),
    ];
    for node in nodes {
        rows.push([
            node.node_id.clone(),
            node.address.clone().unwrap_or_else(|| "-".into()),
            if node.live { "live" } else { "lost" }.into(),
            format!("{:+.1}s", node.lease_left_ms as f64 / 1000.0),
            span(node.up_ms),
            node.users.to_string(),
            node.sessions.to_string(),
            node.sockets.to_string(),
        ]);
    }
    let live: Vec<&NodeStatus> = nodes.iter().filter(|n| n.live).collect();
    let mut out = String::new();
    let mut widths = [0_usize; 8];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} live node(s) of {}: {} users, {} sessions, {} sockets\n",
        live.len(),
        nodes.len(),
        live.iter().map(|n| n.users).sum::<i64>(),
        live.iter().map(|n| n.sessions).sum::<i64>(),
        live.iter().map(|n| n.sockets).sum::<i64>(),
    ));
    out
}

/// `3h12m`, `4m05s`, `12s`.
fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}
