// The HTTP API client. The access token lives only in memory and is shared by this browser's
// tabs over a BroadcastChannel; the refresh token is an HttpOnly cookie that JavaScript never
// sees, sent only to the refresh and logout paths. One tab at a time refreshes (Web Locks), so a
// rotated single-use refresh token is never spent twice.
import { createStore } from "./store.js";

const CLIENT_HEADERS = { "X-Telemed-Client": "web" };
const REFRESH_HEADERS = { ...CLIENT_HEADERS, "X-Telemed-Refresh": "1" };
const channel = "BroadcastChannel" in window ? new BroadcastChannel("telemed-auth") : null;

/** {role, expiresAt} of the signed-in user, or null. The token itself is not in the store. */
export const session = createStore(null);
let access = null; // {token, expiresAt (ms), role}
let refreshTimer = null;

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || (status === 0 ? "network" : "http_" + status);
    this.rules = error.rules || [];
    this.reasons = error.reasons || [];
    this.details = error.details;
    this.network = status === 0;
  }
}

function setAccess(next, { broadcast = true } = {}) {
  access = next;
  clearTimeout(refreshTimer);
  if (next) {
    session.set({ role: next.role, expiresAt: next.expiresAt });
    const delay = Math.max(5_000, next.expiresAt - Date.now() - 60_000);
    refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
  } else {
    session.set(null);
  }
  if (broadcast && channel) channel.postMessage(next ? { type: "token", access: next } : { type: "logout" });
}

function fromTokens(body) {
  return { token: body.access_token, expiresAt: Date.parse(body.expires_at), role: body.role };
}

if (channel) {
  channel.onmessage = ({ data }) => {
    if (data.type === "ask" && access) channel.postMessage({ type: "token", access });
    else if (data.type === "token" && (!access || data.access.expiresAt >= access.expiresAt)) {
      setAccess(data.access, { broadcast: false });
    } else if (data.type === "logout" && access) setAccess(null, { broadcast: false });
  };
}

function askOtherTabs(timeoutMs = 250) {
  if (!channel) return Promise.resolve(false);
  return new Promise((resolve) => {
    const unsubscribe = session.subscribe((value) => {
      if (value) {
        unsubscribe();
        resolve(true);
      }
    });
    channel.postMessage({ type: "ask" });
    setTimeout(() => {
      unsubscribe();
      resolve(Boolean(access));
    }, timeoutMs);
  });
}

async function withRefreshLock(fn) {
  if (navigator.locks) return navigator.locks.request("telemed-refresh", fn);
  return fn();
}

/** Rotate the refresh cookie for a new access token (one tab at a time); false when signed out. */
export async function refresh() {
  const before = access;
  return withRefreshLock(async () => {
    // Another tab may have refreshed while this one waited for the lock.
    if (access && access !== before && access.expiresAt - Date.now() > 90_000) return true;
    let response;
    try {
      response = await fetch("/api/auth/refresh", {
        method: "POST",
        credentials: "same-origin",
        headers: { ...REFRESH_HEADERS, "Content-Type": "application/json" },
        body: "{}",
      });
    } catch (_) {
      return Boolean(access);
    }
    if (!response.ok) {
      if (response.status === 401) setAccess(null);
      return false;
    }
    setAccess(fromTokens(await response.json()));
    return true;
  });
}

/** On page load: take the token from another tab, else from the refresh cookie. */
export async function restoreSession() {
  if (access) return true;
  if (await askOtherTabs()) return true;
  return refresh();
}

export function currentRole() {
  return access ? access.role : null;
}

async function send(method, path, { body, form, query, auth = true } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    const qs = params.toString();
    if (qs) url += "?" + qs;
  }
  const headers = { ...CLIENT_HEADERS };
  if (auth && access) headers.Authorization = `Bearer ${access.token}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  try {
    return await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  } catch (_) {
    throw new ApiError(0, null);
  }
}

/** Call the API; a 401 refreshes the token once and retries. Throws ApiError. */
export async function api(method, path, options = {}) {
  let response = await send(method, path, options);
  if (response.status === 401 && options.auth !== false && (await refresh())) {
    response = await send(method, path, options);
  }
  if (options.raw) {
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    return response;
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, query) => api("GET", path, { query });
export const post = (path, body = {}) => api("POST", path, { body });

export async function staffLogin(username, password) {
  const tokens = await api("POST", "/api/auth/login", { body: { username, password }, auth: false });
  setAccess(fromTokens(tokens));
  return tokens.role;
}

/** `fields`: {policy_number | insured_number, birth_date, phone_last_digits?}. */
export function startPolicyLogin(fields) {
  return api("POST", "/api/auth/policy/start", { body: fields, auth: false });
}

export async function verifyPolicyLogin(challengeId, code) {
  const tokens = await api("POST", "/api/auth/policy/verify", {
    body: { challenge_id: challengeId, code },
    auth: false,
  });
  setAccess(fromTokens(tokens));
  return tokens.role;
}

export async function logout() {
  try {
    await api("POST", "/api/auth/logout");
  } catch (_) {
    /* the session may already be over; the local state is cleared anyway */
  }
  setAccess(null);
}

/** An attachment as a blob: URL (the download needs the Authorization header). */
export async function blobUrl(path) {
  const response = await api("GET", path, { raw: true });
  return URL.createObjectURL(await response.blob());
}
