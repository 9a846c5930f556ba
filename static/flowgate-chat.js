// flowgate-chat.js: <flowgate-chat>, an embeddable chat widget for one
// Flowgate chat, built on flowgate.js (served at /static/flowgate-chat.js).
//
//   <script type="module" src="https://gw.example.com/static/flowgate-chat.js"></script>
//   <flowgate-chat chat="chat_…" gateway="https://gw.example.com"></flowgate-chat>
//   <script>document.querySelector("flowgate-chat").token = () => myBackend.chatToken();</script>
//
// Attributes: `chat` (required), `gateway` (default: this script's origin),
// `after-seq` (skip the history up to this seq). Property: `token`, a function
// returning a chat token or a promise of one (unset: no token, so a same-origin
// session cookie authenticates the socket). Events (bubbling, composed):
// `flowgate-status` {status, previous}, `flowgate-connection` {state, …},
// `flowgate-message` (the stored message).
//
// Everything an agent or a user wrote reaches the page as text (textContent),
// never as HTML. The only markup set with innerHTML is the constant template.

import { Flowgate } from "./flowgate.js";

const STYLE = `
:host { display: block; font: 15px/1.45 system-ui, sans-serif; color: #1d232b;
  --accent: var(--flowgate-accent, #2458d6); }
.box { display: flex; flex-direction: column; height: var(--flowgate-chat-height, 34rem);
  max-height: 100%; border: 1px solid #cfd6e0; border-radius: 10px; overflow: hidden; background: #fff; }
header { display: flex; flex-wrap: wrap; gap: .25rem .75rem; align-items: center;
  padding: .5rem .75rem; border-bottom: 1px solid #e1e6ee; background: #f5f7fa; }
.status { margin: 0; flex: 1; }
.status b { font-weight: 600; }
.conn { color: #8a5a00; }
.messages { flex: 1; overflow-y: auto; list-style: none; margin: 0; padding: .75rem;
  display: flex; flex-direction: column; gap: .5rem; }
.msg { max-width: 85%; padding: .45rem .7rem; border-radius: 10px; background: #eef1f6;
  overflow-wrap: anywhere; }
.msg[data-role="user"], .msg[data-role="human_input"] { align-self: flex-end; background: #dde7fd; }
.msg[data-role="system"] { align-self: center; background: #f7f2e2; }
.who { font-size: .8em; color: #4a5563; }
.who b { color: #1d232b; }
.text { white-space: pre-wrap; }
.partial .text::after { content: "\\258D"; animation: blink 1s steps(1) infinite; }
@keyframes blink { 50% { opacity: 0; } }
@media (prefers-reduced-motion: reduce) { .partial .text::after { animation: none; } }
.request { border-top: 1px solid #e8d9a8; background: #fff8e6; padding: .5rem .75rem; }
.request p { margin: 0 0 .4rem; white-space: pre-wrap; overflow-wrap: anywhere; }
.request pre { margin: .2rem 0; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .85em; }
.request ul { margin: 0 0 .4rem; padding-left: 1.2rem; }
.actions { display: flex; flex-wrap: wrap; gap: .4rem; }
.error { margin: 0; padding: .4rem .75rem; color: #9b1c1c; background: #fdecec; }
form { display: flex; gap: .5rem; padding: .5rem; border-top: 1px solid #e1e6ee; }
textarea { flex: 1; min-width: 0; min-height: 2.6rem; max-height: 8rem; resize: vertical;
  font: inherit; padding: .4rem .5rem; border: 1px solid #aab4c3; border-radius: 8px; }
button { font: inherit; min-height: 2.5rem; padding: 0 .9rem; border-radius: 8px; cursor: pointer;
  border: 1px solid var(--accent); background: #fff; color: var(--accent); }
button.primary { background: var(--accent); color: #fff; }
button:disabled { opacity: .5; cursor: default; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
[hidden] { display: none !important; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap; }
@media (max-width: 480px) {
  :host { font-size: 14px; }
  .msg { max-width: 100%; }
  form { flex-wrap: wrap; }
  textarea { flex-basis: 100%; }
  form button { flex: 1; }
}`;

const TEMPLATE = `
<div class="box">
  <header>
    <p class="status">Status: <b class="status-value">connecting…</b></p>
    <span class="conn" hidden>Reconnecting…</span>
    <button type="button" class="cancel" disabled>Cancel run</button>
  </header>
  <ol class="messages" aria-label="Messages"></ol>
  <section class="request" aria-label="Input request" hidden></section>
  <p class="error" role="alert" hidden></p>
  <form class="composer">
    <label class="sr-only" for="text">Message</label>
    <textarea id="text" rows="2" placeholder="Write a message (Enter sends, Shift+Enter: new line)"></textarea>
    <button class="primary send">Send</button>
  </form>
  <div class="sr-only live" aria-live="polite"></div>
</div>`;

