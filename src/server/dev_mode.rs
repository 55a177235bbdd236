//! Dev mode's one rule at start: no secret (tokens for any user from `POST /api/dev/token`)
//! is allowed only on a loopback address, unless `--dev` asks for it, which is logged; `--dev`
//! with a real secret is logged too.

use std::net::SocketAddr;

use super::ServerError;
use crate::config::Config;

/// Every address `bind` names is a loopback one (resolving a host name blocks: call it off
/// the async arbiters).
pub(super) fn binds_loopback_only(bind: &str) -> bool {
    use std::net::ToSocketAddrs;
    bind.to_socket_addrs().is_ok_and(|addrs| {
        let addrs: Vec<SocketAddr> = addrs.collect();
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
    })
}

/// Dev mode (no secret: tokens for any user from `POST /api/dev/token`) is safe only on a
/// loopback address; elsewhere it needs `--dev`, and is then logged. `--dev` with a real
/// secret is logged too: the endpoint then mints tokens valid in production.
pub(super) fn check_dev_mode(config: &Config, loopback: bool) -> Result<(), ServerError> {
    let bind = &config.bind;
    match (config.jwt_secret(), config.dev) {
        (None, false) if !loopback => Err(ServerError::DevModeExposed { bind: bind.clone() }),
        (None, true) if !loopback => {
            log::warn!(
                "dev mode on {bind}, which is not a loopback address (--dev): anyone who can \
                 reach it can get a token for any user"
            );
            Ok(())
        }
        (Some(_), true) => {
            log::warn!(
                "--dev with ENCLAVE_JWT_SECRET set: POST /api/dev/token mints tokens signed with \
                 that secret, valid for any user of this server"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}
