-- Deleted accounts: a subject (the token's `sub`) whose account was deleted stores its rows
-- under `sub~generation` from then on, so every route answers as for a new user at once;
-- a subject with no row here is on its first account (generation 0, rows under `sub`).
CREATE TABLE accounts (
    user_id TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL
);

-- The keys of deleted accounts whose rows are still being purged, chunk by chunk, in the
-- background; a row leaves once nothing of its key is left.
CREATE TABLE account_purges (
    user_key TEXT PRIMARY KEY,
    requested_at BIGINT NOT NULL
);