/** `<flowgate-chat>`: one chat's transcript, input requests and composer. */
export class FlowgateChat extends HTMLElement {
  static observedAttributes = ["chat", "gateway", "after-seq"];
  #token = null;      // () => token | Promise<token>
  #fg = null;         // the Flowgate client while connected
  #status = null;     // the chat's status, once known
  #request = null;    // the pending input request, if any
  #chat = null;       // the chat id the client was started with
  #troubled = false;  // whether the reconnecting indicator shows
  #bubbles = new Map(); // message id -> <li>
  #ui = {};

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style>${TEMPLATE}`;   // constant markup only
    const q = (s) => root.querySelector(s);
    this.#ui = { status: q(".status-value"), conn: q(".conn"), cancel: q(".cancel"),
      list: q(".messages"), request: q(".request"), error: q(".error"), form: q(".composer"),
      text: q("textarea"), send: q(".send"), live: q(".live") };
    const ui = this.#ui;
    ui.form.addEventListener("submit", (e) => { e.preventDefault(); this.#submit(); });
    ui.text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); ui.form.requestSubmit(); }
    });
    ui.cancel.addEventListener("click", () => this.#command((fg) => fg.cancel()));
  }

  /** The chat-token provider: a function returning a token or a promise of one. */
  get token() { return this.#token; }
  set token(provider) {
    this.#token = typeof provider === "function" ? provider : null;
    if (this.#fg) this.#restart();   // connected already: again, with the token
  }

  connectedCallback() {
    // A `token` set on the element before this class was defined shadows the setter.
    if (Object.hasOwn(this, "token")) { const t = this.token; delete this.token; this.token = t; }
    queueMicrotask(() => this.#start());   // lets the page set `token` first
  }
  disconnectedCallback() { this.#stop(); }
  attributeChangedCallback(name, old, value) {
    if (old === value) return;
    if (this.#fg) this.#restart();
    else if (name === "chat") this.#clear();   // not started (yet): start() reads it
  }

  #start() {
    if (!this.isConnected || this.#fg) return;
    const chat = this.getAttribute("chat");
    if (!chat) return this.#fail("flowgate-chat: the `chat` attribute is required");
    this.#chat = chat;
    const url = this.getAttribute("gateway") || new URL(import.meta.url).origin;
    const provider = this.#token;
    const fg = new Flowgate({
      url, chat, afterSeq: Number(this.getAttribute("after-seq")) || 0,
      token: provider ? () => provider() : undefined,
      onConnectionState: (state, d) => this.#current(fg) && this.#connection(state, d),
      onPartial: (p) => this.#current(fg) && this.#bubble(p.message_id, p.sender, "assistant", p.content, true),
      onMessage: (m) => this.#current(fg) && this.#message(m),
      onStatus: (s) => this.#current(fg) && this.#statusChanged(s),
      onInputRequest: (r) => this.#current(fg) && this.#showRequest(r),
      onEvent: (f) => {
        if (this.#current(fg) && f.type === "input.resolved" && f.data.request_id === this.#request?.request_id) {
          this.#showRequest(null);
        }
      },
      onError: (f) => this.#current(fg) && this.#fail(`${f.code}: ${f.message}`),
    });
    this.#fg = fg;
    fg.connect().catch((e) => this.#current(fg) && this.#fail(e.message));
  }

  #current(fg) { return fg === this.#fg; }

  #stop() {
    const fg = this.#fg;
    this.#fg = null;
    fg?.close();
  }

  #restart() {
    this.#stop();
    this.#clear();
    this.#start();
  }

  #clear() {
    this.#bubbles.clear();
    this.#ui.list.replaceChildren();
    this.#status = null;
    this.#ui.status.textContent = "connecting…";
    this.#ui.cancel.disabled = true;
    this.#showRequest(null);
    this.#fail("");
  }

  #emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }

  #announce(text) { this.#ui.live.textContent = text; }

  #fail(text) {
    this.#ui.error.textContent = text;
    this.#ui.error.hidden = !text;
  }

  #connection(state, detail) {
    // A new connection's subscription sends what is in flight afresh
    // (message.snapshot): a partial from before it would be shown twice.
    if (state === "open") this.#dropPartials();
    const trouble = state === "waiting" || state === "reconnecting";
    this.#ui.conn.hidden = !trouble;
    if (state === "closed") this.#ui.status.textContent = `disconnected (${detail.code})`;
    if (state === "open" && !this.#status) this.#ui.status.textContent = "…";
    if (trouble !== this.#troubled) this.#announce(trouble ? "Reconnecting…" : "Connected");
    this.#troubled = trouble;
    this.#emit("flowgate-connection", { state, ...detail });
  }

  #message(m) {
    this.#bubble(m.id, m.sender, m.role, m.content, false);
    this.#announce(`${m.sender}: ${m.content}`);
    this.#emit("flowgate-message", m);
  }

  #statusChanged(s) {
    this.#status = s.status;
    this.#ui.status.textContent = s.error ? `${s.status}: ${s.error.message || s.error.code}` : s.status;
    this.#ui.cancel.disabled = !["running", "wait_for_human_input"].includes(s.status);
    if (s.status !== "running") this.#dropPartials();   // a stopped run's partial is never stored
    if (s.status !== "wait_for_human_input") this.#showRequest(null);
    const r = this.#request;   // a request is announced with its question
    this.#announce(r ? `${r.agent} asks: ${r.prompt || "your input"}` : `Chat status: ${s.status}`);
    this.#emit("flowgate-status", { status: s.status, previous: s.previous });
  }

  /** Shows (or updates) one message; `partial` while its tokens stream. */
  #bubble(id, sender, role, content, partial) {
    const ui = this.#ui;
    const stick = this.#atBottom();
    let li = this.#bubbles.get(id);
    if (!li) {
      li = document.createElement("li");
      li.className = "msg";
      li.dataset.id = id;
      const who = li.appendChild(document.createElement("div"));
      who.className = "who";
      who.append(document.createElement("b"), " ", document.createElement("span"));
      li.appendChild(document.createElement("div")).className = "text";
      this.#bubbles.set(id, li);
      ui.list.append(li);
    }
    li.dataset.role = role;
    li.classList.toggle("partial", partial);
    li.querySelector(".who b").textContent = sender;
    li.querySelector(".who span").textContent = role;
    li.querySelector(".text").textContent = content;
    if (stick) ui.list.scrollTop = ui.list.scrollHeight;
  }

  #atBottom() {
    const list = this.#ui.list;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }

  #dropPartials() {
    for (const [id, li] of this.#bubbles) {
      if (li.classList.contains("partial")) { li.remove(); this.#bubbles.delete(id); }
    }
  }

  /** Renders the pending input request (`null`: none). */
  #showRequest(r) {
    const ui = this.#ui;
    const stick = this.#atBottom();   // the panel takes room from the list
    this.#request = r;
    const kind = r?.kind || "human";
    const tools = kind === "tool_calls";
    ui.text.disabled = tools;
    ui.send.disabled = tools;
    ui.text.placeholder = r && !tools ? `Answer ${r.agent} (Enter sends)` : "Write a message (Enter sends, Shift+Enter: new line)";
    ui.request.replaceChildren();
    ui.request.hidden = !r;
    if (!r) return;
    const line = (text, tag = "p") => ui.request.appendChild(Object.assign(document.createElement(tag), { textContent: text }));
    line(`${r.agent} asks:`).className = "who";
    if (r.prompt) line(r.prompt);
    const actions = document.createElement("div");
    actions.className = "actions";
    const action = (label, op) => {
      const b = actions.appendChild(Object.assign(document.createElement("button"), { type: "button", textContent: label }));
      b.addEventListener("click", () => this.#command(op));
    };
    if (kind === "select_speaker") {
      for (const choice of r.choices || []) action(choice, (fg) => fg.answer(choice, r.request_id));
    } else if (tools) {
      const calls = ui.request.appendChild(document.createElement("ul"));
      for (const c of r.calls || []) {
        const li = calls.appendChild(document.createElement("li"));
        li.append(Object.assign(document.createElement("code"), { textContent: String(c.name) }));
        const args = typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments);
        li.append(Object.assign(document.createElement("pre"), { textContent: args ?? "" }));
      }
      line("These tool calls must be answered by a client that runs the tools (tool_results); this widget only shows them.");
    } else {
      action("Auto reply", (fg) => fg.command({ op: "input", chat_id: this.#chat, request_id: r.request_id, auto_reply: true }));
      action("Exit", (fg) => fg.answer("exit", r.request_id));
    }
    if (actions.children.length) ui.request.append(actions);
    if (stick) ui.list.scrollTop = ui.list.scrollHeight;
    this.#announce(`${r.agent} asks: ${r.prompt || "your input"}`);
  }

  /** The composer: answers the pending request, or sends a new message. */
  async #submit() {
    const text = this.#ui.text.value;
    if (!text.trim()) return;
    const r = this.#request;
    const sent = await this.#command((fg) => (r ? fg.answer(text, r.request_id) : fg.send(text)));
    if (sent) this.#ui.text.value = "";
  }

  /** Runs one command; shows its refusal. Resolves with whether it was acked. */
  async #command(run) {
    const fg = this.#fg;
    if (!fg) return false;
    this.#fail("");
    this.#ui.send.disabled = true;
    try {
      await run(fg);
      return true;
    } catch (e) {
      if (this.#current(fg)) this.#fail(e.code ? `${e.code}: ${e.message}` : e.message);
      return false;
    } finally {
      this.#ui.send.disabled = this.#request?.kind === "tool_calls";
    }
  }
}

if (!customElements.get("flowgate-chat")) customElements.define("flowgate-chat", FlowgateChat);
