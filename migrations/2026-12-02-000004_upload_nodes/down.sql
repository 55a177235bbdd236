ALTER TABLE pending_uploads DROP COLUMN node_id;
