//! User tokens: HS256 JWTs whose `sub` is the user id (PROTOCOL.md §1). `Auth` issues them
//! (`enclave token`, the dev endpoint) and verifies them (every route and socket upgrade).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::config::Config;
use crate::context::{IdError, UserId};

/// Why a token was refused or could not be made; at the HTTP edge each is a 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing token: send `Authorization: Bearer <token>` (or `?token=<token>` on /ws)")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error(
        "token revoked: its user's tokens issued before a revocation are refused; get a new one"
    )]
    Revoked,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("invalid token subject: {0}")]
    Subject(#[from] IdError),
    #[error("cannot sign token: {0}")]
    Sign(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    /// Seconds since the Unix epoch.
    exp: u64,
    /// When it was issued (seconds); refused if later than now (plus `CLOCK_LEEWAY_SECS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    /// Not valid before (seconds); refused until then (less `CLOCK_LEEWAY_SECS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    /// The issuer, required when the server names one (`ENCLAVE_JWT_ISSUER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    /// The audience, required when the server names one (`ENCLAVE_JWT_AUDIENCE`): a string
    /// or a list of them (RFC 7519), which the validation checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<serde_json::Value>,
}

/// How far the issuer's clock may run ahead of ours for `iat` and `nbf` (not `exp`, which has
/// none: a socket closes with 4001 at its token's `exp`).
const CLOCK_LEEWAY_SECS: u64 = 60;

/// Who a valid token speaks for, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    /// The token's `exp`, in epoch milliseconds.
    pub expires_at_ms: i64,
    /// The token's `iat`, in epoch seconds, if it has one.
    pub issued_at: Option<i64>,
}

/// The server's one signer and verifier of user tokens, built from the configured secrets (or
/// the random dev one).
pub struct Auth {
    encoding: EncodingKey,
    /// The signing secret's key first, then earlier secrets' (verify only).
    decoding: Vec<DecodingKey>,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Auth {
    /// Signs and verifies with `secret` alone, naming no issuer or audience.
    pub fn new(secret: &[u8]) -> Self {
        Self::with_policy(secret, &[], None, None)
    }

    /// The configured tokens (`Config::jwt_*`); `None` without a secret (dev mode).
    pub fn from_config(config: &Config) -> Option<Self> {
        let (secret, older) = config.jwt_secrets.split_first()?;
        Some(Self::with_policy(
            secret.as_bytes(),
            older,
            config.jwt_issuer.as_deref(),
            config.jwt_audience.as_deref(),
        ))
    }

    /// Signs with `secret` and verifies with it and `older`: HS256 only, `exp` and `sub`
    /// required, no leeway on expiry, `iat` and `nbf` honoured with a minute's leeway; with
    /// an `issuer` or `audience`, tokens are issued with it and must carry it.
    pub fn with_policy(
        secret: &[u8],
        older: &[String],
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let decoding = std::iter::once(secret)
            .chain(older.iter().map(String::as_bytes))
            .map(DecodingKey::from_secret)
            .collect();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding,
            validation,
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
        }
    }

    /// A token for `user` valid for `ttl`.
    pub fn issue(&self, user: &UserId, ttl: Duration) -> Result<String, AuthError> {
        let now = (now_ms() as u64) / 1000;
        let claims = Claims {
            sub: user.as_str().to_owned(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(serde_json::Value::String),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Sign(e.to_string()))
    }

    /// Checks signature, algorithm, expiry, `nbf`, `iat` and subject.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = self.decode(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(e.to_string()),
        })?;
        let ahead = (now_ms() as u64) / 1000 + CLOCK_LEEWAY_SECS;
        if data.claims.nbf.is_some_and(|nbf| nbf > ahead) {
            return Err(AuthError::Invalid("not valid yet (nbf)".into()));
        }
        if data.claims.iat.is_some_and(|iat| iat > ahead) {
            return Err(AuthError::Invalid("issued in the future (iat)".into()));
        }
        let user_id = UserId::parse(&data.claims.sub)?;
        Ok(Identity {
            user_id,
            expires_at_ms: (data.claims.exp as i64).saturating_mul(1000),
            issued_at: data.claims.iat.and_then(|iat| i64::try_from(iat).ok()),
        })
    }
}

impl Auth {
    /// The token's claims under the first key whose signature matches.
    fn decode(
        &self,
        token: &str,
    ) -> Result<jsonwebtoken::TokenData<Claims>, jsonwebtoken::errors::Error> {
        let mut last = None;
        for key in &self.decoding {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    last = Some(e);
                }
                decoded => return decoded,
            }
        }
        Err(last.unwrap_or_else(|| jsonwebtoken::errors::ErrorKind::InvalidSignature.into()))
    }
}

