/**
 * One person's session in the app: the hub connection (livehub.js), the rooms they are in, their
 * direct messages, and the actions the views call. Hub events change the state here and touch
 * store topics; views only read the state and call actions.
 */

import { HubError } from "../livehub.js";
import { LocalMedia } from "./media.js";
import { addMessages, applyEvent, applySnapshot, roomFromJoin } from "./roomstate.js";
import { hubText, t } from "./strings.js";

const HISTORY_PAGE = 50;
const DM_KEPT = 1000; // messages of a conversation in memory, as the hub keeps
const ALL_TOPICS = ["room", "chat", "notices", "qa", "polls", "awards", "hands", "stage", "members", "breakouts"];

/** A person-readable text for an error from the hub or the client, in the page's language: the
 * catalogue's text for its code (with the wait, when the hub gave one), or for the close that
 * ended the session. The hub's own message is English for logs: it goes to the console only. */
export function errorText(error) {
  const detail = error?.msg || error?.message;
  if (detail) console.debug("livehub:", error.code ?? "", detail);
  if (error?.code === "closed" && error.closeCode) return closeText(error.closeCode);
  if (error?.code === "rate_limited" && error.retryIn) return t("error.rate_limitedFor", { count: error.retryIn });
  return (error?.code && t(`error.${error.code}`, {}, null)) || t("error.unknown");
}

/** Why the hub ended a session, from its close code ("your sign-in is no longer valid"). */
export function closeText(code) {
  return t(`close.${code}`, {}, null) ?? t("close.other");
}

export class Session {
  constructor(hub, store) {
    this.hub = hub;
    this.store = store;
    this.state = store.state;
    this.lobby = null;
    this.current = null; // the room on screen (null: the lobby)
    this.moving = null; // the breakout the hub is moving us into: its `joined` comes next
    this._signals = new Set();
    this._toasts = 0;
    this.localMedia = new LocalMedia(this);
    this.localMedia.onChange(() => store.touch("local-media"));
    hub.on("status", (status) => ((this.state.status = status), store.touch("status")));
    hub.on("joined", (joined) => this._joined(joined));
    hub.on("left", ({ room, error }) => this._gone(room, t("room.lost", { reason: errorText(error) })));
    hub.on("outbox", ({ room, pending }) => (this.state.outbox.set(room, pending), this.touchRoom(room, ["chat"])));
    hub.on("chat.failed", ({ error }) => this.toast(errorText(error), "error"));
    hub.on("*", (ev) => this._event(ev));
  }

  /** The state of a joined room, or undefined. */
  room(id) {
    return this.state.rooms.get(id);
  }

  /** Call `handler(event)` for every `signal` event (the media module's). */
  onSignal(handler) {
    this._signals.add(handler);
    return () => this._signals.delete(handler);
  }

  /** Touch `topic:<room>` for each topic. */
  touchRoom(id, topics) {
    this.store.touch(...topics.map((topic) => `${topic}:${id}`));
  }

  _setDirectory(rooms) {
    this.state.directory = rooms || [];
    this.store.touch("directory");
  }

  // --- hub events

  _joined({ room: id, reply, rejoin, recovered }) {
    const moved = id === this.moving;
    if (moved) this.moving = null;
    if (id !== this.lobby && id !== this.current && !moved && reply.room?.kind !== "lobby") {
      // Joined for a view the person has left meanwhile (a late reply): leave it again.
      this.hub.leave(id).catch(() => {});
      return;
    }
    let room = this.room(id);
    const fresh = !room;
    if (fresh) this.state.rooms.set(id, (room = roomFromJoin(reply, this.hub.user, this.hub.sid)));
    else applySnapshot(room, reply, this.hub.user, this.hub.sid);
    if (room.kind === "lobby") {
      if (reply.snapshot?.rooms) this._setDirectory(reply.snapshot.rooms);
      else this.hub.request("room.list").then(({ rooms }) => this._setDirectory(rooms), () => {});
    }
    this.touchRoom(id, rejoin ? [...ALL_TOPICS, "rejoined"] : ALL_TOPICS);
    if (fresh || !recovered) {
      // A new page of history; a load still under way for the old one is ignored.
      Object.assign(room.chat, { messages: [], ids: new Set(), reachedStart: false, memoryFull: false, loading: false, generation: (room.chat.generation || 0) + 1 });
      this.loadChat(id);
    }
    // Someone in a parent room when its round opens, or who comes back while it is open, goes
    // to their breakout (once for each assignment: they may walk back out).
    const assigned = reply.snapshot?.breakouts?.assigned;
    if (assigned && assigned !== this.state.assignments.get(id)) {
      this.state.assignments.set(id, assigned);
      if (this.current === id) this.navigate(assigned);
    }
  }

