-- Revoked tokens: every token of `user_id` (the token's `sub`) issued at or before
-- `revoked_through` (epoch seconds, compared with the token's `iat`) is refused, whatever
-- its expiry; `enclave token revoke --user ID` writes the row.
CREATE TABLE token_revocations (
    user_id TEXT PRIMARY KEY,
    revoked_through BIGINT NOT NULL
);
