//! The diesel table definitions of `migrations/`, kept portable: only TEXT, BIGINT, INTEGER
//! and DOUBLE columns, so one `MultiConnection` serves SQLite and PostgreSQL.

diesel::table! {
    threads (thread_id) {
        thread_id -> Text,
        user_id -> Text,
        title -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_run_status -> Nullable<Text>,
    }
}

diesel::table! {
    runs (run_id) {
        run_id -> Text,
        user_id -> Text,
        thread_id -> Text,
        status -> Text,
        content -> Text,
        client_msg_id -> Nullable<Text>,
        accept_seq -> Nullable<BigInt>,
        created_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        error -> Nullable<Text>,
        result -> Nullable<Text>,
        report_markdown -> Nullable<Text>,
        node_id -> Nullable<Text>,
    }
}

diesel::table! {
    nodes (node_id) {
        node_id -> Text,
        started_at -> BigInt,
        heartbeat_at -> BigInt,
        lease_until -> BigInt,
        address -> Nullable<Text>,
        sessions -> BigInt,
        sockets -> BigInt,
    }
}

diesel::table! {
    user_leases (user_id) {
        user_id -> Text,
        node_id -> Nullable<Text>,
        epoch -> BigInt,
    }
}

diesel::table! {
    events (user_id, seq) {
        user_id -> Text,
        seq -> BigInt,
        ts -> BigInt,
        thread_id -> Nullable<Text>,
        run_id -> Nullable<Text>,
        kind -> Text,
        agent -> Nullable<Text>,
        data -> Text,
    }
}

diesel::table! {
    usage_records (record_id) {
        record_id -> Text,
        user_id -> Text,
        external_id -> Nullable<Text>,
        ts -> BigInt,
        model -> Text,
        provider -> Nullable<Text>,
        workload -> Text,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        cached_tokens -> BigInt,
        latency_ms -> BigInt,
        max_tokens -> Nullable<BigInt>,
        cost_usd -> Nullable<Double>,
        prompt_prefix_hash -> Nullable<Text>,
        interactive -> Integer,
        status -> Text,
        source -> Text,
        created_at -> BigInt,
        upload_id -> Nullable<Text>,
    }
}

diesel::table! {
    pending_uploads (upload_id) {
        upload_id -> Text,
        user_id -> Text,
        created_at -> BigInt,
        node_id -> Nullable<Text>,
    }
}

diesel::table! {
    usage_counts (user_id) {
        user_id -> Text,
        records -> BigInt,
    }
}

diesel::table! {
    completed_uploads (user_id, upload_key) {
        user_id -> Text,
        upload_key -> Text,
        accepted -> BigInt,
        rejected -> BigInt,
        duplicates -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    approvals (approval_id) {
        approval_id -> Text,
        user_id -> Text,
        run_id -> Text,
        action -> Text,
        summary -> Text,
        details -> Text,
        status -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        resolved_at -> Nullable<BigInt>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(usage_records, pending_uploads);

diesel::table! {
    accounts (user_id) {
        user_id -> Text,
        generation -> BigInt,
        deleted_at -> BigInt,
    }
}

diesel::table! {
    account_purges (user_key) {
        user_key -> Text,
        requested_at -> BigInt,
    }
}

diesel::table! {
    token_revocations (user_id) {
        user_id -> Text,
        revoked_through -> BigInt,
    }
}

diesel::table! {
    user_watchers (user_id, node_id) {
        user_id -> Text,
        node_id -> Text,
    }
}

diesel::table! {
    cluster_mail (to_node, from_node, sent_seq) {
        to_node -> Text,
        from_node -> Text,
        sent_seq -> BigInt,
        body -> Text,
    }
}