/// A random secret for dev mode (no `ENCLAVE_JWT_SECRET`): tokens die with the process.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let auth = Auth::new(b"secret");
        let alice = UserId::parse("alice").expect("valid");
        let token = auth.issue(&alice, Duration::from_secs(60)).expect("signs");
        assert_eq!(auth.verify(&token).expect("valid").user_id, alice);
        assert!(matches!(
            Auth::new(b"other").verify(&token),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(auth.verify("garbage"), Err(AuthError::Invalid(_))));
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                exp: 1,
                iat: None,
                nbf: None,
                iss: None,
                aud: None,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("signs");
        assert_eq!(auth.verify(&expired), Err(AuthError::Expired));
        let placeholder = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "null".into(),
                exp: u64::MAX / 2000,
                iat: None,
                nbf: None,
                iss: None,
                aud: None,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("signs");
        assert!(matches!(
            auth.verify(&placeholder),
            Err(AuthError::Subject(_))
        ));
    }

    fn signed(nbf: Option<u64>, iat: Option<u64>) -> String {
        let now = (now_ms() as u64) / 1000;
        let claims = Claims {
            sub: "alice".into(),
            exp: now + 3600,
            iat,
            nbf,
            iss: None,
            aud: None,
        };
        let key = EncodingKey::from_secret(b"secret");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("signs")
    }

    #[test]
    fn a_rotated_key_still_verifies_and_issuer_and_audience_are_required() {
        let alice = UserId::parse("alice").expect("valid");
        let old_secret = "old-secret-old-secret-old-secret-0".to_owned();
        let old_token = Auth::new(old_secret.as_bytes())
            .issue(&alice, Duration::from_secs(60))
            .expect("signs");
        let rotated = Auth::with_policy(b"new-secret", &[old_secret], None, None);
        assert_eq!(
            rotated
                .verify(&old_token)
                .expect("old key verifies")
                .user_id,
            alice
        );
        let new_token = rotated
            .issue(&alice, Duration::from_secs(60))
            .expect("signs");
        assert!(
            Auth::new(b"new-secret").verify(&new_token).is_ok(),
            "the first key signs"
        );
        assert!(matches!(
            Auth::new(b"other").verify(&old_token),
            Err(AuthError::Invalid(_))
        ));

        let strict = Auth::with_policy(b"secret", &[], Some("enclave"), Some("api"));
        let token = strict
            .issue(&alice, Duration::from_secs(60))
            .expect("signs");
        assert!(strict.verify(&token).is_ok());
        let plain = Auth::new(b"secret")
            .issue(&alice, Duration::from_secs(60))
            .expect("signs");
        assert!(
            matches!(strict.verify(&plain), Err(AuthError::Invalid(_))),
            "no iss/aud"
        );
        let elsewhere = Auth::with_policy(b"secret", &[], Some("other"), Some("api"))
            .issue(&alice, Duration::from_secs(60))
            .expect("signs");
        assert!(matches!(
            strict.verify(&elsewhere),
            Err(AuthError::Invalid(_))
        ));
        // A server naming none takes tokens that carry them; a list of audiences is read.
        assert!(Auth::new(b"secret").verify(&token).is_ok());
        let listed = Claims {
            sub: "alice".into(),
            exp: (now_ms() as u64) / 1000 + 60,
            iat: None,
            nbf: None,
            iss: Some("enclave".into()),
            aud: Some(serde_json::json!(["other", "api"])),
        };
        let key = EncodingKey::from_secret(b"secret");
        let listed =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &listed, &key).expect("signs");
        assert!(strict.verify(&listed).is_ok());
        assert!(Auth::new(b"secret").verify(&listed).is_ok());
    }

    #[test]
    fn not_yet_valid_and_future_issued_tokens_are_refused() {
        let auth = Auth::new(b"secret");
        let now = (now_ms() as u64) / 1000;
        let day = 24 * 3600;
        for (nbf, iat) in [(Some(now + day), None), (None, Some(now + 365 * day))] {
            assert!(
                matches!(auth.verify(&signed(nbf, iat)), Err(AuthError::Invalid(_))),
                "nbf {nbf:?} iat {iat:?}"
            );
        }
        // A clock a little ahead of ours is allowed; the past is fine.
        for (nbf, iat) in [
            (Some(now + 30), Some(now + 30)),
            (Some(now - day), Some(now - day)),
        ] {
            assert!(
                auth.verify(&signed(nbf, iat)).is_ok(),
                "nbf {nbf:?} iat {iat:?}"
            );
        }
        // Issued tokens say when.
        let alice = UserId::parse("alice").expect("valid");
        let token = auth.issue(&alice, Duration::from_secs(60)).expect("signs");
        let data = auth.decode(&token).expect("valid");
        assert!(data.claims.iat.is_some_and(|iat| iat.abs_diff(now) <= 5));
    }
}
