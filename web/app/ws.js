// The one client WebSocket of this tab: authenticates with a single-use ticket in the first
// frame, re-subscribes after every reconnect (each subscription computes its own parameters, so
// chat resumes "after the last seq I have"), and detects a dead link with its own pings.
// Network drops (1006 and the like) reconnect with backoff; the server's terminal closes do not:
// 4002 "idle timeout" (A10) signs the user out, and 4001 after a refresh that failed means the
// session is over, so both end here with a notice for the login page instead of a reconnect loop.
import { api, currentRole, logout, refresh } from "./api.js";
import { createStore } from "./store.js";

const PING_EVERY_MS = 5_000;
const PONG_TIMEOUT_MS = 4_000;

/** "idle" | "connecting" | "open" | "offline" */
export const connection = createStore("idle");

/** Close codes of server/realtime/messages.py that end the session rather than the link. */
export const CLOSE_AUTH = 4001; // authentication failed, or the session ended (logout, revocation, expiry)
export const CLOSE_IDLE = 4002; // no frame from the user within the idle limit (A10)

/** Why the server ended this tab's session: "idle" | "ended" | null; shown above the login form. */
export const sessionNotice = createStore(null);

let ws = null;
let nextId = 1;
let started = false;
let listening = false;
let attempt = 0;
let reconnectTimer = null;
let pingTimer = null;
const pending = new Map(); // request id -> {resolve, reject, timer}
const subscriptions = new Set(); // {type, params(), onEvent, onResult, requestId}
const byRequestId = new Map();
const openListeners = new Set();

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/ws`;
}

export function startSocket() {
  if (started) return;
  started = true;
  sessionNotice.set(null);
  if (!listening) {
    // Once per page: a stop and a new sign-in must not add a second pair of listeners.
    listening = true;
    window.addEventListener("online", () => reconnectNow());
    window.addEventListener("offline", () => {
      if (!started) return;
      if (ws) lost(ws, 1006, true);
      connection.set("offline");
    });
  }
  connect();
}

export function stopSocket() {
  started = false;
  clearTimeout(reconnectTimer);
  clearInterval(pingTimer);
  if (ws) ws.close(1000);
  ws = null;
  connection.set("idle");
}

function reconnectNow() {
  if (!started) return;
  clearTimeout(reconnectTimer);
  attempt = 0;
  if (!ws || ws.readyState > 1) connect();
}

function scheduleReconnect() {
  if (!started) return;
  clearTimeout(reconnectTimer);
  const delay = Math.min(10_000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
  attempt += 1;
  reconnectTimer = setTimeout(connect, delay);
}

async function connect() {
  if (!started) return;
  connection.set(navigator.onLine === false ? "offline" : "connecting");
  let ticket;
  try {
    ticket = await api("POST", "/api/auth/ws-ticket");
  } catch (error) {
    scheduleReconnect();
    return;
  }
  const socket = new WebSocket(wsUrl());
  ws = socket;
  let authed = false;
  socket.onmessage = (event) => {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (msg.type === "auth_required") socket.send(JSON.stringify({ type: "auth", ticket: ticket.ticket }));
    else if (msg.type === "auth_ok") {
      authed = true;
      attempt = 0;
      connection.set("open");
      startPings(socket);
      for (const sub of subscriptions) sendSubscription(sub);
      for (const listener of openListeners) listener();
    } else handleMessage(msg);
  };
  socket.onclose = (event) => lost(socket, event.code, authed);
}

/** Forget a socket that closed or stopped answering pings (a dead link may never "close"). */
async function lost(socket, code, authed) {
  if (ws !== socket) return;
  ws = null;
  socket.onmessage = socket.onclose = null;
  try {
    socket.close();
  } catch (_) {
    /* already closing */
  }
  clearInterval(pingTimer);
  for (const [id, entry] of pending) {
    clearTimeout(entry.timer);
    entry.reject(Object.assign(new Error("connection lost"), { code: "disconnected" }));
    pending.delete(id);
  }
  byRequestId.clear();
  if (!started) return;
  if (code === CLOSE_IDLE) {
    // A10: the server found this socket idle past the limit; reconnecting would only restart the
    // clock, so sign out (the other tabs follow) and say why on the login page.
    endSession("idle");
    return;
  }
  connection.set(navigator.onLine === false ? "offline" : "connecting");
  if (code === CLOSE_AUTH || (!authed && code !== 1006)) {
    await refresh().catch(() => false);
    if (!started) return;
    if (code === CLOSE_AUTH && authed && currentRole() === null) {
      // The refresh was refused (401): the session was revoked or expired. No reconnect loop.
      endSession("ended");
      return;
    }
  }
  scheduleReconnect();
}

function endSession(reason) {
  stopSocket();
  sessionNotice.set(reason);
  if (currentRole() !== null) logout();
}

function startPings(socket) {
  clearInterval(pingTimer);
  pingTimer = setInterval(() => {
    call("ping", {}, PONG_TIMEOUT_MS).catch(() => lost(socket, 1006, true));
  }, PING_EVERY_MS);
}

function handleMessage(msg) {
  if (msg.type === "result" || msg.type === "pong") {
    const entry = pending.get(msg.id);
    if (entry) {
      pending.delete(msg.id);
      clearTimeout(entry.timer);
      if (msg.type === "pong" || msg.success) entry.resolve(msg.result ?? null);
      else entry.reject(Object.assign(new Error(msg.error?.message || "error"), msg.error || {}));
    }
    const sub = byRequestId.get(msg.id);
    if (sub && msg.type === "result" && sub.onResult) sub.onResult(msg.success ? msg.result : null, msg.error);
  } else if (msg.type === "event") {
    const sub = byRequestId.get(msg.id);
    if (sub) sub.onEvent(msg.event);
  }
}

/** Send a command and wait for its result; rejects with {code} on an error or a lost link. */
export function call(type, fields = {}, timeoutMs = 15_000) {
  if (!ws || ws.readyState !== 1 || connection.get() !== "open") {
    return Promise.reject(Object.assign(new Error("not connected"), { code: "disconnected" }));
  }
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      reject(Object.assign(new Error("timeout"), { code: "timeout" }));
    }, timeoutMs);
    pending.set(id, { resolve, reject, timer });
    ws.send(JSON.stringify({ id, type, ...fields }));
  });
}

function sendSubscription(sub) {
  const id = nextId++;
  sub.requestId = id;
  byRequestId.set(id, sub);
  ws.send(JSON.stringify({ id, type: sub.type, ...sub.params() }));
}

/**
 * Keep a subscription across reconnects. `params()` is called on each (re)subscribe, so it can
 * say "after_seq: the last one I have". Returns a function that ends it.
 */
export function subscribe(type, params, onEvent, onResult) {
  const sub = { type, params, onEvent, onResult, requestId: null };
  subscriptions.add(sub);
  if (ws && ws.readyState === 1 && connection.get() === "open") sendSubscription(sub);
  return () => {
    subscriptions.delete(sub);
    if (sub.requestId !== null) {
      byRequestId.delete(sub.requestId);
      if (ws && ws.readyState === 1 && connection.get() === "open") {
        call("unsubscribe", { subscription: sub.requestId }).catch(() => {});
      }
    }
  };
}

/** Run `listener` after every (re)connect, e.g. to flush messages that could not be sent. */
export function onOpen(listener) {
  openListeners.add(listener);
  return () => openListeners.delete(listener);
}
