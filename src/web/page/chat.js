// Threads and chat: the thread list (paged), a thread's history (paged from the server, then
// live), the user's messages and the runs they start, each run a live timeline of its agents,
// with cancel while it is queued or running. Everything from the server is written as text.

import { showReport } from "./report.js";

const TERMINAL = ["run_completed", "run_failed", "run_cancelled", "run_interrupted"];

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// What one timeline line says about an event of a run.
function describe(event) {
  const d = event.data ?? {};
  const agent = event.agent ? `${event.agent}: ` : "";
  switch (event.type) {
    case "run_queued": return `queued (position ${d.position})`;
    case "run_started": return "started";
    case "agent_started": return `${agent}started${d.attempt > 1 ? ` (attempt ${d.attempt})` : ""}`;
    case "agent_thinking": return `${agent}${d.text}`;
    case "agent_stream": return `${agent}${d.delta}`;
    case "tool_executing": return `${agent}${d.tool} ← ${JSON.stringify(d.input)}`;
    case "tool_completed":
      return `${agent}${d.tool} → ${JSON.stringify(d.output)} (${d.duration_ms} ms${d.ok ? "" : ", failed"})`;
    case "progress": return `${agent}${d.done} of ${d.total} ${d.unit}`;
    case "agent_completed": return `${agent}done${d.fallback ? " (fallback)" : ""}`;
    case "agent_error": return `${agent}error: ${d.error}${d.error_id ? ` (error id ${d.error_id})` : ""}${d.will_restart ? " — restarting" : ""}`;
    case "agent_restarted": return `${agent}restarting after ${d.backoff_ms} ms`;
    case "agent_fallback": return `${agent}gave up after ${d.attempts} attempts: fallback`;
    case "approval_required": return `approval needed: ${d.summary}`;
    case "approval_resolved": return `approval ${d.decision}`;
    case "run_completed": return "completed";
    case "run_failed": return `failed: ${d.error} (${d.code})`;
    case "run_cancelled": return `cancelled (${d.reason})`;
    case "run_interrupted": return `interrupted (${d.reason})`;
    default: return event.type;
  }
}

