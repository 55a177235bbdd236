//! `enclave token`: prints a token signed with the configured secret, or (`revoke`) refuses
//! every token of a user issued until now, written to the database so that every server on
//! it refuses them within `auth.revocation_check` and closes the user's sockets (4001).

use anyhow::{Context, bail};

use enclave::auth::Auth;
use enclave::clock::now_ms;
use enclave::config::Config;
use enclave::context::UserId;
use enclave::store::repo::revocations;
use enclave::store::{self, Backend};

/// What `enclave token …` does besides printing a token.
#[derive(clap::Subcommand)]
pub enum TokenAction {
    /// Refuse every token of a user issued until now, without rotating the secret; tokens
    /// issued from the next second on are honoured. Running servers on the same database
    /// refuse them within auth.revocation_check (5 s) and close the user's sockets (4001).
    Revoke {
        /// The user (the tokens' `sub`).
        #[arg(long)]
        user: String,
        /// Database URL [env: DATABASE_URL] [default: the configuration's]
        #[arg(long)]
        database: Option<String>,
    },
}

/// Prints a token for `user`, valid for `ttl`.
pub fn print(config: &Config, user: &str, ttl: std::time::Duration) -> anyhow::Result<()> {
    let Some(auth) = Auth::from_config(config) else {
        bail!(
            "ENCLAVE_JWT_SECRET is not set; set it to the secret the server uses \
             (a server without one is in dev mode: POST /api/dev/token)"
        );
    };
    let user = UserId::parse(user).context("--user")?;
    println!("{}", auth.issue(&user, ttl)?);
    Ok(())
}

/// Revokes `user`'s tokens issued through this second.
pub fn revoke(config: &Config, user: &str) -> anyhow::Result<()> {
    let user = UserId::parse(user).context("--user")?;
    // Not migrated here: a newer binary must not change the schema under a running server.
    let backend = Backend::from_url(&config.database_url).context("--database")?;
    crate::cli::backup::must_exist(&backend)?;
    let pool = store::open_pool(&backend, 1, config.db_timeout, config.sqlite_synchronous)
        .context("opening the database")?;
    let mut conn = pool.get().context("connecting to the database")?;
    if !store::migrations_current(&mut conn).context("reading the schema's version")? {
        bail!(
            "{} is not migrated to this version; run `enclave migrate` first",
            backend.display()
        );
    }
    let through = now_ms() / 1000;
    revocations::revoke(&mut conn, &user, through).context("storing the revocation")?;
    println!(
        "revoked every token of {} issued through epoch second {through}; servers refuse them \
         within {} s",
        user.as_str(),
        config.revocation_check.as_secs().max(1)
    );
    Ok(())
}
