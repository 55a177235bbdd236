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

mod cli;

/// enclave: a chat-style, multi-agent server that analyses your LLM API usage and tells you,
/// with priced recommendations, how to cut cost or latency.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The configuration file [default: ./enclave.toml if there is one]; the environment
    /// (ENCLAVE_*) overrides it and flags override both. See `enclave config example`.
    #[arg(long, global = true, env = "ENCLAVE_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
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
    LoadTest(cli::load_test::LoadTestArgs),
    /// One worker process of `enclave loadtest --processes`: reads its share of the users on
    /// stdin, writes what they report to stdout.
    #[command(name = enclave::loadtest::WORKER_COMMAND, hide = true)]
    LoadTestWorker,
    /// Copy the SQLite database to FILE, consistently, while the server serves it
    /// (PostgreSQL: use pg_dump).
    Backup {
        /// The copy to write; it must not exist.
        file: std::path::PathBuf,
        /// Database URL [env: DATABASE_URL] [default: sqlite://enclave.db]
        #[arg(long)]
        database: Option<String>,
    },
    /// Show the nodes sharing a PostgreSQL database: each one's address, lease, the users it
    /// owns and the sessions and sockets it holds (reported at its last lease renewal).
    ClusterStatus {
        /// Database URL [env: DATABASE_URL]
        #[arg(long)]
        database: Option<String>,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the effective configuration, or a documented example file.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
    /// Print a token for a user, signed with ENCLAVE_JWT_SECRET; `token revoke` refuses a
    /// user's tokens issued until now.
    #[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
    Token {
        #[command(subcommand)]
        action: Option<cli::token::TokenAction>,
        /// The user id (the token's `sub`).
        #[arg(long, required = true)]
        user: Option<String>,
        /// How long the token is valid: 30s, 15m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: std::time::Duration,
    },
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
    let named = cli.config;
    let read_config = || cli::config::read(named.clone(), &[]);
    let done = match cli.command {
        Command::LoadTest(args) => return cli::load_test::load_test(args),
        Command::LoadTestWorker => {
            enclave::loadtest::serve_as_worker()?;
            return Ok(true);
        }
        Command::Serve {
            bind,
            database,
            dev,
        } => {
            let config = cli::config::read(
                named,
                &[
                    ("server.bind", "--bind", bind),
                    ("database.url", "--database", database),
                    ("server.dev", "--dev", dev.then(|| String::from("true"))),
                ],
            )?;
            serve(config)
        }
        Command::Migrate { database } => {
            let config = cli::config::read(named, &[("database.url", "--database", database)])?;
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
        Command::Config(command) => cli::config::run(named, command),
        Command::ClusterStatus { database, json } => {
            let config = cli::config::read(named, &[("database.url", "--database", database)])?;
            cli::cluster_status::run(&config, json)
        }
        Command::Backup { file, database } => {
            let config = cli::config::read(named, &[("database.url", "--database", database)])?;
            cli::backup::run(&config, &file)
        }
        Command::Token {
            action: Some(cli::token::TokenAction::Revoke { user, database }),
            ..
        } => {
            let config = cli::config::read(named, &[("database.url", "--database", database)])?;
            cli::token::revoke(&config, &user)
        }
        Command::Token { user, ttl, .. } => {
            cli::token::print(&read_config()?, user.as_deref().unwrap_or_default(), ttl)
        }
    };
    done.map(|()| true)
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
