// enclave's page: sign in (a dev-mode user name or a pasted token), then one WebSocket to
// /ws that reconnects with backoff and resumes after the last `seq` it saw (PROTOCOL.md §2),
// handing each event once to the chat (`chat.js`). User strings only ever reach the document
// as text (`textContent`), never as markup.

import { createChat } from "./chat.js";
import { createUsage } from "./usage.js";

const state = { token: null, user: null, socket: null, lastSeq: 0, retry: 0, timer: null };

// A request with a token: the signed-in one unless given.
function withToken(path, init = {}, token = state.token) {
  return fetch(path, {
    ...init,
    headers: { ...(init.headers ?? {}), Authorization: `Bearer ${token}` },
  });
}

// A request with the token; its JSON answer, or null after showing what went wrong.
async function authorized(path, init = {}) {
  const response = await withToken(path, init);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body?.error?.message ?? `the server answered ${response.status}`;
    document.getElementById("chat-error").textContent = message;
    return null;
  }
  return body;
}

// Sends a client frame; false (and says so) while disconnected.
function send(frame) {
  if (state.socket?.readyState !== WebSocket.OPEN) {
    document.getElementById("chat-error").textContent = "Not connected: try again in a moment.";
    return false;
  }
  document.getElementById("chat-error").textContent = "";
  state.socket.send(JSON.stringify(frame));
  return true;
}

// A text answer (a report) with the token; null after showing what went wrong.
async function fetchText(path) {
  const response = await withToken(path);
  if (!response.ok) {
    document.getElementById("chat-error").textContent = `the server answered ${response.status}`;
    return null;
  }
  return response.text();
}

const chat = createChat({ send, authorized, fetchText });
const usage = createUsage({ withToken, session: () => ({ user: state.user, token: state.token }) });

const $ = (id) => document.getElementById(id);

function showConnection(text, name) {
  const el = $("connection");
  el.textContent = text;
  el.dataset.state = name;
}

function showSignedIn(signedIn) {
  $("sign-in").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  $("user-label").textContent = signedIn ? state.user ?? "" : "";
}

async function devSignIn(event) {
  event.preventDefault();
  const user = $("user-name").value.trim();
  $("sign-in-error").textContent = "";
  try {
    const response = await fetch("/api/dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user }),
    });
    const body = await response.json();
    if (!response.ok) {
      throw new Error(body?.error?.message ?? `the server answered ${response.status}`);
    }
    signIn(body.token);
  } catch (error) {
    $("sign-in-error").textContent = `Could not sign in: ${error.message}`;
  }
}

function tokenSignIn(event) {
  event.preventDefault();
  signIn($("token").value.trim());
}

function signIn(token) {
  closeSocket();
  state.token = token;
  state.lastSeq = 0;
  sessionStorage.setItem("enclave-token", token);
  connect();
}

// Closes the socket and stops a pending reconnect, so a second sign-in leaves no socket behind.
function closeSocket() {
  clearTimeout(state.timer);
  if (state.socket) {
    const socket = state.socket;
    state.socket = null;
    socket.close(1000);
  }
}

// The server's history is shorter than ours (a reset database, a deleted account): PROTOCOL.md
// §2 says reload; keeping our last seq would drop every new event as a copy.
function startOver(lastSeq) {
  state.lastSeq = lastSeq;
  chat.reset();
  chat.loadThreads(false);
}

function signOut() {
  sessionStorage.removeItem("enclave-token");
  state.token = null;
  state.user = null;
  closeSocket();
  state.lastSeq = 0;
  chat.reset();
  usage.reset();
  showSignedIn(false);
  showConnection("signed out", "signed-out");
}

// Checks the token over HTTP first: a refused token fails the WebSocket upgrade with a 401 the
// page cannot read, which would look like a lost connection and be retried for ever.
async function connect() {
  let check;
  try {
    check = await fetch("/api/threads?limit=1", {
      headers: { Authorization: `Bearer ${state.token}` },
    });
  } catch {
    return retryLater();
  }
  if (!state.token) return;
  if (check.status === 401) {
    signOut();
    $("sign-in-error").textContent = "The server refused the token: sign in again.";
    return;
  }
  if (!check.ok) return retryLater();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({ token: state.token });
  if (state.lastSeq > 0) query.set("after_seq", String(state.lastSeq));
  // The routing hint a load balancer in front of several nodes hashes on (the server reads
  // only the token).
  if (state.user) query.set("user", state.user);
  const socket = new WebSocket(`${scheme}//${location.host}/ws?${query}`);
  state.socket = socket;
  showConnection("connecting…", "connecting");
  socket.addEventListener("message", (message) => {
    if (socket !== state.socket) return;
    const frame = JSON.parse(message.data);
    if (typeof frame.seq === "number") {
      // Copies of events already seen (a replay meeting live ones) are dropped.
      if (frame.seq <= state.lastSeq) return;
      state.lastSeq = frame.seq;
      chat.onEvent(frame);
      return;
    }
    if (frame.type === "error") chat.onError(frame);
    if (frame.type === "resumed" && frame.through_seq < state.lastSeq) startOver(frame.through_seq);
    if (frame.type === "connected") {
      state.retry = 0;
      state.user = frame.user_id;
      showSignedIn(true);
      showConnection(`connected as ${frame.user_id}`, "connected");
      if (state.lastSeq === 0 || frame.last_seq < state.lastSeq) {
        // A first connection (or a server that forgot ours): history comes from the thread
        // pages, live events from here.
        startOver(frame.last_seq);
      }
    }
  });
  socket.addEventListener("close", (closed) => {
    if (socket !== state.socket) return;
    state.socket = null;
    if (closed.code === 4001) {
      // The token expired: signing in again is the way on.
      signOut();
      $("sign-in-error").textContent = "Your token expired: sign in again.";
      return;
    }
    if (closed.code === 4029) {
      // This user has the most sockets the server allows open elsewhere: wait for one to go.
      state.retry = Math.max(state.retry, 4);
      return retryLater("too many tabs of this user are open: close one");
    }
    retryLater();
  });
}

// Reconnects after a growing pause (0.5 s doubling to 30 s), saying so (and why, if known).
function retryLater(why = "disconnected") {
  if (!state.token) return;
  const wait = Math.min(30_000, 500 * 2 ** state.retry);
  state.retry += 1;
  showConnection(`${why} — retrying in ${Math.round(wait / 1000)} s`, "disconnected");
  clearTimeout(state.timer);
  state.timer = setTimeout(connect, wait);
}

function start() {
  $("dev-sign-in").addEventListener("submit", devSignIn);
  $("token-sign-in").addEventListener("submit", tokenSignIn);
  $("sign-out").addEventListener("click", signOut);
  chat.start();
  usage.start();
  const saved = sessionStorage.getItem("enclave-token");
  if (saved) signIn(saved);
}

start();
