//! The `enclave` command line: parses arguments and calls the library. Nothing else lives
//! here.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use enclave::auth::Auth;
use enclave::client;
use enclave::config::{Config, parse_duration};
use enclave::context::UserId;
use enclave::ingest::IngestOptions;
use enclave::ingest::checkpoint;
use enclave::runtime::pipeline::Pipeline;
use enclave::server::{Server, open_and_migrate};
use enclave::usage::record::RowError;

/// enclave: a chat-style, multi-agent server that analyses your LLM API usage and tells you,
/// with priced recommendations, how to cut cost or latency.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API, WebSocket at /ws).
    Serve {
        /// Address to listen on; port 0 picks a free port [env: ENCLAVE_BIND] [default: 127.0.0.1:8080]
        #[arg(long)]
        bind: Option<String>,
        /// Database URL: a SQLite path (sqlite://enclave.db) or postgres://… [env: DATABASE_URL]
        #[arg(long)]
        database: Option<String>,
        /// Serve POST /api/dev/token even when ENCLAVE_JWT_SECRET is set.
        #[arg(long)]
        dev: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        /// Database URL [env: DATABASE_URL] [default: sqlite://enclave.db]
        #[arg(long)]
        database: Option<String>,
    },
    /// Upload a file of LLM usage records (.ndjson, .jsonl, .csv or .json) of any size to a
    /// running server.
    ///
    /// The file is sent in uploads of at most --part-bytes, each stored once however often it
    /// is sent. Without --partial the whole file is checked first and nothing is sent if a row
    /// is invalid. After each upload the server acknowledges, a checkpoint (FILE.enclave-ingest)
    /// records how far it got: if the ingest stops (the connection, the server, Ctrl-C), the
    /// same command again goes on from there and stores nothing twice.
    Ingest {
        /// The file to upload.
        file: std::path::PathBuf,
        /// Whose records they are [default: $USER]. With ENCLAVE_JWT_SECRET set the token is
        /// signed locally; otherwise the server must be in dev mode.
        #[arg(long)]
        user: Option<String>,
        /// The server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Store the valid rows even when some are invalid.
        #[arg(long)]
        partial: bool,
        /// The most bytes per upload; keep it under the server's ENCLAVE_MAX_UPLOAD_BYTES.
        #[arg(long, default_value_t = enclave::ingest::DEFAULT_PART_BYTES)]
        part_bytes: usize,
        /// Where the checkpoint is kept [default: FILE.enclave-ingest].
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
        /// Start from the top even if a checkpoint says part of the file is stored.
        #[arg(long)]
        restart: bool,
        /// The file is a provider or gateway export: openai, litellm, helicone, langfuse or
        /// otel [default: recognised by the server when unambiguous]. An OTLP JSON file (.json)
        /// is sent whole; OTLP JSON lines (.jsonl) are split like any NDJSON.
        #[arg(long)]
        format: Option<String>,
    },
    /// Load a running server with simulated WebSocket users, verifying every event they get
    /// (per user `seq` gapless and the same on all sockets, no other user's ids, every run
    /// ended). Prints a table; exits 1 on any violation, timed-out run, failed connection,
    /// refused message or failed run.
    ///
    /// A server under load refuses messages beyond its per-user rate (60 a minute, bursts of
    /// 20): raise ENCLAVE_MESSAGES_PER_MINUTE and ENCLAVE_MESSAGE_BURST on the server for chat
    /// and burst loads.
    #[command(name = "loadtest")]
    LoadTest(LoadTestArgs),
    /// One worker process of `enclave loadtest --processes`: reads its share of the users on
    /// stdin, writes what they report to stdout.
    #[command(name = enclave::loadtest::WORKER_COMMAND, hide = true)]
    LoadTestWorker,
    /// Print a token for a user, signed with ENCLAVE_JWT_SECRET.
    Token {
        /// The user id (the token's `sub`).
        #[arg(long)]
        user: String,
        /// How long the token is valid: 30s, 15m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: std::time::Duration,
    },
}

#[derive(clap::Args)]
struct LoadTestArgs {
    /// The server: ws://HOST:PORT[/ws] or http://HOST:PORT.
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

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let code = match run(Cli::parse()) {
        Ok(true) => 0,
        // A load test that found something wrong.
        Ok(false) => 1,
        Err(e) => {
            eprintln!("enclave: {e:#}");
            2
        }
    };
    exit_now(code)
}

/// Ends the process without the C libraries' exit handlers: r2d2's workers may still be
/// connecting to PostgreSQL (it keeps an idle connection in reserve), and libpq's OpenSSL frees
/// its global state in an `atexit` handler, which crashed such a thread (SIGSEGV) after a
/// clean shutdown. Everything stored is committed by now; stdout is flushed here.
fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes no pointers and never returns; no destructor holds anything that
    // must be flushed beyond the two streams above.
    unsafe { libc::_exit(code) }
}

