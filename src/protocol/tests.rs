//! Exact-JSON tests of what goes on the wire: event payloads against the `json!` objects the
//! call sites built before they were typed, whole event frames, the `error` frame and HTTP
//! bodies.

use serde_json::json;

use crate::context::{ApprovalId, RunId, ThreadId};
use crate::error::ErrorCode;
use crate::protocol::payload::*;
use crate::protocol::*;

fn data(payload: impl Into<EventPayload>) -> String {
    payload.into().into_data().to_string()
}

fn text(body: &impl serde::Serialize) -> String {
    serde_json::to_string(body).expect("plain data")
}

#[test]
fn client_msg_id_is_present_only_when_given() {
    let with = ThreadCreated {
        title: "cut my bill".into(),
        client_msg_id: Some("m1".into()),
    };
    assert_eq!(
        data(with),
        r#"{"client_msg_id":"m1","title":"cut my bill"}"#
    );
    let without = MessageReceived {
        content: "cut my bill".into(),
        client_msg_id: None,
    };
    assert_eq!(data(without), r#"{"content":"cut my bill"}"#);
    let started = RunStarted {
        plan: vec!["triage".into(), "reporting".into()],
        client_msg_id: Some("m1".into()),
    };
    assert_eq!(
        data(started),
        json!({ "plan": ["triage", "reporting"], "client_msg_id": "m1" }).to_string()
    );
    let queued = RunQueued {
        position: 2,
        reason: QueueReason::ServerBusy,
        client_msg_id: None,
    };
    assert_eq!(data(queued), r#"{"position":2,"reason":"server_busy"}"#);
}

#[test]
fn payloads_match_the_json_they_replace() {
    let tool = ToolCompleted {
        tool: "usage_aggregates".into(),
        output: json!({ "rows": 3 }),
        duration_ms: 12,
        ok: true,
    };
    assert_eq!(
        data(tool),
        r#"{"duration_ms":12,"ok":true,"output":{"rows":3},"tool":"usage_aggregates"}"#
    );
    let error = AgentError {
        error: "cancelled".into(),
        attempt: 2,
        will_restart: false,
        error_id: None,
    };
    assert_eq!(
        data(error),
        json!({ "error": "cancelled", "attempt": 2, "will_restart": false }).to_string()
    );
    let logged = AgentError {
        error: "the agent failed on a bug; it has been logged".into(),
        attempt: 1,
        will_restart: true,
        error_id: Some("0a1b".into()),
    };
    assert_eq!(
        data(logged),
        json!({ "error": "the agent failed on a bug; it has been logged", "attempt": 1,
                "will_restart": true, "error_id": "0a1b" })
        .to_string()
    );
    let failed = RunFailed {
        error: "storage unavailable".into(),
        code: FailureCode::StorageUnavailable,
    };
    assert_eq!(
        data(failed),
        r#"{"code":"storage_unavailable","error":"storage unavailable"}"#
    );
    let interrupted = RunInterrupted {
        reason: InterruptReason::Crash,
    };
    assert_eq!(data(interrupted), json!({ "reason": "crash" }).to_string());
    assert_eq!(data(ThreadDeleted {}), json!({}).to_string());
    let approval_id = ApprovalId::new();
    let resolved = ApprovalResolved {
        approval_id,
        decision: ApprovalOutcome::Expired,
    };
    assert_eq!(
        data(resolved),
        json!({ "approval_id": approval_id, "decision": "expired" }).to_string()
    );
}

#[test]
fn every_payload_names_its_kind() {
    let cases: Vec<(EventPayload, &str)> = vec![
        (AgentStarted { attempt: 1 }.into(), "agent_started"),
        (AgentThinking { text: "t".into() }.into(), "agent_thinking"),
        (AgentStream { delta: "d".into() }.into(), "agent_stream"),
        (
            RunCancelled {
                reason: CancelReason::User,
            }
            .into(),
            "run_cancelled",
        ),
        (ThreadDeleted {}.into(), "thread_deleted"),
        (
            Progress {
                done: 1,
                total: 2,
                unit: "records".into(),
            }
            .into(),
            "progress",
        ),
    ];
    for (payload, wire) in cases {
        assert_eq!(payload.kind().as_str(), wire);
        assert_eq!(EventKind::from_wire(wire), Some(payload.kind()));
    }
}

#[test]
fn event_frame_shape() {
    let thread = ThreadId::new();
    let run = RunId::new();
    let mut event = Event::new(
        AgentStarted { attempt: 1 },
        Some(thread),
        Some(run),
        Some("triage".into()),
    );
    assert_eq!((event.kind, event.seq), (EventKind::AgentStarted, 0));
    event.seq = 42;
    event.ts = 1_795_500_000_123;
    assert_eq!(
        event.to_frame(),
        format!(
            r#"{{"type":"agent_started","seq":42,"ts":1795500000123,"thread_id":"{thread}","run_id":"{run}","agent":"triage","data":{{"attempt":1}}}}"#
        )
    );
}

#[test]
fn error_frame_shape() {
    let frame =
        ServerFrame::error(FrameError::new(ErrorCode::NotFound, "no such thread").with_ref("m1"));
    assert_eq!(
        frame.to_frame(),
        r#"{"type":"error","code":"not_found","message":"no such thread","ref":"m1"}"#
    );
}

#[test]
fn http_bodies_keep_their_keys() {
    use crate::protocol::http::*;
    let ingest = IngestAnswer {
        accepted: 3,
        rejected: 0,
        duplicates: 1,
        details: None,
        replayed: false,
        checked: false,
        format: None,
        fields_used: None,
        fields_ignored: None,
    };
    assert_eq!(
        text(&ingest),
        r#"{"accepted":3,"rejected":0,"duplicates":1}"#
    );
    let partial = IngestAnswer {
        details: Some(Vec::new()),
        ..ingest.clone()
    };
    assert_eq!(
        text(&partial),
        r#"{"accepted":3,"rejected":0,"duplicates":1,"details":[]}"#
    );
    let replayed = IngestAnswer {
        replayed: true,
        ..ingest.clone()
    };
    assert_eq!(
        text(&replayed),
        r#"{"accepted":3,"rejected":0,"duplicates":1,"replayed":true}"#
    );
    let checked = IngestAnswer {
        checked: true,
        ..ingest
    };
    assert_eq!(
        text(&checked),
        r#"{"accepted":3,"rejected":0,"duplicates":1,"checked":true}"#
    );
    assert_eq!(text(&Deleted { deleted: 7 }), r#"{"deleted":7}"#);
    assert_eq!(
        text(&HealthAnswer {
            status: Health::Ready
        }),
        r#"{"status":"ready"}"#
    );
    let thread = ThreadSummary {
        thread_id: "t".into(),
        title: "hi".into(),
        created_at: 1,
        updated_at: 2,
        last_run_status: Some(RunStatus::AwaitingApproval),
    };
    assert_eq!(
        text(&ThreadList {
            threads: vec![thread],
            next_before: Some(2),
        }),
        r#"{"threads":[{"thread_id":"t","title":"hi","created_at":1,"updated_at":2,"last_run_status":"awaiting_approval"}],"next_before":2}"#
    );
    assert_eq!(
        text(&ThreadList {
            threads: vec![],
            next_before: None,
        }),
        r#"{"threads":[],"next_before":null}"#
    );
}
