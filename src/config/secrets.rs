//! The token settings from the environment: `ENCLAVE_JWT_SECRET` (one secret), or
//! `ENCLAVE_JWT_SECRETS=new,old…` (the first signs, every one verifies, so a key rotated in
//! leaves the tokens of the old one valid until they expire), each at least
//! `MIN_SECRET_BYTES`; `ENCLAVE_JWT_ISSUER` and `ENCLAVE_JWT_AUDIENCE`, which tokens are then
//! issued with and must carry. A secret is never echoed in an error.

use super::env_vars::env_opt;
use super::{Config, ConfigError};

/// The shortest secret accepted: an HS256 key shorter than its 32-byte hash is easier to guess.
pub const MIN_SECRET_BYTES: usize = 32;

fn refused(name: &str, reason: String) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        value: "(not shown)".to_owned(),
        reason,
    }
}

/// Reads the secrets, issuer and audience into `config`.
pub(super) fn read_jwt(config: &mut Config) -> Result<(), ConfigError> {
    let (name, secrets): (&str, Vec<String>) = match (
        env_opt("ENCLAVE_JWT_SECRET"),
        env_opt("ENCLAVE_JWT_SECRETS"),
    ) {
        (Some(_), Some(_)) => {
            return Err(refused(
                "ENCLAVE_JWT_SECRETS",
                "set ENCLAVE_JWT_SECRET or ENCLAVE_JWT_SECRETS, not both".to_owned(),
            ));
        }
        (Some(one), None) => ("ENCLAVE_JWT_SECRET", vec![one]),
        (None, Some(many)) => (
            "ENCLAVE_JWT_SECRETS",
            many.split(',').map(|s| s.trim().to_owned()).collect(),
        ),
        (None, None) => ("", Vec::new()),
    };
    for (n, secret) in secrets.iter().enumerate() {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(refused(
                name,
                format!(
                    "secret {} has {} bytes; a secret needs at least {MIN_SECRET_BYTES} \
                     (e.g. `openssl rand -hex 32`)",
                    n + 1,
                    secret.len()
                ),
            ));
        }
    }
    let mut secrets = secrets.into_iter();
    config.jwt_secret = secrets.next();
    config.jwt_old_secrets = secrets.collect();
    config.jwt_issuer = env_opt("ENCLAVE_JWT_ISSUER");
    config.jwt_audience = env_opt("ENCLAVE_JWT_AUDIENCE");
    Ok(())
}
