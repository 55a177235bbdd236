-- How many usage records each user has stored (pending uploads included), kept in the same
-- transaction as every insert and delete of usage_records, so the per-user cap is one key
-- lookup instead of a count over millions of rows.
CREATE TABLE usage_counts (
    user_id TEXT PRIMARY KEY NOT NULL,
    records BIGINT NOT NULL
);
INSERT INTO usage_counts (user_id, records)
    SELECT user_id, count(*) FROM usage_records GROUP BY user_id;