/// Runs the command; false when a load test failed its checks.
fn run(cli: Cli) -> anyhow::Result<bool> {
    // The load client is no server: a server's settings in its environment are not its own.
    let read_config = || Config::from_env().context("reading the environment");
    let done = match cli.command {
        Command::LoadTest(args) => return load_test(args),
        Command::LoadTestWorker => {
            enclave::loadtest::serve_as_worker()?;
            return Ok(true);
        }
        Command::Serve {
            bind,
            database,
            dev,
        } => {
            let mut config = read_config()?;
            if let Some(bind) = bind {
                config.bind = bind;
            }
            if let Some(database) = database {
                config.database_url = database;
            }
            config.dev |= dev;
            serve(config)
        }
        Command::Migrate { database } => {
            let mut config = read_config()?;
            if let Some(database) = database {
                config.database_url = database;
            }
            let (_, ran) = open_and_migrate(&config).context("migrating the database")?;
            println!("applied {ran} migration(s)");
            Ok(())
        }
        Command::Ingest {
            file,
            user,
            url,
            partial,
            part_bytes,
            checkpoint,
            restart,
            format,
        } => {
            let how = IngestHow {
                partial,
                part_bytes,
                checkpoint,
                restart,
                format,
            };
            ingest(&read_config()?, file, user, url, how)
        }
        Command::Token { user, ttl } => {
            let config = read_config()?;
            let Some(auth) = Auth::from_config(&config) else {
                bail!(
                    "ENCLAVE_JWT_SECRET is not set; set it to the secret the server uses \
                     (a server without one is in dev mode: POST /api/dev/token)"
                );
            };
            let user = UserId::parse(&user).context("--user")?;
            println!("{}", auth.issue(&user, ttl)?);
            Ok(())
        }
    };
    done.map(|()| true)
}

/// Runs a load test and prints its summary; whether it passed.
fn load_test(args: LoadTestArgs) -> anyhow::Result<bool> {
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

fn serve(config: Config) -> anyhow::Result<()> {
    let files = enclave::loadtest::raise_file_limit();
    log::debug!("open-file limit: {files}");
    actix_web::rt::System::new().block_on(async move {
        let server = Server::build(config, Pipeline::standard())
            .await
            .context("starting the server")?;
        // Warnings first: whoever waits for the banner then finds them already logged.
        if server.dev_secret() {
            log::warn!(
                "ENCLAVE_JWT_SECRET is not set: dev mode, tokens are signed with a random secret \
                 and POST /api/dev/token is open"
            );
        }
        let addr = server.addr();
        let token_hint = if server.dev_tokens() {
            format!("curl -s -X POST http://{addr}/api/dev/token -d '{{\"user\":\"alice\"}}'")
        } else {
            String::from("enclave token --user alice")
        };
        let banner = format!(
            "listening on http://{addr}\n  WebSocket: ws://{addr}/ws\n  database:  {}\n  token:     {token_hint}\n",
            server.backend().display()
        );
        // A closed stdout (a supervisor that read the address and left) must not stop the server.
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(banner.as_bytes()).and_then(|()| out.flush()) {
            log::warn!("cannot write the start-up banner to stdout: {e}");
        }
        drop(out);
        server.run_until_stopped().await?;
        Ok(())
    })
}

/// How `enclave ingest` sends its file.
struct IngestHow {
    format: Option<String>,
    partial: bool,
    part_bytes: usize,
    checkpoint: Option<std::path::PathBuf>,
    restart: bool,
}

fn ingest(
    config: &Config,
    file: std::path::PathBuf,
    user: Option<String>,
    url: String,
    how: IngestHow,
) -> anyhow::Result<()> {
    let container =
        enclave::ingest::container_for(&file, how.format.as_deref()).map_err(anyhow::Error::msg)?;
    let user = match user.or_else(|| std::env::var("USER").ok()) {
        Some(user) => UserId::parse(&user).context("--user")?,
        None => bail!("say whose records these are with --user ID"),
    };
    if how.part_bytes == 0 {
        bail!("--part-bytes must be more than 0");
    }
    actix_web::rt::System::new().block_on(async move {
        let token = match Auth::from_config(config) {
            Some(auth) => auth.issue(&user, config.token_ttl)?,
            None => client::dev_token(&url, user.as_str()).await.context(
                "getting a dev token (set ENCLAVE_JWT_SECRET for a server with a secret)",
            )?,
        };
        let options = IngestOptions {
            checkpoint: how
                .checkpoint
                .unwrap_or_else(|| checkpoint::default_path(&file)),
            file,
            container,
            format: how.format,
            partial: how.partial,
            url,
            user: user.as_str().to_owned(),
            token,
            part_bytes: how.part_bytes,
            fresh: how.restart,
        };
        match enclave::ingest::run(options).await {
            Ok(report) => {
                println!("{report}");
                print_row_errors(&report.details);
                Ok(())
            }
            Err(e) => {
                print_row_errors(e.details());
                Err(e.into())
            }
        }
    })
}

fn print_row_errors(details: &[RowError]) {
    for detail in details {
        eprintln!("  {}", enclave::ingest::describe(detail));
    }
}
