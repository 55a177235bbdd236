//! `enclave loadtest`: its flags, and the run that prints their summary.

use anyhow::Context;

use enclave::config::parse_duration;

/// What `enclave loadtest` is told.
#[derive(clap::Args)]
pub struct LoadTestArgs {
    /// The server: ws://HOST:PORT[/ws] or http://HOST:PORT; several, comma-separated, for the
    /// nodes of a cluster: users' sockets go to them in turn (a user's second socket to the
    /// next node). Every socket carries ?user=ID, the routing hint a load balancer hashes on.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// What each user does.
    #[arg(long, value_enum, default_value = "chat")]
    scenario: enclave::loadtest::Scenario,
    /// Simulated users.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Sockets each user holds, like browser tabs; all must see the same events.
    #[arg(long, default_value_t = 1)]
    sockets_per_user: usize,
    /// New sockets per second while users start; 0 starts them all at once.
    #[arg(long, default_value_t = 1000.0)]
    ramp: f64,
    /// How long the load lasts once every user has started (30s, 5m): idle users hold their
    /// sockets this long (default 60s); others start no run after it.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<std::time::Duration>,
    /// Messages per user [default: 5, or no limit with --duration].
    #[arg(long)]
    messages: Option<u64>,
    /// The text of each message.
    #[arg(
        long,
        default_value = "Where can I cut my LLM spend by 30% without hurting latency?"
    )]
    content: String,
    /// A run not ended this long after its message counts as timed out.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    run_timeout: std::time::Duration,
    /// Chat only: send R messages per second over all users, whether or not earlier runs have
    /// ended (an open loop, to measure latency at a given rate). Without it each user sends
    /// after its last run ended.
    #[arg(long)]
    rate: Option<f64>,
    /// Signs tokens locally with the server's secret; without it they come from the server's
    /// dev endpoint.
    #[arg(long, env = "ENCLAVE_JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// User names are PREFIX-0, PREFIX-1, … [default: a fresh random prefix].
    #[arg(long)]
    user_prefix: Option<String>,
    /// Client threads [default: the number of cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Spread sockets over 127.0.0.1 to 127.0.0.N when one source address runs out of ports
    /// (server on loopback only).
    #[arg(long, default_value_t = 1)]
    source_addresses: u8,
    /// Spread the users over N processes, each with its own open-file limit (the hard limit,
    /// `ulimit -Hn`) [default: one, or as many as the sockets need].
    #[arg(long)]
    processes: Option<usize>,
    /// The server's process id: report its memory (RSS per socket) and CPU per event.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// Runs a load test and prints its summary; whether it passed.
pub fn load_test(args: LoadTestArgs) -> anyhow::Result<bool> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    let config = enclave::loadtest::LoadConfig {
        url: args.url,
        users: args.users,
        sockets_per_user: args.sockets_per_user,
        ramp: args.ramp,
        scenario: args.scenario,
        duration: args.duration,
        messages: args.messages,
        content: args.content,
        run_timeout: args.run_timeout,
        rate: args.rate,
        secret: args.secret,
        user_prefix: args.user_prefix,
        threads,
        source_addresses: args.source_addresses,
        processes: args.processes.unwrap_or(0),
        server_pid: args.server_pid,
        progress: true,
    };
    let summary = enclave::loadtest::run(config)?;
    println!("{summary}");
    if let Some(path) = args.json {
        let json = serde_json::to_vec_pretty(&summary)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(summary.passed())
}
