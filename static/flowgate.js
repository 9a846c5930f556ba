// flowgate.js: a small, dependency-free browser client for Flowgate's
// WebSocket (served by the gateway at /static/flowgate.js).
//
//   import { Flowgate } from "/static/flowgate.js";
//   const fg = new Flowgate({ url: "http://127.0.0.1:8080", chat, token: mintToken,
//                             onMessage: (m) => show(m.sender, m.content) });
//   await fg.connect();
//   await fg.send("Hello!");
//
// What it does: connects to a chat-bound socket (`chat`) or to `/ws`; asks
// `token()` for a chat token (again after a 4001); reconnects with
// exponential backoff and full jitter (never after close(), nor on a code
// >= 4500) and resumes every chat from the last seq it saw; turns commands
// into promises (resolved by their `ack`, rejected by their `error`); and
// assembles streamed messages from `message.snapshot` + `message.delta`,
// replaced by the stored `message.created`. It never touches the DOM.

const noop = () => {};

/** The error a refused command rejects with: `code` is the error table's. */
export class FlowgateError extends Error {
  constructor(frame) {
    super(frame.message || frame.code);
    this.name = "FlowgateError";
    this.code = frame.code;
    this.frame = frame;
  }
}

export class Flowgate {
  /**
   * @param {object} o
   * @param {string} o.url  the gateway, e.g. "https://gw.example.com" (http(s) or ws(s))
   * @param {string} [o.chat]  bind the socket to this chat (/chats/{chat}/ws); else /ws
   * @param {() => string|Promise<string>} [o.token]  returns a chat token
   * @param {number} [o.afterSeq]  resume the bound chat after this seq (default 0)
   * Callbacks (all optional): onStatus(data, chatId), onMessage(message, chatId),
   * onDelta(data, partial), onPartial(partial), onInputRequest(data, chatId),
   * onConnectionState(state, detail), onEvent(envelope), onError(frame).
   */
  constructor(o) {
    this.o = { minDelay: 250, maxDelay: 15000, ...o };
    for (const cb of ["onStatus", "onMessage", "onDelta", "onPartial", "onInputRequest",
      "onConnectionState", "onEvent", "onError"]) this.o[cb] ||= noop;
    this.lastSeq = new Map();          // chat id -> last durable seq seen
    this.partials = new Map();         // message id -> {message_id, chat_id, sender, content}
    this.subscriptions = new Set();    // chats subscribed on /ws (resubscribed on reconnect)
    this.watching = false;
    this.pending = new Map();          // ref -> {resolve, reject}
    this.nextRef = 1;
    this.attempt = 0;
    this.closed = false;
    this.cachedToken = null;
    this.ws = null;
    if (o.chat) this.lastSeq.set(o.chat, o.afterSeq || 0);
  }

