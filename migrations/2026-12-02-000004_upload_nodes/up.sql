-- The node writing each pending upload: a node starting up discards only the uploads of nodes
-- whose lease is gone, never one another live node is still writing.
ALTER TABLE pending_uploads ADD COLUMN node_id TEXT;