export function createChat({ send, authorized, fetchText }) {
  const threads = new Map(); // thread_id -> {thread_id, title, updated_at}
  const history = new Map(); // thread_id -> Map(seq -> event), once loaded
  let current = null; // the thread shown; null: the next message starts a new one
  let nextBefore = null;
  let pendingNew = null; // client_msg_id of a message sent for a new thread
  const reports = new Map(); // run_id -> its report's element
  const openTimelines = new Set(); // ended runs whose timeline the user opened

  function renderThreads() {
    const list = $("thread-list");
    list.replaceChildren();
    const sorted = [...threads.values()].sort((a, b) => b.updated_at - a.updated_at);
    for (const thread of sorted) {
      const item = el("li");
      const open = el("button", "thread", thread.title || "untitled");
      open.type = "button";
      open.dataset.threadId = thread.thread_id;
      if (thread.thread_id === current) open.setAttribute("aria-current", "true");
      open.addEventListener("click", () => select(thread.thread_id));
      const remove = el("button", "delete", "Delete");
      remove.type = "button";
      remove.setAttribute("aria-label", `Delete thread ${thread.title}`);
      remove.addEventListener("click", () => removeThread(thread.thread_id));
      item.append(open, remove);
      list.append(item);
    }
    $("more-threads").hidden = nextBefore === null;
  }

  async function loadThreads(more) {
    const query = more && nextBefore !== null ? `?before=${nextBefore}` : "";
    const page = await authorized(`/api/threads${query}`);
    if (!page) return;
    if (!more) threads.clear();
    for (const t of page.threads) threads.set(t.thread_id, t);
    nextBefore = page.next_before;
    renderThreads();
  }

  async function select(threadId) {
    current = threadId;
    renderThreads();
    if (!history.has(threadId)) {
      // Registered before the pages load, so live events of the thread that come meanwhile
      // land in it too; the map keys on seq, so an event in both is kept once.
      const events = new Map();
      history.set(threadId, events);
      let after = 0;
      for (;;) {
        const page = await authorized(`/api/threads/${threadId}/events?after_seq=${after}&limit=1000`);
        if (!page) {
          history.delete(threadId); // asked again at the next selection
          return;
        }
        for (const e of page.events) events.set(e.seq, e);
        if (page.next_after_seq === null) break;
        after = page.next_after_seq;
      }
    }
    if (current === threadId) renderThread();
  }

  async function removeThread(threadId) {
    const answer = await authorized(`/api/threads/${threadId}`, { method: "DELETE" });
    if (answer) forget(threadId);
  }

  function forget(threadId) {
    threads.delete(threadId);
    history.delete(threadId);
    if (current === threadId) {
      current = null;
      renderThread();
    }
    renderThreads();
  }

  function newThread() {
    current = null;
    renderThreads();
    renderThread();
    $("composer-input").focus();
  }

  function renderThread() {
    const log = $("messages");
    const follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
    log.replaceChildren();
    $("thread-title").textContent = current ? threads.get(current)?.title ?? "" : "New thread";
    if (!current) return;
    const events = [...(history.get(current)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
    const runs = new Map();
    const approvals = new Map(); // approval_id -> its card
    for (const event of events) {
      if (event.type === "message_received") {
        log.append(el("p", "message user", event.data.content));
        continue;
      }
      if (!event.run_id || event.type === "thread_created") continue;
      let run = runs.get(event.run_id);
      if (!run) {
        run = {
          card: el("article", "run"),
          timeline: el("details", "steps"),
          heading: el("summary"),
          steps: el("ol", "timeline"),
          status: el("p", "status"),
          ended: false,
        };
        run.card.dataset.runId = event.run_id;
        run.timeline.append(run.heading, run.steps);
        run.card.append(run.status, run.timeline);
        runs.set(event.run_id, run);
        log.append(run.card);
      }
      if (event.type === "approval_required") {
        const card = approvalCard(event.data);
        approvals.set(event.data.approval_id, card);
        run.card.insertBefore(card, run.timeline);
      }
      if (event.type === "approval_resolved") {
        const card = approvals.get(event.data.approval_id);
        if (card) resolveCard(card, event.data.decision);
      }
      const last = run.steps.lastElementChild;
      if (event.type === "agent_stream" && event.agent && last?.dataset.streamOf === event.agent) {
        // A streamed answer reads as one line, not one line per piece.
        last.textContent += event.data.delta;
      } else {
        const step = el("li", `step ${event.type}`, describe(event));
        step.dataset.seq = String(event.seq);
        if (event.type === "agent_stream") step.dataset.streamOf = event.agent;
        run.steps.append(step);
      }
      run.heading.textContent = `Timeline (${run.steps.childElementCount} steps)`;
      if (event.type === "run_completed") {
        run.card.append(el("p", "summary", event.data.summary));
        // Built once per run (one fetch), then moved into each new rendering.
        let report = reports.get(event.run_id);
        if (!report) {
          report = el("section", "report");
          report.setAttribute("aria-label", "Report");
          reports.set(event.run_id, report);
          showReport(report, event.run_id, event.data.result, fetchText);
        }
        run.card.append(report);
      }
      if (event.type === "progress") {
        if (!run.progress) {
          run.progress = el("progress", "progress");
          run.card.insertBefore(run.progress, run.timeline);
        }
        run.progress.max = event.data.total;
        run.progress.value = event.data.done;
        run.progress.setAttribute("aria-label", describe(event));
      }
      if (event.type === "run_queued") run.queued = event.data.position;
      if (event.type === "run_started") run.queued = null;
      if (TERMINAL.includes(event.type)) run.ended = event.type;
      if (run.ended) run.status.textContent = describe(event);
      else if (run.queued) run.status.textContent = `queued — position ${run.queued}`;
      else run.status.textContent = "working…";
      run.card.dataset.state = run.ended || "running";
    }
    for (const [runId, run] of runs) {
      // Open while the run works, folded once it has ended; what the user opens stays open
      // across renderings. (A click on the summary, not `toggle`: setting `open` here fires
      // `toggle` too.)
      run.timeline.open = !run.ended || openTimelines.has(runId);
      run.heading.addEventListener("click", () => {
        if (run.timeline.open) openTimelines.delete(runId);
        else openTimelines.add(runId);
      });
      if (run.ended) continue;
      const cancel = el("button", "cancel", "Cancel");
      cancel.type = "button";
      cancel.addEventListener("click", () => send({ type: "cancel_run", run_id: runId }));
      run.status.append(" ", cancel);
    }
    // Follow the end only for a reader already there, not one who scrolled up to read.
    if (follow) log.lastElementChild?.scrollIntoView({ block: "end" });
  }

  // A card for an `approval_required`: what will happen, Approve / Reject, the time left.
  function approvalCard(data) {
    const card = el("section", "approval");
    card.setAttribute("aria-label", "Approval needed");
    card.dataset.approvalId = data.approval_id;
    card.append(el("p", "approval-summary", data.summary));
    card.append(el("pre", "approval-details", JSON.stringify(data.details, null, 2)));
    const left = el("p", "time-left");
    left.dataset.expires = String(data.expires_at);
    card.append(left);
    const buttons = el("p", "approval-buttons");
    for (const [decision, label] of [["approve", "Approve"], ["reject", "Reject"]]) {
      const button = el("button", decision, label);
      button.type = "button";
      button.addEventListener("click", () => {
        send({ type: "approval", approval_id: data.approval_id, decision });
      });
      buttons.append(button);
    }
    card.append(buttons);
    showTimeLeft(left);
    return card;
  }

  // An answered (or expired, or cancelled) approval: its decision instead of the buttons.
  function resolveCard(card, decision) {
    card.dataset.decision = decision;
    const words = { approve: "approved", reject: "rejected", expired: "expired", cancelled: "cancelled" };
    card.querySelector(".approval-buttons")?.replaceWith(el("p", "decision", words[decision] ?? decision));
    card.querySelector(".time-left")?.remove();
  }

  function showTimeLeft(node) {
    const seconds = Math.max(0, Math.round((Number(node.dataset.expires) - Date.now()) / 1000));
    node.textContent = `expires in ${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  }

  function onEvent(event) {
    if (event.type === "thread_created") {
      threads.set(event.thread_id, {
        thread_id: event.thread_id,
        title: event.data.title,
        updated_at: event.ts,
      });
      history.set(event.thread_id, history.get(event.thread_id) ?? new Map());
      if (pendingNew && event.data.client_msg_id === pendingNew) {
        pendingNew = null;
        current = event.thread_id;
      }
      renderThreads();
    }
    if (event.type === "thread_deleted") return forget(event.thread_id);
    const thread = threads.get(event.thread_id);
    if (thread && thread.updated_at !== event.ts) {
      thread.updated_at = event.ts;
      renderThreads();
    }
    history.get(event.thread_id)?.set(event.seq, event);
    if (event.thread_id === current) renderThread();
  }

  function sendMessage(event) {
    event?.preventDefault();
    const input = $("composer-input");
    const content = input.value.trim();
    if (!content) return;
    // Random hex (crypto.randomUUID exists only in secure contexts: not on plain http to a
    // LAN address).
    const clientMsgId = [...crypto.getRandomValues(new Uint8Array(16))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    const message = { type: "user_message", content, client_msg_id: clientMsgId };
    if (current) message.thread_id = current;
    else pendingNew = clientMsgId;
    if (send(message)) input.value = "";
  }

  function onError(frame) {
    $("chat-error").textContent = `${frame.code}: ${frame.message}`;
  }

  function start() {
    $("composer").addEventListener("submit", sendMessage);
    $("composer-input").addEventListener("keydown", (key) => {
      if (key.key === "Enter" && !key.shiftKey && !key.isComposing) sendMessage(key);
    });
    $("new-thread").addEventListener("click", newThread);
    $("more-threads").addEventListener("click", () => loadThreads(true));
    setInterval(() => document.querySelectorAll(".approval .time-left").forEach(showTimeLeft), 1000);
  }

  function reset() {
    threads.clear();
    history.clear();
    reports.clear();
    openTimelines.clear();
    pendingNew = null;
    $("chat-error").textContent = "";
    $("composer-input").value = "";
    current = null;
    nextBefore = null;
    renderThreads();
    renderThread();
  }

  return { start, loadThreads, onEvent, onError, reset };
}