  /** Opens the socket (retrying as needed); resolves once it is open, rejects
   *  if it closes for good first. */
  connect() {
    this.closed = false;
    return new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
      this.#open();
    });
  }

  /** Closes for good (code 1000); no reconnect follows. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "bye");
  }

  /** Posts a user message (`message` op). */
  send(text, chat = this.o.chat) { return this.command({ op: "message", chat_id: chat, message: text }); }
  /** Answers the pending input request (`input` op). */
  answer(text, requestId, chat = this.o.chat) {
    return this.command({ op: "input", chat_id: chat, message: text, request_id: requestId });
  }
  /** Cancels the chat's run. */
  cancel(chat = this.o.chat) { return this.command({ op: "cancel", chat_id: chat }); }
  /** Round trip to the server. */
  ping() { return this.command({ op: "ping" }); }

  /** `/ws` only: follow a chat from `afterSeq` (default: the last seq seen, else 0). */
  subscribe(chat, afterSeq) {
    if (afterSeq !== undefined) this.lastSeq.set(chat, afterSeq);
    this.subscriptions.add(chat);
    return this.command({ op: "subscribe", chat_id: chat, after_seq: this.lastSeq.get(chat) || 0 });
  }
  unsubscribe(chat) {
    this.subscriptions.delete(chat);
    return this.command({ op: "unsubscribe", chat_id: chat });
  }
  /** Every `chat.status` of the tenant (needs a tenant-wide credential). */
  watchStatus() { this.watching = true; return this.command({ op: "watch_status" }); }

  /** Sends any op; resolves with its reply, rejects with a FlowgateError. */
  command(frame) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        return reject(new Error("flowgate: not connected"));
      }
      const ref = `c${this.nextRef++}`;
      this.pending.set(ref, { resolve, reject });
      this.ws.send(JSON.stringify({ ...frame, ref }));
    });
  }

  async #open() {
    this.o.onConnectionState(this.attempt ? "reconnecting" : "connecting", { attempt: this.attempt });
    let url;
    try {
      if (this.o.token && !this.cachedToken) this.cachedToken = await this.o.token();
      url = this.#url();
    } catch (e) {
      return this.#retry({ code: 0, reason: String(e) });
    }
    const ws = (this.ws = new WebSocket(url));
    ws.onopen = () => {
      this.attempt = 0;
      this.partials.clear();           // the new subscription sends what is in flight afresh
      this.o.onConnectionState("open", {});
      for (const chat of this.subscriptions) this.subscribe(chat).catch(noop);
      if (this.watching) this.watchStatus().catch(noop);
      this.settle?.resolve(this);
      this.settle = null;
    };
    ws.onmessage = (e) => this.#frame(JSON.parse(e.data));
    ws.onclose = (e) => {
      for (const { reject: fail } of this.pending.values()) fail(new Error("flowgate: disconnected"));
      this.pending.clear();
      if (e.code === 4001) this.cachedToken = null;    // expired or revoked: ask for a new one
      const detail = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      if (this.closed || e.code >= 4500) {
        this.o.onConnectionState("closed", detail);
        this.settle?.reject(new Error(`flowgate: closed (${e.code})`));
        this.settle = null;
      } else {
        this.#retry(detail);
      }
    };
  }

  #url() {
    const base = this.o.url.replace(/^http/, "ws").replace(/\/$/, "");
    const q = new URLSearchParams();
    if (this.cachedToken) q.set("token", this.cachedToken);
    const chat = this.o.chat;
    if (chat) q.set("after_seq", String(this.lastSeq.get(chat) || 0));
    return `${base}${chat ? `/chats/${encodeURIComponent(chat)}/ws` : "/ws"}?${q}`;
  }

  // Full jitter: a random delay between 0 and min(maxDelay, minDelay * 2^attempt).
  #retry(detail) {
    if (this.closed) return;
    const ceiling = Math.min(this.o.maxDelay, this.o.minDelay * 2 ** this.attempt++);
    const delay = Math.random() * ceiling;
    this.o.onConnectionState("waiting", { ...detail, attempt: this.attempt, delay });
    this.timer = setTimeout(() => this.#open(), delay);
  }

  #frame(f) {
    const waiter = f.ref != null && this.pending.get(f.ref);
    if (waiter) {
      this.pending.delete(f.ref);
      return f.type === "error" ? waiter.reject(new FlowgateError(f)) : waiter.resolve(f);
    }
    if (f.type === "error") return this.o.onError(f);
    if (!f.chat_id || !f.type.includes(".")) return;   // subscribed, pong, ack without a waiter
    if (f.seq != null) {
      if (f.seq <= (this.lastSeq.get(f.chat_id) || 0)) return;  // already seen
      this.lastSeq.set(f.chat_id, f.seq);
    }
    this.o.onEvent(f);
    const d = f.data;
    switch (f.type) {
      case "chat.status": return this.o.onStatus(d, f.chat_id);
      case "input.requested": return this.o.onInputRequest(d, f.chat_id);
      case "message.snapshot":
        return this.#partial(f.chat_id, d, d.content);
      case "message.delta": {
        const p = this.#partial(f.chat_id, d, (this.partials.get(d.message_id)?.content || "") + d.delta);
        return this.o.onDelta(d, p);
      }
      case "message.created":
        this.partials.delete(d.id);
        return this.o.onMessage(d, f.chat_id);
    }
  }

  #partial(chat, d, content) {
    const p = { message_id: d.message_id, chat_id: chat, sender: d.sender, content };
    this.partials.set(d.message_id, p);
    this.o.onPartial(p);
    return p;
  }
}
