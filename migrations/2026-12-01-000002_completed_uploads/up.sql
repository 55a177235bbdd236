-- Uploads sent with an Idempotency-Key (each part of `enclave ingest`): the answer they got,
-- recorded in the transaction that made their records visible, so a part sent again after its
-- answer was lost is answered the same and stores nothing twice.
CREATE TABLE completed_uploads (
    user_id TEXT NOT NULL,
    upload_key TEXT NOT NULL,
    accepted BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, upload_key)
);
