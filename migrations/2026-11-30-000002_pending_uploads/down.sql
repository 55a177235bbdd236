DROP INDEX usage_by_upload;
ALTER TABLE usage_records DROP COLUMN upload_id;
DROP TABLE pending_uploads;
