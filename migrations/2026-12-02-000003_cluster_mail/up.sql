-- Nodes following a user another node owns (they hold sockets of that user): every batch of
-- the user's events notifies them, on PostgreSQL channel `enclave_<node_id>`, so they read the
-- new rows (`store/cluster.rs`).
CREATE TABLE user_watchers (
    user_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    PRIMARY KEY (user_id, node_id)
);
-- Mail between nodes: the commands a follower relays to a user's owner, and the frames and
-- answers that come back (`runtime/cluster/`). Each sender numbers its mail; the addressee
-- takes (deletes) its rows when notified.
CREATE TABLE cluster_mail (
    to_node TEXT NOT NULL,
    from_node TEXT NOT NULL,
    sent_seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (to_node, from_node, sent_seq)
);
-- What each node reports at every renewal, for `enclave cluster-status`.
ALTER TABLE nodes ADD COLUMN sessions BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN sockets BIGINT NOT NULL DEFAULT 0;