  /** A room the person is no longer in: forget it, say why, and go to `to` (the lobby). */
  _gone(id, why, to = null) {
    if (this.state.rooms.delete(id)) this.touchRoom(id, ["room"]);
    if (this.current === id) {
      if (why) this.toast(why, to ? "info" : "error");
      this.navigate(to);
    }
  }

  /** Whether the organizers closed the event (said in the hello, or since): the lobby's
   * networking sections watch the store's "event" topic for it. */
  get eventClosed() {
    return Boolean(this.state.eventClosedAt ?? this.hub.hello?.event?.closed_at);
  }

  _event(ev) {
    const room = this.room(ev.room);
    switch (ev.ev) {
      case "signal":
        return this._signals.forEach((handler) => handler(ev));
      case "dm":
        return this._dmReceived(ev);
      case "rooms":
        return this._setDirectory(ev.rooms);
      case "kicked":
        return this._gone(ev.room, t("room.kicked", { title: room?.title || ev.room }));
      case "event.closed":
        // The organizers closed the event: what stays is the lobby, with their notice.
        this.state.eventClosedAt = ev.closed_at;
        this.store.touch("event");
        this.toast(hubText(ev), "info", { written: !ev.key });
        return this.current && this.navigate(null);
      case "breakout.closed":
        return this._gone(ev.room, t("breakout.closedToast"), ev.parent);
      case "breakout.assigned":
        this.state.assignments.set(ev.room, ev.breakout);
        if (room?.breakouts) room.breakouts.assigned = ev.breakout;
        this.touchRoom(ev.room, ["breakouts"]);
        // Moved in by the hub: the room's `joined` comes next, and no join is sent.
        if (ev.joined) this.moving = ev.breakout;
        return this.navigate(ev.breakout);
    }
    if (!room) return;
    const topics = applyEvent(room, ev);
    if (ev.ev === "breakouts") {
      // The round's event is the same for everyone: one's own room came apart.
      const assigned = this.state.assignments.get(room.id);
      if (!room.breakouts) this.state.assignments.delete(room.id);
      else if (room.breakouts.rooms.some((child) => child.id === assigned)) room.breakouts.assigned = assigned;
    }
    this.touchRoom(room.id, topics);
    if (ev.ev === "notice" && topics.length) this.announce(t("notice.announced", { text: hubText(ev) }));
    // A lobby poll's close is announced with its result, by the results panel (results.js).
    if (ev.ev === "poll" && !(ev.poll.state === "closed" && room.kind === "lobby")) this.announce(t(ev.poll.state === "closed" ? "poll.closedAnnounce" : "poll.openedAnnounce", { question: ev.poll.question }));
    if (ev.ev === "breakout.ending") this.announce(t("breakout.endingSoon"));
  }

  // --- navigation

  /** Show a room (null: the lobby), through the address so the back button works. */
  navigate(id) {
    const hash = id ? `#/room/${encodeURIComponent(id)}` : "#/";
    if (location.hash !== hash) location.hash = hash;
    else this.route();
  }

