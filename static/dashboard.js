// dashboard.js: the live monitoring dashboard served at `/`.
//
// Signs in by exchanging an API key for a session cookie (POST /session; the
// key is never kept: no localStorage, no URL), keeps the session's CSRF token
// in memory only (GET /session gives it again after a reload), lists the
// tenant's chats (GET /chats) and follows their statuses live over one
// `/ws` socket (`watch_status`, authenticated by the cookie), shows one chat's
// pending input (GET /chats/{id}) with an answer box, a cancel button and its
// live transcript (the <flowgate-chat> widget when it is served, else a plain
// transcript from the same socket), and the node's figures (GET /node).
// Every text from the server is set with textContent: never parsed as HTML.

import { Flowgate } from "/static/flowgate.js";

const STATUSES = ["ready", "running", "wait_for_human_input", "completed", "error"];
const MAX_PAGES = 10;           // chats listed: at most 10 pages of 100
const NODE_EVERY_MS = 2000;     // how often the node's figures are read

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

const state = { csrf: null, chats: new Map(), selected: null, socket: null, timer: null, last: null, widget: null };

class HttpError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

/** A same-origin JSON request; state-changing ones carry the CSRF token. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (resp.status === 401 && path !== "/session") signedOut("Your session ended; sign in again.");
  if (!resp.ok) throw new HttpError(resp.status, data);
  return data;
}

// ---- session ---------------------------------------------------------------

async function boot() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("filters").addEventListener("input", render);
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("answer-form").addEventListener("submit", answer);
  $("cancel").addEventListener("click", cancel);
  try {
    start(await api("GET", "/session"));
  } catch {
    signedOut("");
  }
}

async function signIn(e) {
  e.preventDefault();
  const input = $("api-key");
  $("sign-in-error").textContent = "";
  try {
    const session = await api("POST", "/session", { api_key: input.value });
    input.value = "";
    start(session);
  } catch (err) {
    $("sign-in-error").textContent = err.status === 401 ? "That key is not valid." : err.message;
  }
}

async function signOut() {
  await api("DELETE", "/session").catch(() => {});
  signedOut("");
}

function signedOut(why) {
  state.csrf = null;
  state.socket?.close();
  state.socket = null;
  clearInterval(state.timer);
  state.chats.clear();
  state.selected = null;
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("socket").textContent = "";
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = why;
  $("api-key").focus();
}

async function start(session) {
  state.csrf = session.csrf_token;
  $("who").textContent = `tenant ${session.tenant}`;
  $("sign-in").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  await loadChats();
  connect();
  readNode();
  state.timer = setInterval(readNode, NODE_EVERY_MS);
}

// ---- chats and their live statuses -----------------------------------------

async function loadChats() {
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const q = new URLSearchParams({ limit: "100" });
    if (cursor) q.set("after", cursor);
    const list = await api("GET", `/chats?${q}`);
    for (const chat of list.data) state.chats.set(chat.id, chat);
    if (!list.has_more || !list.next_cursor) break;
    cursor = list.next_cursor;
  }
  render();
}

function connect() {
  const socket = new Flowgate({
    url: location.origin,
    onStatus: (data, chatId) => statusChanged(chatId, data.status),
    onMessage: (m, chatId) => chatId === state.selected && !state.widget && showMessage(m, false),
    onPartial: (p) => p.chat_id === state.selected && !state.widget && showMessage(p, true),
    onInputRequest: (_, chatId) => chatId === state.selected && showDetail(chatId),
    onConnectionState: (s) => {
      $("socket").textContent = s === "open" ? "live" : s;
      if (s === "waiting") api("GET", "/session").catch(() => {});   // a 401 signs out
    },
  });
  state.socket = socket;
  socket.connect().then(() => socket.watchStatus()).catch(() => {});
}

async function statusChanged(chatId, status) {
  const known = state.chats.get(chatId);
  if (known) {
    known.status = status;
    known.updated_at = new Date().toISOString();
  } else {
    try { state.chats.set(chatId, await api("GET", `/chats/${encodeURIComponent(chatId)}`)); } catch { return; }
  }
  render();
  if (chatId === state.selected) showDetail(chatId);
}

function matches(chat) {
  const status = $("status-filter").value;
  const text = $("text-filter").value.trim().toLowerCase();
  return (!status || chat.status === status)
    && (!text || `${chat.name || ""} ${chat.id}`.toLowerCase().includes(text));
}

function render() {
  renderCounts();
  const rows = [...state.chats.values()]
    .filter(matches)
    .sort((a, b) => (b.updated_at || "").localeCompare(a.updated_at || ""))
    .map(row);
  $("chats").tBodies[0].replaceChildren(...rows);
  $("empty").hidden = rows.length > 0;
}

function row(chat) {
  const tr = el("tr", { tabIndex: 0 },
    el("td", {}, el("span", { textContent: chat.name || "(unnamed)" }), el("br"),
      el("code", { className: "muted", textContent: chat.id })),
    el("td", {}, el("span", { className: `status ${chat.status}`, textContent: chat.status })),
    el("td", { className: "muted", textContent: (chat.updated_at || "").replace("T", " ").slice(0, 19) }));
  tr.dataset.chat = chat.id;
  tr.setAttribute("aria-selected", String(chat.id === state.selected));
  tr.addEventListener("click", () => select(chat.id));
  tr.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(chat.id); }
  });
  return tr;
}

function renderCounts() {
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const chat of state.chats.values()) counts[chat.status] = (counts[chat.status] || 0) + 1;
  const current = $("status-filter").value;
  $("counts").replaceChildren(...STATUSES.map((s) => {
    const b = el("button", { type: "button", textContent: `${s} ${counts[s]}` });
    b.dataset.status = s;
    b.dataset.count = String(counts[s]);
    b.setAttribute("aria-pressed", String(current === s));
    b.addEventListener("click", () => { $("status-filter").value = current === s ? "" : s; render(); });
    return b;
  }));
}

// ---- one chat ----------------------------------------------------------------

async function select(chatId) {
  if (state.selected && state.selected !== chatId && !state.widget) state.socket?.unsubscribe(state.selected).catch(() => {});
  state.selected = chatId;
  render();
  $("detail").hidden = false;
  $("transcript").replaceChildren();
  await showDetail(chatId);
  await showTranscript(chatId);
}

async function showDetail(chatId) {
  let chat;
  try { chat = await api("GET", `/chats/${encodeURIComponent(chatId)}`); } catch (err) {
    $("detail-error").textContent = err.message;
    return;
  }
  if (chatId !== state.selected) return;
  state.chats.set(chat.id, chat);
  $("detail-title").textContent = chat.name || "(unnamed)";
  $("detail-id").textContent = chat.id;
  $("detail-status").textContent = chat.status;
  $("detail-status").className = `status ${chat.status}`;
  const pending = chat.pending_input;
  $("pending").hidden = !pending;
  $("pending").dataset.request = pending?.request_id || "";
  $("pending-agent").textContent = pending?.agent || "";
  $("pending-prompt").textContent = pending?.prompt || "";
  $("cancel").disabled = chat.status !== "running" && chat.status !== "wait_for_human_input";
}

/** The transcript: the <flowgate-chat> widget when the gateway serves it,
 *  else the messages so far plus live ones from the dashboard's socket. */
