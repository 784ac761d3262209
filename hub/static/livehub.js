/**
 * livehub.js: the hub's wire protocol in the browser, on its own (no UI, no dependencies).
 *
 * One `Hub` object is one person's connection to the hub over the JSON subprotocol
 * (`hub.v1.json`). It says `hello`, sends commands as promises with timeouts, delivers events
 * by type, reconnects with back-off and jitter, re-joins every room with `join {since, epoch}`
 * so that nothing stored is missed or seen twice, re-joins a room whose history was lost
 * (`reset`), renews its token before it expires, and sends chat messages through an outbox that
 * survives disconnections and reloads, each with an idempotency key, so a message is posted
 * exactly once. The reference is docs/livehub-js.md; the wire contract is docs/protocol.md.
 */

export const SUBPROTOCOL = "hub.v1.json";

/** Close codes after which the hub must not be reconnected to: the session is over. */
export const FATAL_CLOSE_CODES = Object.freeze([4000, 4001, 4003, 4029]);

/** Error codes a chat message is retried after (with the same key); others fail it. */
const RETRIED_CHAT_ERRORS = new Set([
  "disconnected",
  "timeout",
  "unavailable",
  "conflict",
  "rate_limited",
  "internal",
]);

/** The hello errors no retry can fix. */
const FATAL_HELLO_ERRORS = new Set(["unauthorized", "forbidden", "bad_request"]);

/** A command's error: `code` is one of the contract's codes, or a client one (`timeout`,
 * `disconnected`, `closed`). */
export class HubError extends Error {
  constructor(code, msg) {
    super(`${code}: ${msg}`);
    this.name = "HubError";
    this.code = code;
    this.msg = msg;
  }
}

/** The WebSocket URL of the hub that served this page (`ws(s)://host/ws`). */
export function pageHubUrl(loc = globalThis.location) {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}

/** The claims of a JWT, read without checking its signature (the hub checks it); null if the
 * token cannot be read. */
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** A random idempotency key for `chat.send`. */
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Seconds to wait that a `rate_limited` message names ("wait 3 s"), else null. */
function waitSeconds(msg) {
  const match = /wait (\d+(?:\.\d+)?) ?s/.exec(msg || "");
  return match ? Number(match[1]) : null;
}

/**
 * A connection to the hub that survives restarts, network loss and node draining.
 *
 * Events: `on(type, handler)` for a server event type (`"chat"`, `"presence"`, ...), or `"*"`
 * for every server event; and these client events:
 * - `status {state, code?, reason?, retryIn?}`: `state` is `connecting`, `connected`,
 *   `reconnecting` or `closed` (for good: `code` says why).
 * - `joined {room, reply, rejoin, recovered}`: a join reply, before the room's `missed` events
 *   and before any later event of the room. `rejoin` is true after a reconnect or a `reset`;
 *   `recovered` false means the missed events are incomplete: reload from `reply.snapshot`.
 * - `left {room, error}`: a room could not be joined again after a reconnect (a ban, a closed
 *   breakout round); the client no longer follows it.
 * - `outbox {room, pending}`: the chat messages of `room` still waiting to be posted.
 * - `chat.failed {room, text, error}`: a message the hub refused for good (muted, too long).
 * - `token {token}`: a new token (renewed, or a guest's): store it to survive a reload.
 */
