-- Portable across SQLite and PostgreSQL (DESIGN.md §6): ids as TEXT, times as BIGINT epoch ms,
-- flags as INTEGER 0/1, JSON as TEXT. Every row carries its user_id.

CREATE TABLE threads (
    thread_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_run_status TEXT
);
CREATE INDEX threads_by_user ON threads (user_id, updated_at);

CREATE TABLE runs (
    run_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    status TEXT NOT NULL,
    content TEXT NOT NULL,
    client_msg_id TEXT,
    accept_seq BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    error TEXT,
    result TEXT,
    report_markdown TEXT
);
CREATE INDEX runs_by_user_thread ON runs (user_id, thread_id);
CREATE INDEX runs_by_user_status ON runs (user_id, status);
CREATE UNIQUE INDEX runs_by_client_msg_id ON runs (user_id, client_msg_id);

CREATE TABLE events (
    user_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    thread_id TEXT,
    run_id TEXT,
    kind TEXT NOT NULL,
    agent TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX events_by_user_thread ON events (user_id, thread_id, seq);

CREATE TABLE usage_records (
    record_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    external_id TEXT,
    ts BIGINT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT,
    workload TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    max_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    prompt_prefix_hash TEXT,
    interactive INTEGER NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX usage_by_user_ts ON usage_records (user_id, ts);
CREATE UNIQUE INDEX usage_by_external_id ON usage_records (user_id, external_id);

CREATE TABLE approvals (
    approval_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    action TEXT NOT NULL,
    summary TEXT NOT NULL,
    details TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX approvals_by_user_status ON approvals (user_id, status);
