//! The `enclave` command line: parses arguments and calls the library. Nothing else lives
//! here.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use enclave::auth::Auth;
use enclave::config::{Config, parse_duration};
use enclave::context::UserId;
use enclave::runtime::pipeline::Pipeline;
use enclave::server::{Server, open_and_migrate};

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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("enclave: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::from_env().context("reading the environment")?;
    match cli.command {
        Command::Serve {
            bind,
            database,
            dev,
        } => {
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
            if let Some(database) = database {
                config.database_url = database;
            }
            let (_, ran) = open_and_migrate(&config).context("migrating the database")?;
            println!("applied {ran} migration(s)");
            Ok(())
        }
        Command::Token { user, ttl } => {
            let Some(secret) = &config.jwt_secret else {
                bail!(
                    "ENCLAVE_JWT_SECRET is not set; set it to the secret the server uses \
                     (a server without one is in dev mode: POST /api/dev/token)"
                );
            };
            let user = UserId::parse(&user).context("--user")?;
            println!("{}", Auth::new(secret.as_bytes()).issue(&user, ttl)?);
            Ok(())
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let server = Server::build(config, Pipeline::standard())
            .await
            .context("starting the server")?;
        let addr = server.addr();
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        writeln!(out, "  WebSocket: ws://{addr}/ws")?;
        writeln!(out, "  database:  {}", server.backend().display())?;
        if server.dev_tokens() {
            writeln!(
                out,
                "  token:     curl -s -X POST http://{addr}/api/dev/token -d '{{\"user\":\"alice\"}}'"
            )?;
        } else {
            writeln!(out, "  token:     enclave token --user alice")?;
        }
        out.flush()?;
        drop(out);
        if server.dev_secret() {
            log::warn!(
                "ENCLAVE_JWT_SECRET is not set: dev mode, tokens are signed with a random secret \
                 and POST /api/dev/token is open"
            );
        }
        server.run_until_stopped().await?;
        Ok(())
    })
}
