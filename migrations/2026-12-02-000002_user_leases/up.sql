-- Which node owns each user's session, and the fencing epoch every write of that session
-- carries: a claim moves the epoch on, so a node that lost the user can no longer write its
-- events (`store/leases.rs`). `node_id` is NULL while nobody holds the user. `address` is where
-- a node listens, for `enclave cluster-status`.
CREATE TABLE user_leases (
    user_id TEXT PRIMARY KEY NOT NULL,
    node_id TEXT,
    epoch BIGINT NOT NULL
);
ALTER TABLE nodes ADD COLUMN address TEXT;