export class Hub {
  /**
   * @param {object} options
   * @param {string} [options.url] the hub's `ws(s)://…/ws` URL (default: this page's hub)
   * @param {string} [options.token] a token (JWT) from the organizer
   * @param {string} [options.name] a guest's name, where the hub admits guests
   * @param {() => Promise<string>} [options.renewToken] gives a fresh token before the current
   *   one expires (default: the hub's `token.renew`)
   * @param {Storage} [options.storage] keeps the chat outbox across reloads (sessionStorage)
   * @param {number} [options.requestTimeout] ms a command waits for its reply (10,000)
   * @param {number} [options.backoffBase] ms, first reconnect ceiling (500)
   * @param {number} [options.backoffCap] ms, largest reconnect ceiling (15,000)
   * @param {number} [options.heartbeat] ms of silence before a `ping` checks the line (25,000)
   */
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
    /** The last hello reply: `{sid, user: {id, name, role}, node, ice_servers, limits}`. */
    this.hello = null;
    this.state = "idle";
    this._handlers = new Map();
    this._ws = null;
    this._ready = false;
    this._waiters = [];
    this._pending = new Map();
    this._lastId = 0;
    this._rooms = new Map(); // room -> {seq, epoch, ready}
    this._attempt = 0;
    this._shutdownDelay = null;
    this._timers = new Set();
    this._renewTimer = null;
    this._heartbeatTimer = null;
    this._lastHeard = 0;
    this._outbox = []; // [{key, room, text, reply_to?, resolve?, reject?, sending, due}]
    this._outboxTimer = null;
    this._connected = null; // resolves the first connect()
    this._onOnline = () => this._retryNow();
  }

  /** The signed-in user `{id, name, role}`, once connected. */
  get user() {
    return this.hello ? this.hello.user : null;
  }

  /** This connection's session id, once connected. */
  get sid() {
    return this.hello ? this.hello.sid : null;
  }

  /** The rooms followed, each with the last `seq` seen and its `epoch`. */
  get rooms() {
    return new Map(Array.from(this._rooms, ([room, st]) => [room, { seq: st.seq, epoch: st.epoch }]));
  }

  /** Listen to `type`; returns a function that stops listening. */
  on(type, handler) {
    let set = this._handlers.get(type);
    if (!set) this._handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Connect and say hello; resolves with the hello reply. A hub that cannot be reached is
   * retried with back-off (status `reconnecting`); a refused hello or a fatal close rejects. */
  connect() {
    if (!this._connected) {
      this._connected = new Promise((resolve, reject) => {
        this._firstConnect = { resolve, reject };
      });
      this._loadOutbox();
      globalThis.addEventListener?.("online", this._onOnline);
      this._setState("connecting");
      this._open();
    }
    return this._connected;
  }

  /** Close for good: nothing is retried; pending commands fail with `closed`. */
  close() {
    this._finish(1000, "closed by the client");
  }

  /** Send a command and resolve with its reply's `ok` map; rejects with a HubError. While
   * reconnecting it waits for the new connection, within the timeout. */
  request(op, fields = {}, { timeout = this.requestTimeout } = {}) {
    return new Promise((resolve, reject) => {
      // On a timeout the command stays pending: a late reply still applies (a join's room is
      // followed), it just resolves nobody. Pending commands end with their connection.
      const deadline = setTimeout(() => {
        waiting.cancelled = true;
        reject(new HubError("timeout", `no reply to ${op} within ${timeout} ms`));
      }, timeout);
      const waiting = { cancelled: false };
      const settle = (fn) => (value) => {
        clearTimeout(deadline);
        fn(value);
      };
      this._whenReady(() => {
        if (waiting.cancelled) return;
        this._send(op, fields, {
          resolve: settle(resolve),
          reject: settle(reject),
          join: op === "join" ? fields.room : null,
        });
      }, settle(reject));
    });
  }

  /** Send a command without an id: the hub sends no reply (fire and forget). */
  send(op, fields = {}) {
    if (this._ready) this._write({ op, ...fields });
  }

  /** Join `room` (and follow it from then on, across reconnects); resolves with the reply.
   * The `joined` event carries the same reply, before any event of the room. */
  join(room, fields = {}) {
    return this.request("join", { room, ...fields });
  }

  /** Leave `room`; it is no longer followed (nor re-joined after a reconnect). */
  leave(room) {
    this._rooms.delete(room);
    return this.request("leave", { room });
  }

  /**
   * Post a chat message exactly once: it waits in the outbox while the hub is unreachable,
   * is retried with the same idempotency key, and resolves with `{id, seq}` once stored.
   * The outbox survives a reload when `storage` is given (the promise does not).
   */
  sendChat(room, text, { replyTo } = {}) {
    return new Promise((resolve, reject) => {
      const entry = { key: newKey(), room, text, resolve, reject, sending: false, due: 0 };
      if (replyTo) entry.reply_to = replyTo;
      this._outbox.push(entry);
      this._saveOutbox();
      this._emitOutbox(room);
      this._pumpOutbox();
    });
  }

  /** The messages of `room` waiting to be posted: `[{key, text}]`, oldest first. */
  pendingChat(room) {
    return this._outbox.filter((e) => e.room === room).map((e) => ({ key: e.key, text: e.text }));
  }

  /** Drop a waiting message (not yet stored) from the outbox. */
  discardChat(key) {
    const entry = this._outbox.find((e) => e.key === key);
    if (!entry || entry.sending) return false;
    this._outbox.splice(this._outbox.indexOf(entry), 1);
    this._saveOutbox();
    this._emitOutbox(entry.room);
    return true;
  }

  // --- connection -------------------------------------------------------------------------

  _open() {
    let ws;
    try {
      ws = new WebSocket(this.url, [SUBPROTOCOL]);
    } catch (error) {
      this._closed(null, 1006, String(error));
      return;
    }
    this._ws = ws;
    ws.onmessage = (event) => this._onFrame(ws, event.data);
    ws.onclose = (event) => this._closed(ws, event.code, event.reason);
    ws.onopen = () => this._sayHello(ws);
  }

  _sayHello(ws) {
    if (ws !== this._ws) return;
    const fields = this.token ? { token: this.token } : { name: this.name };
    const timer = setTimeout(() => this._drop(ws, "no hello reply"), this.requestTimeout);
    this._send("hello", fields, {
      ws,
      resolve: (ok) => {
        clearTimeout(timer);
        this._helloDone(ws, ok);
      },
      reject: (error) => {
        clearTimeout(timer);
        if (FATAL_HELLO_ERRORS.has(error.code)) {
          this._finish(4001, `hello refused: ${error.msg}`, error);
        } else {
          this._drop(ws, `hello failed: ${error.msg}`);
        }
      },
    });
  }

  _helloDone(ws, ok) {
    if (ws !== this._ws) return;
    this.hello = ok;
    if (ok.token) {
      this.token = ok.token; // a guest's own token: the same guest after a reconnect or reload
      this._emit("token", { token: ok.token });
    }
    this._attempt = 0;
    this._ready = true;
    this._lastHeard = Date.now();
    this._scheduleRenewal();
    this._scheduleHeartbeat();
    for (const [room, st] of this._rooms) {
      st.ready = false;
      const fields = { room, since: st.seq };
      if (st.epoch != null) fields.epoch = st.epoch;
      this._send("join", fields, {
        join: room,
        rejoin: true,
        resolve: () => this._pumpOutbox(),
        reject: (error) => {
          this._rooms.delete(room);
          this._emit("left", { room, error });
          this._failOutbox(room, error);
        },
      });
    }
    this._setState("connected");
    const waiters = this._waiters;
    this._waiters = [];
    for (const waiter of waiters) waiter.ready();
    if (this._firstConnect) {
      this._firstConnect.resolve(ok);
      this._firstConnect = null;
    }
    this._pumpOutbox();
  }

  _closed(ws, code, reason) {
    if (ws !== null && ws !== this._ws) return;
    const wasReady = this._ready;
    this._ws = null;
    this._ready = false;
    this._clearConnectionTimers();
    for (const [, entry] of this._pending) {
      entry.reject(new HubError("disconnected", `the connection closed (${code})`));
    }
    this._pending.clear();
    for (const entry of this._outbox) entry.sending = false;
    if (this.state === "closed") return;
    if (FATAL_CLOSE_CODES.includes(code)) {
      this._finish(code, reason || "closed by the hub");
      return;
    }
    const delay = this._backoff();
    this._setState("reconnecting", { code, reason, retryIn: delay, wasReady });
    this._later(() => this._open(), delay, "reconnect");
  }

  /** Give up on a socket (silent line, failed hello) and reconnect. */
  _drop(ws, reason) {
    if (ws !== this._ws) return;
    ws.onclose = null;
    ws.onmessage = null;
    try {
      ws.close();
    } catch {
      /* closing a broken socket may throw; it is being replaced anyway */
    }
    this._closed(ws, 1006, reason);
  }

  _retryNow() {
    if (this.state !== "reconnecting") return;
    for (const timer of this._timers) {
      if (timer.what === "reconnect") {
        clearTimeout(timer.handle);
        this._timers.delete(timer);
        this._open();
      }
    }
  }

  _backoff() {
    const ceiling = Math.min(this.backoffCap, this.backoffBase * 2 ** Math.min(this._attempt, 30));
    this._attempt += 1;
    let delay = Math.random() * ceiling; // full jitter: a restarted node is not hit all at once
    if (this._shutdownDelay !== null) {
      delay = Math.max(delay, this._shutdownDelay * 1000);
      this._shutdownDelay = null;
    }
    return Math.round(delay);
  }

  _finish(code, reason, error) {
    if (this.state === "closed") return;
    this._setState("closed", { code, reason });
    for (const timer of this._timers) clearTimeout(timer.handle);
    this._timers.clear();
    this._clearConnectionTimers();
    clearTimeout(this._outboxTimer);
    globalThis.removeEventListener?.("online", this._onOnline);
    const ws = this._ws;
    this._ws = null;
    this._ready = false;
    if (ws) {
      ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        /* already closing */
      }
    }
    const failure = error || new HubError("closed", reason);
    failure.closeCode = code;
    for (const [, entry] of this._pending) entry.reject(new HubError("closed", reason));
    this._pending.clear();
    for (const waiter of this._waiters) waiter.fail(new HubError("closed", reason));
    this._waiters = [];
    if (this._firstConnect) {
      this._firstConnect.reject(failure);
      this._firstConnect = null;
    }
  }

  _setState(state, details = {}) {
    this.state = state;
    this._emit("status", { state, ...details });
  }

  _later(fn, delay, what) {
    const timer = { what, handle: 0 };
    timer.handle = setTimeout(() => {
      this._timers.delete(timer);
      fn();
    }, delay);
    this._timers.add(timer);
  }

  _clearConnectionTimers() {
    clearTimeout(this._renewTimer);
    clearTimeout(this._heartbeatTimer);
  }

  _whenReady(ready, fail) {
    if (this.state === "closed") fail(new HubError("closed", "the client is closed"));
    else if (this._ready) ready();
    else this._waiters.push({ ready, fail });
  }

  // --- token renewal and heartbeat --------------------------------------------------------

  _scheduleRenewal() {
    clearTimeout(this._renewTimer);
    const claims = this.token ? tokenClaims(this.token) : null;
    if (!claims || typeof claims.exp !== "number") return;
    const now = Date.now() / 1000;
    const issued = typeof claims.iat === "number" ? claims.iat : now;
    // At 80% of the token's life, and never later than 30 s before it expires.
    const at = Math.min(issued + 0.8 * (claims.exp - issued), claims.exp - 30);
    this._renewTimer = setTimeout(() => this._renew(), Math.max(0, (at - now) * 1000));
  }

  async _renew() {
    try {
      const token = await this.renewToken();
      await this.request("refresh", { token });
      this.token = token;
      this._emit("token", { token });
      this._scheduleRenewal();
    } catch (error) {
      if (this.state === "closed") return;
      // Try again shortly; a session whose token expires is closed by the hub (4001).
      this._renewTimer = setTimeout(() => this._renew(), 15_000);
    }
  }

  _scheduleHeartbeat() {
    clearTimeout(this._heartbeatTimer);
    if (!this.heartbeat) return;
    const ws = this._ws;
    const silence = Date.now() - this._lastHeard;
    this._heartbeatTimer = setTimeout(
      async () => {
        if (ws !== this._ws || !this._ready) return;
        if (Date.now() - this._lastHeard >= this.heartbeat) {
          try {
            await this.request("ping", {}, { timeout: Math.min(10_000, this.heartbeat) });
          } catch (error) {
            if (error.code === "timeout") this._drop(ws, "the hub stopped answering");
            return;
          }
        }
        this._scheduleHeartbeat();
      },
      Math.max(1000, this.heartbeat - silence),
    );
  }

  // --- frames -----------------------------------------------------------------------------

  _send(op, fields, entry) {
    const id = ++this._lastId;
    this._pending.set(id, { op, ...entry });
    const ws = entry.ws || this._ws;
    if (!this._write({ id, op, ...fields }, ws)) {
      this._pending.delete(id);
      entry.reject(new HubError("disconnected", "not connected"));
    }
    return id;
  }

  _write(message, ws = this._ws) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  _onFrame(ws, data) {
    if (ws !== this._ws || typeof data !== "string") return;
    this._lastHeard = Date.now();
    // A frame holds one or more JSON messages separated by newlines.
    for (const line of data.split("\n")) {
      if (!line) continue;
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        continue; // the hub never sends this; a bad line must not stop the others
      }
      if (message && typeof message === "object") this._onMessage(message);
    }
  }

  _onMessage(message) {
    if ("re" in message) {
      const entry = this._pending.get(message.re);
      if (!entry) return;
      this._pending.delete(message.re);
      if (message.err) {
        const err = message.err || {};
        entry.reject(new HubError(String(err.code || "internal"), String(err.msg || "")));
      } else {
        const ok = message.ok && typeof message.ok === "object" ? message.ok : {};
        if (entry.join) this._joined(entry.join, ok, Boolean(entry.rejoin));
        entry.resolve(ok);
      }
      return;
    }
    if (typeof message.ev !== "string") return;
    const room = typeof message.room === "string" ? message.room : null;
    const st = room !== null ? this._rooms.get(room) : undefined;
    if (st) {
      if (Number.isInteger(message.seq)) {
        if (message.seq <= st.seq) return; // seen already (a replay overlapping live events)
        st.seq = message.seq;
        // A closed breakout's members are taken out of it by the hub: no rejoin after this.
        if (message.ev === "breakout.closed") this._rooms.delete(room);
      } else if (message.ev === "reset") {
        this._emit(message.ev, message);
        this._reset(room, message.epoch);
        return;
      } else if (message.ev === "kicked") {
        this._rooms.delete(room); // the hub took this session out of the room
      }
    } else if (message.ev === "shutdown" && typeof message.reconnect_in === "number") {
      this._shutdownDelay = message.reconnect_in;
    }
    this._emit(message.ev, message);
  }

  /** Apply a join reply: the room's position, then its missed events in order. */
  _joined(room, ok, rejoin) {
    let st = this._rooms.get(room);
    if (!st) {
      st = { seq: 0, epoch: ok.epoch, ready: false };
      this._rooms.set(room, st);
    } else if (st.epoch !== ok.epoch) {
      st.seq = 0; // the room's history was lost: seq started again
      st.epoch = ok.epoch;
    }
    const missed = Array.isArray(ok.missed) ? ok.missed : [];
    const recovered = ok.missed === undefined ? !rejoin : Boolean(ok.recovered);
    this._emit("joined", { room, reply: ok, rejoin, recovered });
    for (const event of missed) {
      if (!event || typeof event !== "object") continue;
      if (Number.isInteger(event.seq)) {
        if (event.seq <= st.seq) continue;
        st.seq = event.seq;
      }
      this._emit(event.ev, event);
    }
    if (Number.isInteger(ok.seq) && ok.seq > st.seq) st.seq = ok.seq;
    st.ready = true;
  }

  /** The room's stored history was lost: follow it again from its new start. */
  _reset(room, epoch) {
    const st = this._rooms.get(room);
    if (!st) return;
    st.seq = 0;
    st.epoch = epoch;
    st.ready = false;
    this._send("join", { room }, {
      join: room,
      rejoin: true,
      resolve: () => this._pumpOutbox(),
      reject: (error) => {
        this._rooms.delete(room);
        this._emit("left", { room, error });
      },
    });
  }

  _emit(type, detail) {
    for (const key of [type, "*"]) {
      const handlers = this._handlers.get(key);
      if (!handlers) continue;
      if (key === "*" && !detail?.ev) continue; // "*" is for server events only
      for (const handler of Array.from(handlers)) {
        try {
          handler(detail);
        } catch (error) {
          // One broken handler must not stop delivery to the others.
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    }
  }

  // --- chat outbox ------------------------------------------------------------------------

  _outboxKey() {
    const user = this.token ? tokenClaims(this.token)?.sub : null;
    return `livehub.outbox.${user || "guest"}`;
  }

  _loadOutbox() {
    if (!this.storage) return;
    try {
      const saved = JSON.parse(this.storage.getItem(this._outboxKey()) || "[]");
      for (const item of Array.isArray(saved) ? saved : []) {
        if (typeof item?.key === "string" && typeof item?.room === "string") {
          this._outbox.push({ ...item, sending: false, due: 0 });
        }
      }
    } catch {
      /* a damaged entry is dropped rather than blocking the page */
    }
  }

  _saveOutbox() {
    if (!this.storage) return;
    const items = this._outbox.map(({ key, room, text, reply_to }) => ({ key, room, text, reply_to }));
    try {
      if (items.length) this.storage.setItem(this._outboxKey(), JSON.stringify(items));
      else this.storage.removeItem(this._outboxKey());
    } catch {
      /* storage full or denied: the outbox still works for this page's life */
    }
  }

  _emitOutbox(room) {
    this._emit("outbox", { room, pending: this.pendingChat(room) });
  }

  /** Send the oldest waiting message of each joined room, one at a time per room (order). */
  _pumpOutbox() {
    clearTimeout(this._outboxTimer);
    if (!this._ready) return;
    const now = Date.now();
    let next = Infinity;
    const busy = new Set();
    for (const entry of this._outbox) {
      if (busy.has(entry.room)) continue;
      busy.add(entry.room);
      const st = this._rooms.get(entry.room);
      if (entry.sending || !st || !st.ready) continue;
      if (entry.due > now) {
        next = Math.min(next, entry.due);
        continue;
      }
      this._sendChat(entry);
    }
    if (next !== Infinity) {
      this._outboxTimer = setTimeout(() => this._pumpOutbox(), next - now);
    }
  }

  _sendChat(entry) {
    entry.sending = true;
    const fields = { room: entry.room, text: entry.text, key: entry.key };
    if (entry.reply_to) fields.reply_to = entry.reply_to;
    const ws = this._ws;
    this.request("chat.send", fields).then(
      (ok) => {
        this._outbox.splice(this._outbox.indexOf(entry), 1);
        this._saveOutbox();
        this._emitOutbox(entry.room);
        entry.resolve?.(ok);
        this._pumpOutbox();
      },
      (error) => {
        entry.sending = false;
        if (!this._outbox.includes(entry)) return;
        if (RETRIED_CHAT_ERRORS.has(error.code) && this.state !== "closed") {
          entry.tries = (entry.tries || 0) + 1;
          const wait = waitSeconds(error.msg);
          const backoff = Math.min(10_000, 250 * 2 ** Math.min(entry.tries, 6));
          entry.due = Date.now() + (wait !== null ? wait * 1000 : backoff);
          // A reply lost with its connection is retried when the next one is ready.
          if (error.code === "timeout" && ws === this._ws) this._drop(ws, "chat.send timed out");
          this._pumpOutbox();
          return;
        }
        this._outbox.splice(this._outbox.indexOf(entry), 1);
        this._saveOutbox();
        this._emitOutbox(entry.room);
        this._emit("chat.failed", { room: entry.room, text: entry.text, error });
        entry.reject?.(error);
        this._pumpOutbox();
      },
    );
  }

  _failOutbox(room, error) {
    const dropped = this._outbox.filter((e) => e.room === room);
    if (!dropped.length) return;
    this._outbox = this._outbox.filter((e) => e.room !== room);
    this._saveOutbox();
    this._emitOutbox(room);
    for (const entry of dropped) {
      this._emit("chat.failed", { room, text: entry.text, error });
      entry.reject?.(error);
    }
  }
}
