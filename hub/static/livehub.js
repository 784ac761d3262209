/**
 * livehub.js: the hub's wire protocol in the browser, on its own (no UI, no dependencies).
 * `Hub` is one person's connection over the JSON subprotocol: hello, commands as promises with
 * timeouts, events by type, reconnects with back-off and jitter, `join {since, epoch}` recovery,
 * token renewal, and a chat outbox that posts each message exactly once. docs/livehub-js.md is
 * its reference, docs/protocol.md the wire contract.
 */

export const SUBPROTOCOL = "hub.v1.json";
/** Close codes that end the session: no reconnect after them. */
export const FATAL_CLOSE_CODES = Object.freeze([4000, 4001, 4003, 4029]);
/** Errors a chat message is retried after, with the same key; others fail it. */
const RETRIED = new Set(["disconnected", "timeout", "unavailable", "conflict", "rate_limited", "internal"]);
/** Chat messages the outbox holds at most: past that, `sendChat` is refused at once. */
export const OUTBOX_MAX = 100;
/** Hello errors no retry can fix. */
const FATAL_HELLO = new Set(["unauthorized", "forbidden", "bad_request"]);

/** A command's error: a protocol error code, or `timeout`, `disconnected` or `closed`; `msg` is
 * the hub's message (English, for logs: people are shown a text for the code), and `retryIn`
 * the seconds until a retry may pass when the hub said (`rate_limited`'s `retry_in`), else null. */
export class HubError extends Error {
  constructor(code, msg, { retry_in: retryIn = null } = {}) {
    super(`${code}: ${msg}`);
    this.name = "HubError";
    this.code = code;
    this.msg = msg;
    this.retryIn = typeof retryIn === "number" && retryIn > 0 ? retryIn : null;
  }
}

/** The WebSocket URL of the hub that served this page. */
export function pageHubUrl(loc = globalThis.location) {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}

/** A JWT's claims, unverified (the hub verifies); null if unreadable. */
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** A fresh idempotency key. */
export function newKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A connection to the hub that survives restarts, network loss and draining nodes. */
export class Hub {
  /** Options: `url`, `token` or `name`, `renewToken`, `storage`, `requestTimeout`,
   * `backoffBase`, `backoffCap`, `heartbeat` (docs/livehub-js.md). */
  constructor(options = {}) {
    this.url = options.url || pageHubUrl();
    this.token = options.token || null;
    this.name = options.name || null;
    this.requestTimeout = options.requestTimeout ?? 10_000;
    this.backoffBase = options.backoffBase ?? 500;
    this.backoffCap = options.backoffCap ?? 15_000;
    this.heartbeat = options.heartbeat ?? 25_000;
    this.renewToken = options.renewToken || (async () => (await this.request("token.renew")).token);
    this.storage = options.storage || null;
    this.hello = null;
    this.state = "idle";
    this._handlers = new Map();
    this._ws = null;
    this._ready = false;
    this._waiters = []; // commands waiting for a connection: [{ready, fail}]
    this._pending = new Map(); // id -> {resolve, reject, join?, rejoin?}
    this._lastId = 0;
    this._rooms = new Map(); // room -> {seq, epoch, ready}
    this._leaving = new Set(); // rooms left while their join may still be answered
    this._attempt = 0;
    this._shutdownDelay = null;
    this._timers = {}; // reconnect, renew, heartbeat, outbox
    this._lastHeard = 0;
    this._outbox = []; // [{key, room, text, reply_to?, resolve?, reject?, sending, due, tries}]
    this._connected = null;
    this._onOnline = () => this.state === "reconnecting" && !this._ws && this._reopen(0);
  }

  get user() {
    return this.hello?.user ?? null;
  }

  get sid() {
    return this.hello?.sid ?? null;
  }

  /** Followed rooms: room -> `{seq, epoch}`. */
  get rooms() {
    return new Map(Array.from(this._rooms, ([room, st]) => [room, { seq: st.seq, epoch: st.epoch }]));
  }