  /** Follow the address (`#/` the lobby, `#/room/<id>`): leave the room on screen and join the
   * new one. The person is in the lobby and at most one other room, the one on screen: a
   * breakout's parent is left too (the hub ends its peers' links), and joined again on return. */
  async route() {
    if (location.hash && !location.hash.startsWith("#/")) return; // an in-page anchor
    const match = /^#\/room\/(.+)$/.exec(location.hash);
    const target = match ? decodeURIComponent(match[1]) : null;
    const previous = this.current;
    if (target === previous && (target === null || this.state.rooms.has(target))) return;
    this.current = target;
    this.store.touch("view");
    if (previous && previous !== this.lobby && previous !== target) {
      if (this.state.rooms.delete(previous)) this.touchRoom(previous, ["room"]);
      this.hub.leave(previous).catch(() => {}); // gone already (a closed breakout, a kick)
    }
    if (target === null || this.state.rooms.has(target)) return this.touchRoom(target, ["room"]);
    try {
      await this.hub.join(target);
    } catch (error) {
      if (this.current === target) this._gone(target, t("room.joinFailed", { reason: errorText(error) }));
    }
  }

  // --- chat

  /** Load a page of chat history: the newest, or (`older`) the one before the oldest shown;
   * resolves with how many messages came. */
  async loadChat(id, older = false) {
    const room = this.room(id);
    const chat = room?.chat;
    if (!chat || chat.loading || (older && (chat.reachedStart || chat.memoryFull))) return 0;
    const generation = chat.generation;
    chat.loading = true;
    try {
      const fields = { room: id, limit: HISTORY_PAGE };
      if (older && chat.messages.length) fields.before = chat.messages[0].seq;
      const { messages } = await this.hub.request("chat.history", fields);
      if (chat.generation !== generation) return 0; // the room was reloaded meanwhile
      if (messages.length < HISTORY_PAGE) chat.reachedStart = true;
      addMessages(room, messages, { older });
      return messages.length;
    } catch (error) {
      this.toast(t("chat.historyFailed", { reason: errorText(error) }), "error");
      return 0;
    } finally {
      if (chat.generation === generation) chat.loading = false;
      this.touchRoom(id, ["chat"]);
    }
  }

  /** Post a message through the outbox: sent once, whenever the hub is reachable. */
  sendChat(id, text) {
    this.hub.sendChat(id, text).catch((error) => error.code === "rate_limited" && this.toast(errorText(error), "error")); // others come as chat.failed
  }

  // --- actions

  /** Send a command; on an error reply, show it and resolve null. */
  async act(op, fields, success) {
    try {
      const ok = await this.hub.request(op, fields);
      if (success) this.toast(success);
      return ok;
    } catch (error) {
      this.toast(errorText(error), "error");
      return null;
    }
  }

  async upvote(id, question) {
    const room = this.room(id);
    if (!room || room.voted.has(question)) return;
    room.voted.add(question);
    this.touchRoom(id, ["qa"]);
    try {
      const { votes } = await this.hub.request("qa.vote", { room: id, question });
      const known = room.questions.get(question);
      if (known && votes > known.votes) known.votes = votes;
    } catch (error) {
      if (error.code !== "conflict") {
        room.voted.delete(question);
        this.toast(errorText(error), "error");
      }
    }
    this.touchRoom(id, ["qa"]);
  }

  async vote(id, poll, choice) {
    const ok = await this.act("poll.vote", { room: id, poll, choice }, t("poll.voted"));
    const view = ok && this.room(id)?.polls.get(poll);
    if (view) view.mine = choice;
    this.touchRoom(id, ["polls"]);
  }

