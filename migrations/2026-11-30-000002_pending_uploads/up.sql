-- An upload is written in chunks under its upload id and is listed here until its last chunk is
-- in; its records are invisible meanwhile, so an interrupted upload shows nothing.
CREATE TABLE pending_uploads (
    upload_id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
ALTER TABLE usage_records ADD COLUMN upload_id TEXT;
CREATE INDEX usage_by_upload ON usage_records (upload_id);