  /** Listen to an event type (`"*"`: every server event); returns the function that stops it. */
  on(type, handler) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(handler);
    return () => this._handlers.get(type).delete(handler);
  }

  /** Connect and say hello (retrying an unreachable hub); resolves with the hello reply,
   * rejects when the hub refuses the session for good. */
  connect() {
    if (!this._connected) {
      this._connected = new Promise((resolve, reject) => (this._first = { resolve, reject }));
      this._loadOutbox();
      globalThis.addEventListener?.("online", this._onOnline);
      this._setState("connecting");
      this._open();
    }
    return this._connected;
  }

  /** Close for good. */
  close() {
    this._finish(1000, "closed by the client");
  }

  /** Send a command; resolves with its `ok` map or rejects with a HubError. While reconnecting
   * it waits for the next connection within the timeout. A command that timed out stays
   * pending: a late reply still applies (a joined room is followed). */
  request(op, fields = {}, { timeout = this.requestTimeout } = {}) {
    return new Promise((resolve, reject) => {
      let expired = false;
      const timer = setTimeout(() => {
        expired = true;
        reject(new HubError("timeout", `no reply to ${op} within ${timeout} ms`));
      }, timeout);
      const done = (fn) => (value) => (clearTimeout(timer), fn(value));
      const go = () => expired || this._send(op, fields, { resolve: done(resolve), reject: done(reject), join: op === "join" ? fields.room : null });
      if (this.state === "closed") done(reject)(new HubError("closed", "the client is closed"));
      else if (this._ready) go();
      else this._waiters.push({ ready: go, fail: done(reject) });
    });
  }

  /** A command without an id (no reply), sent only while connected. */
  send(op, fields = {}) {
    if (this._ready) this._write({ op, ...fields });
  }

  /** Join and follow `room` (re-joined after every reconnect). */
  join(room, fields = {}) {
    this._leaving.delete(room);
    return this.request("join", { room, ...fields });
  }

  /** Leave `room` and stop following it. */
  leave(room) {
    this._unfollow(room, "you left the room");
    this._leaving.add(room); // a join reply still on its way must not follow it again
    return this.request("leave", { room });
  }

  /** Post a chat message exactly once, through the outbox; resolves with `{id, seq}`. */
  sendChat(room, text, { replyTo } = {}) {
    return new Promise((resolve, reject) => {
      if (this._outbox.length >= OUTBOX_MAX) return reject(new HubError("rate_limited", "too many messages wait to be sent"));
      const entry = { key: newKey(), room, text, resolve, reject, sending: false, due: 0, tries: 0 };
      if (replyTo) entry.reply_to = replyTo;
      this._outbox.push(entry);
      this._outboxChanged(room);
      this._pump();
    });
  }

  /** The messages of `room` waiting to be posted: `[{key, text}]`. */
  pendingChat(room) {
    return this._outbox.filter((e) => e.room === room).map(({ key, text }) => ({ key, text }));
  }

  /** Drop a waiting message that is not being sent. */
  discardChat(key) {
    const entry = this._outbox.find((e) => e.key === key && !e.sending);
    if (entry) this._dropEntry(entry);
    return Boolean(entry);
  }

  // --- connection

  _open() {
    let ws;
    try {
      ws = new WebSocket(this.url, [SUBPROTOCOL]);
    } catch (error) {
      return this._closed(null, 1006, String(error));
    }
    this._ws = ws;
    ws.onmessage = (event) => this._onFrame(ws, event.data);
    ws.onclose = (event) => this._closed(ws, event.code, event.reason);
    ws.onopen = () => this._sayHello(ws);
  }

  _sayHello(ws) {
    if (ws !== this._ws) return;
    const timer = setTimeout(() => this._drop(ws, "no hello reply"), this.requestTimeout);
    this._send("hello", this.token ? { token: this.token } : { name: this.name }, {
      ws,
      resolve: (ok) => (clearTimeout(timer), this._helloDone(ws, ok)),
      reject: (error) => {
        clearTimeout(timer);
        if (FATAL_HELLO.has(error.code)) this._finish(4001, `hello refused: ${error.msg}`, error);
        else this._drop(ws, `hello failed: ${error.msg}`);
      },
    });
  }

  _helloDone(ws, ok) {
    if (ws !== this._ws) return;
    this.hello = ok;
    if (ok.token) this._newToken(ok.token); // a guest's: the same guest after a reload
    this._attempt = 0;
    this._ready = true;
    this._lastHeard = Date.now();
    this._scheduleRenewal();
    this._scheduleHeartbeat();
    for (const room of this._rooms.keys()) this._rejoin(room, true);
    this._setState("connected");
    for (const waiter of this._waiters.splice(0)) waiter.ready();
    this._first?.resolve(ok);
    this._first = null;
    this._pump();
  }

  /** Join a followed room again: `since` and `epoch` after a reconnect, afresh after `reset`. */
  _rejoin(room, recover) {
    const st = this._rooms.get(room);
    st.ready = false;
    const fields = recover ? { room, since: st.seq, ...(st.epoch != null && { epoch: st.epoch }) } : { room };
    this._send("join", fields, {
      join: room,
      rejoin: true,
      resolve: () => this._pump(),
      reject: (error) => {
        // A dropped connection rejoins at the next hello; only the hub's refusal ends it.
        if (error.code === "disconnected" || error.code === "closed") return;
        this._unfollow(room, error.msg);
        this._emit("left", { room, error });
      },
    });
  }

  _closed(ws, code, reason) {
    if (ws !== null && ws !== this._ws) return;
    this._ws = null;
    this._ready = false;
    clearTimeout(this._timers.renew);
    clearTimeout(this._timers.heartbeat);
    for (const entry of this._pending.values()) entry.reject(new HubError("disconnected", `the connection closed (${code})`));
    this._pending.clear();
    for (const entry of this._outbox) entry.sending = false;
    if (this.state === "closed") return;
    if (FATAL_CLOSE_CODES.includes(code)) return this._finish(code, reason || "closed by the hub");
    // Full jitter, and at least a draining node's `reconnect_in`: a restart is not stampeded.
    let delay = Math.random() * Math.min(this.backoffCap, this.backoffBase * 2 ** Math.min(this._attempt++, 30));
    if (this._shutdownDelay !== null) delay = Math.max(delay, this._shutdownDelay * 1000);
    this._shutdownDelay = null;
    this._setState("reconnecting", { code, reason, retryIn: Math.round(delay) });
    this._reopen(delay);
  }

  _reopen(delay) {
    clearTimeout(this._timers.reconnect);
    this._timers.reconnect = setTimeout(() => this._open(), delay);
  }

  /** Give up on a socket (a silent line, a failed hello) and reconnect. */
  _drop(ws, reason) {
    if (ws !== this._ws) return;
    ws.onclose = ws.onmessage = null;
    try {
      ws.close();
    } catch {
      /* a broken socket may throw: it is being replaced */
    }
    this._closed(ws, 1006, reason);
  }

  _finish(code, reason, error) {
    if (this.state === "closed") return;
    this._setState("closed", { code, reason });
    Object.values(this._timers).forEach(clearTimeout);
    globalThis.removeEventListener?.("online", this._onOnline);
    const ws = this._ws;
    this._ws = null;
    this._ready = false;
    if (ws) {
      ws.onclose = null;
      ws.close(1000);
    }
    const closed = () => new HubError("closed", reason);
    for (const entry of this._pending.values()) entry.reject(closed());
    this._pending.clear();
    for (const waiter of this._waiters.splice(0)) waiter.fail(closed());
    const failure = error || closed();
    failure.closeCode = code;
    this._first?.reject(failure);
    this._first = null;
  }

  _setState(state, details = {}) {
    this.state = state;
    this._emit("status", { state, ...details });
  }

  // --- token renewal and heartbeat

  _newToken(token) {
    this.token = token;
    this._emit("token", { token });
  }

  _scheduleRenewal(delay) {
    clearTimeout(this._timers.renew);
    const claims = tokenClaims(this.token || "");
    if (delay === undefined) {
      if (typeof claims?.exp !== "number") return;
      const now = Date.now() / 1000;
      const issued = typeof claims.iat === "number" ? claims.iat : now;
      // At 80% of the token's life, and at the latest 30 s before it expires.
      delay = Math.max(0, (Math.min(issued + 0.8 * (claims.exp - issued), claims.exp - 30) - now) * 1000);
    }
    this._timers.renew = setTimeout(async () => {
      try {
        const token = await this.renewToken();
        await this.request("refresh", { token });
        this._newToken(token);
        this._scheduleRenewal();
      } catch (error) {
        // Refused for good (signed in too long ago): asking again cannot help, and the hub
        // closes the session (4001) when the token expires.
        if (error.code === "forbidden") return this._emit("renewal", { refused: error.msg });
        if (this.state !== "closed") this._scheduleRenewal(15_000);
      }
    }, delay);
  }

  _scheduleHeartbeat() {
    clearTimeout(this._timers.heartbeat);
    const ws = this._ws;
    this._timers.heartbeat = setTimeout(async () => {
      if (ws !== this._ws) return;
      if (Date.now() - this._lastHeard >= this.heartbeat) {
        try {
          await this.request("ping", {}, { timeout: Math.min(10_000, this.heartbeat) });
        } catch (error) {
          if (error.code === "timeout") this._drop(ws, "the hub stopped answering");
          return;
        }
      }
      this._scheduleHeartbeat();
    }, Math.max(1000, this.heartbeat - (Date.now() - this._lastHeard)));
  }

  // --- frames

  _send(op, fields, entry) {
    const id = ++this._lastId;
    this._pending.set(id, entry);
    if (!this._write({ id, op, ...fields }, entry.ws || this._ws)) {
      this._pending.delete(id);
      entry.reject(new HubError("disconnected", "not connected"));
    }
  }

  _write(message, ws = this._ws) {
    if (ws?.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  _onFrame(ws, data) {
    if (ws !== this._ws || typeof data !== "string") return;
    this._lastHeard = Date.now();
    for (const line of data.split("\n")) {
      let message;
      try {
        message = line && JSON.parse(line);
      } catch {
        continue; // the hub never sends this; the frame's other messages still count
      }
      if (message && typeof message === "object") this._onMessage(message);
    }
  }

  _onMessage(message) {
    if ("re" in message) {
      const entry = this._pending.get(message.re);
      if (!entry) return;
      this._pending.delete(message.re);
      if (message.err) return entry.reject(new HubError(String(message.err.code || "internal"), String(message.err.msg || ""), message.err));
      const ok = message.ok && typeof message.ok === "object" ? message.ok : {};
      if (entry.join) this._joined(entry.join, ok, Boolean(entry.rejoin));
      return entry.resolve(ok);
    }
    const ev = message.ev;
    if (typeof ev !== "string") return;
    const st = this._rooms.get(message.room);
    if (st && Number.isInteger(message.seq)) {
      if (message.seq <= st.seq) return; // seen already: a replay overlapping live events
      st.seq = message.seq;
      if (ev === "breakout.closed") this._unfollow(message.room, "the breakout closed"); // the hub took us out
    } else if (st && ev === "reset") {
      st.seq = 0;
      st.epoch = message.epoch;
      this._emit(ev, message);
      return this._rejoin(message.room, false);
    } else if (st && ev === "kicked") {
      this._unfollow(message.room, "you were removed from the room");
    } else if (ev === "shutdown" && typeof message.reconnect_in === "number") {
      this._shutdownDelay = message.reconnect_in;
    }
    this._emit(ev, message);
    if (ev === "breakout.assigned" && message.joined && typeof message.joined === "object" && typeof message.breakout === "string") {
      this._joined(message.breakout, message.joined, false); // the hub moved us in: as after a join
    }
  }

  /** A join reply: the room's position, the `joined` event, then its missed events in order. */
  _joined(room, ok, rejoin) {
    if (this._leaving.has(room)) return; // left before this reply came
    let st = this._rooms.get(room);
    if (!st) this._rooms.set(room, (st = { seq: 0, epoch: ok.epoch }));
    else if (st.epoch !== ok.epoch) Object.assign(st, { seq: 0, epoch: ok.epoch }); // history lost
    const recovered = ok.missed === undefined ? !rejoin : Boolean(ok.recovered);
    this._emit("joined", { room, reply: ok, rejoin, recovered });
    for (const event of Array.isArray(ok.missed) ? ok.missed : []) {
      if (Number.isInteger(event?.seq)) {
        if (event.seq <= st.seq) continue;
        st.seq = event.seq;
      }
      if (event) this._emit(event.ev, event);
      if (event?.ev === "breakout.closed") return this._unfollow(room, "the breakout closed");
    }
    if (Number.isInteger(ok.seq) && ok.seq > st.seq) st.seq = ok.seq;
    st.ready = true;
  }

  _emit(type, detail) {
    const handlers = [...(this._handlers.get(type) || []), ...(detail?.ev ? this._handlers.get("*") || [] : [])];
    for (const handler of handlers) {
      try {
        handler(detail);
      } catch (error) {
        queueMicrotask(() => {
          throw error; // reported, without stopping delivery to the other handlers
        });
      }
    }
  }

  // --- chat outbox

  get _outboxKey() {
    return `livehub.outbox.${tokenClaims(this.token || "")?.sub || "guest"}`;
  }

  _loadOutbox() {
    try {
      for (const item of JSON.parse(this.storage?.getItem(this._outboxKey) || "[]")) {
        if (typeof item?.key === "string" && typeof item.room === "string") this._outbox.push({ ...item, sending: false, due: 0, tries: 0 });
      }
    } catch {
      /* a damaged outbox is dropped rather than blocking the page */
    }
  }

  _outboxChanged(room) {
    try {
      const items = this._outbox.map(({ key, room: r, text, reply_to }) => ({ key, room: r, text, reply_to }));
      if (items.length) this.storage?.setItem(this._outboxKey, JSON.stringify(items));
      else this.storage?.removeItem(this._outboxKey);
    } catch {
      /* storage full or denied: the outbox still works for this page's life */
    }
    this._emit("outbox", { room, pending: this.pendingChat(room) });
  }

  /** Stop following `room`: not rejoined, and its waiting messages fail (`closed`). */
  _unfollow(room, why) {
    this._rooms.delete(room);
    for (const entry of this._outbox.filter((e) => e.room === room && !e.sending)) this._failEntry(entry, new HubError("closed", why));
  }

  _dropEntry(entry) {
    this._outbox.splice(this._outbox.indexOf(entry), 1);
    this._outboxChanged(entry.room);
  }

  _failEntry(entry, error) {
    this._dropEntry(entry);
    this._emit("chat.failed", { room: entry.room, text: entry.text, error });
    entry.reject?.(error);
  }

  /** Send the oldest waiting message of each joined room: one at a time per room (order). */
  _pump() {
    clearTimeout(this._timers.outbox);
    if (!this._ready) return;
    const now = Date.now();
    let next = Infinity;
    const seen = new Set();
    for (const entry of this._outbox) {
      if (seen.has(entry.room)) continue;
      seen.add(entry.room);
      if (entry.sending || !this._rooms.get(entry.room)?.ready) continue;
      if (entry.due > now) next = Math.min(next, entry.due);
      else this._post(entry);
    }
    if (next < Infinity) this._timers.outbox = setTimeout(() => this._pump(), next - now);
  }

  _post(entry) {
    entry.sending = true;
    const ws = this._ws;
    const fields = { room: entry.room, text: entry.text, key: entry.key, ...(entry.reply_to && { reply_to: entry.reply_to }) };
    this.request("chat.send", fields).then(
      (ok) => {
        this._dropEntry(entry);
        entry.resolve?.(ok);
        this._pump();
      },
      (error) => {
        entry.sending = false;
        if (!this._outbox.includes(entry)) return;
        if (RETRIED.has(error.code) && this.state !== "closed") {
          // The hub says its wait (slow mode, the chat rate: `retry_in`); else back off.
          entry.due = Date.now() + (error.retryIn ? error.retryIn * 1000 : Math.min(10_000, 250 * 2 ** Math.min(++entry.tries, 6)));
          // A reply lost with its connection: the retry waits for the next one.
          if (error.code === "timeout" && ws === this._ws) this._drop(ws, "chat.send timed out");
        } else {
          this._failEntry(entry, error);
        }
        this._pump();
      },
    );
  }
}