  /** Download a poll's results as CSV (the hub checks that the token may). */
  async downloadCsv(id, poll) {
    try {
      const url = `/api/rooms/${encodeURIComponent(id)}/polls/${encodeURIComponent(poll)}.csv`;
      const response = await fetch(url, { headers: { Authorization: `Bearer ${this.hub.token}` } });
      if (!response.ok) {
        const { err } = await response.json().catch(() => ({}));
        throw err ? new HubError(String(err.code), String(err.msg || ""), err) : new Error(`HTTP ${response.status}`);
      }
      const href = URL.createObjectURL(await response.blob());
      const link = Object.assign(document.createElement("a"), { href, download: `poll-${poll}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(href), 10_000);
    } catch (error) {
      this.toast(t("poll.csvFailed", { reason: errorText(error) }), "error");
    }
  }

  /** A page of a room's members: `{members, count, next?}`. */
  presence(id, after) {
    return this.hub.request("presence", { room: id, limit: 200, ...(after && { after }) });
  }

  // --- direct messages

  async loadConversations() {
    const readKey = `livehub.dmread.${this.hub.user.id}`;
    try {
      this.state.dms.read = JSON.parse(localStorage.getItem(readKey) || "{}") || {};
    } catch {
      this.state.dms.read = {};
    }
    try {
      for (const item of (await this.hub.request("dm.conversations")).conversations) this._conversation(item.with, item.name, item);
    } catch {
      /* an older hub without dm.conversations: conversations start with the first message */
    }
    this.store.touch("dms");
  }

  /** The conversation with `user` (made when new), brought up to `last` `{n, ts}`. */
  _conversation(user, name, last) {
    const dms = this.state.dms.conversations;
    if (!dms.has(user)) dms.set(user, { with: user, name: null, n: 0, ts: 0, messages: [], loaded: false });
    const conversation = dms.get(user);
    if (name) conversation.name = name;
    if (last) {
      conversation.n = Math.max(conversation.n, last.n);
      conversation.ts = Math.max(conversation.ts, last.ts);
    }
    return conversation;
  }

  _dmReceived(ev) {
    const conversation = this._conversation(ev.from, ev.name, ev);
    if (!conversation.messages.some((m) => m.id === ev.id)) conversation.messages = [...conversation.messages, ev].slice(-DM_KEPT);
    if (this.state.dms.open === ev.from && !document.hidden) this.markRead(ev.from);
    else this.announce(t("dm.received", { name: ev.name }));
    this.store.touch("dms");
  }

  /** Open a conversation (loading its history) and mark it read. */
  async openConversation(user, name) {
    const conversation = this._conversation(user, name);
    this.state.dms.open = user;
    this.store.touch("dms");
    if (!conversation.loaded) {
      try {
        const { messages } = await this.hub.request("dm.history", { with: user, limit: 100 });
        const seen = new Set(conversation.messages.map((m) => m.id));
        conversation.messages = [...messages.filter((m) => !seen.has(m.id)), ...conversation.messages].sort((a, b) => a.n - b.n);
        conversation.loaded = true;
        for (const message of messages) this._conversation(user, message.from === user && message.name, message);
      } catch (error) {
        this.toast(errorText(error), "error");
      }
    }
    this.markRead(user);
  }

  async sendDm(user, text) {
    const ok = await this.act("dm.send", { to: user, text });
    if (!ok) return false;
    const me = this.hub.user;
    this._conversation(user, null, ok).messages.push({ ...ok, from: me.id, name: me.name, text });
    this.markRead(user);
    return true;
  }

  /** Unread messages of a conversation: its last number past the read mark. */
  unread(conversation) {
    return Math.max(0, conversation.n - (this.state.dms.read[conversation.with] || 0));
  }

  markRead(user) {
    const n = this.state.dms.conversations.get(user)?.n || 0;
    const read = this.state.dms.read;
    if ((read[user] || 0) < n) {
      read[user] = n;
      try {
        localStorage.setItem(`livehub.dmread.${this.hub.user.id}`, JSON.stringify(read));
      } catch {
        /* storage denied: read marks last for this page */
      }
    }
    this.store.touch("dms");
  }

  /** Bring the direct messages into view (the lobby's section, or a room's tab). */
  showMessages() {
    this.store.touch("dms-focus");
  }

  // --- feedback

  /** A short message on screen (read out too); `kind` "error" for failures; `written` when the
   * text is someone's own words (an organizer's notice), shown in their direction. */
  toast(text, kind = "info", { written = false } = {}) {
    const id = ++this._toasts;
    this.state.toasts = [...this.state.toasts.slice(-3), { id, text, kind, written }];
    this.store.touch("toasts");
    setTimeout(() => {
      this.state.toasts = this.state.toasts.filter((toast) => toast.id !== id);
      this.store.touch("toasts");
    }, 6000);
  }

  /** Say something to screen readers only (notices, results, new polls). */
  announce(text) {
    this.state.announcements = [...this.state.announcements.slice(-4), text];
    this.store.touch("announce");
  }
}