async function showTranscript(chatId) {
  state.widget ??= await import("/static/flowgate-chat.js").then(() => true, () => false);
  if (chatId !== state.selected) return;
  if (state.widget) {
    const widget = el("flowgate-chat");
    widget.setAttribute("chat", chatId);
    $("transcript").replaceChildren(widget);
    return;
  }
  try { await state.socket?.subscribe(chatId, 0); } catch { /* shown once the socket is back */ }
}

function showMessage(m, partial) {
  const id = m.id || m.message_id;
  let node = [...$("transcript").children].find((n) => n.dataset.message === id);
  if (!node) {
    node = el("div", { className: "msg" }, el("span", { className: "who" }), el("span", { className: "text" }));
    node.dataset.message = id;
    $("transcript").append(node);
  }
  node.classList.toggle("partial", partial);
  node.querySelector(".who").textContent = m.sender || m.role || "";
  node.querySelector(".text").textContent = m.content || "";
}

async function answer(e) {
  e.preventDefault();
  const chatId = state.selected;
  const input = $("answer");
  $("detail-error").textContent = "";
  try {
    await api("POST", `/chats/${encodeURIComponent(chatId)}/input`,
      { message: input.value, request_id: $("pending").dataset.request || undefined });
    input.value = "";
    $("pending").hidden = true;
  } catch (err) {
    $("detail-error").textContent = err.message;
  }
}

async function cancel() {
  $("detail-error").textContent = "";
  try {
    await api("POST", `/chats/${encodeURIComponent(state.selected)}/cancel`);
  } catch (err) {
    $("detail-error").textContent = err.message;
  }
}

// ---- the node ----------------------------------------------------------------

async function readNode() {
  let f;
  try { f = await api("GET", "/node"); } catch { return; }
  const prev = state.last;
  state.last = f;
  $("fig-connections").textContent = String(f.ws_connections + f.sse_streams + f.long_polls);
  $("fig-runs").textContent = String(f.runs_running);
  const secs = prev ? (f.at_ms - prev.at_ms) / 1000 : 0;
  $("fig-frames").textContent = secs > 0 ? ((f.frames_sent - prev.frames_sent) / secs).toFixed(1) : "0.0";
  $("fig-errors").textContent = String(f.http_server_errors + f.runs_failed + f.model_errors);
}

boot();
