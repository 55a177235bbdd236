-- The servers using this database, each with a lease it renews while alive, and the server
-- that owns each run (start-up recovery touches only runs of servers whose lease is gone).
CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL
);
ALTER TABLE runs ADD COLUMN node_id TEXT;
