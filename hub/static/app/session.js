/**
 * One person's session in the app: the hub connection (livehub.js), the rooms they are in, their
 * direct messages, and the actions the views call. Hub events change the state here and touch
 * store topics; views only read the state and call actions.
 */

import { HubError } from "../livehub.js";
import { LocalMedia } from "./media.js";
import { addMessages, applyEvent, applySnapshot, moderates, roomFromJoin } from "./roomstate.js";
import { t } from "./strings.js";

const TOAST_MS = 6000;
const HISTORY_PAGE = 50;

export class Session {
  /**
   * @param {import("../livehub.js").Hub} hub a connected or connecting hub
   * @param {import("./store.js").Store} store the app's store
   */
  constructor(hub, store) {
    this.hub = hub;
    this.store = store;
    this.state = store.state;
    this.lobby = null;
    this.current = null; // the room on screen (null: the lobby)
    this._signalHandlers = new Set();
    this._toastId = 0;
    this.localMedia = new LocalMedia(this);
    this.localMedia.onChange(() => store.touch("local-media"));
    hub.on("status", (status) => this._status(status));
    hub.on("joined", (joined) => this._joined(joined));
    hub.on("left", ({ room, error }) => this._lost(room, error));
    hub.on("outbox", ({ room, pending }) => this._outbox(room, pending));
    hub.on("chat.failed", ({ error }) => this.toast(errorText(error), "error"));
    hub.on("*", (ev) => this._event(ev));
  }

  /** The state of a joined room, or undefined. */
  room(id) {
    return this.state.rooms.get(id);
  }

  /** Call `handler(signal)` for every `signal` event (the media module's). */
  onSignal(handler) {
    this._signalHandlers.add(handler);
    return () => this._signalHandlers.delete(handler);
  }

  // --- hub events -------------------------------------------------------------------------

  _status(status) {
    this.state.status = status;
    this.store.touch("status");
  }

  _joined({ room: id, reply, rejoin, recovered }) {
    const me = this.hub.user;
    let room = this.state.rooms.get(id);
    let fresh = false;
    if (!room) {
      room = roomFromJoin(reply, me, this.hub.sid);
      this.state.rooms.set(id, room);
      fresh = true;
    } else {
      applySnapshot(room, reply, me, this.hub.sid);
    }
    if (room.kind === "lobby" && Array.isArray(reply.snapshot?.rooms)) {
      this.state.directory = reply.snapshot.rooms;
      this.store.touch("directory");
    } else if (room.kind === "lobby") {
      this.hub.request("room.list").then(({ rooms }) => {
        this.state.directory = rooms;
        this.store.touch("directory");
      }, () => {});
    }
    this.touchRoom(id, ["room", "chat", "notices", "qa", "polls", "hands", "stage", "members", "breakouts"]);
    if (fresh || !recovered) {
      if (!fresh) {
        room.chat.messages = [];
        room.chat.ids = new Set();
      }
      this._loadLatestChat(id);
    }
    if (rejoin) this.touchRoom(id, ["rejoined"]);
    // Someone who comes into a parent room while its breakouts are open goes to theirs.
    const assigned = reply.snapshot?.breakouts?.assigned;
    if (fresh && assigned && this.current === id) this.enter(assigned);
  }

  _lost(id, error) {
    this.state.rooms.delete(id);
    this.touchRoom(id, ["room"]);
    if (this.current === id) {
      this.toast(t("room.lost", { reason: errorText(error) }), "error");
      this.navigate(null);
    }
  }

  _outbox(id, pending) {
    this.state.outbox.set(id, pending);
    this.touchRoom(id, ["chat"]);
  }

  _event(ev) {
    switch (ev.ev) {
      case "signal":
        for (const handler of this._signalHandlers) handler(ev);
        return;
      case "dm":
        this._dmReceived(ev);
        return;
      case "rooms":
        this.state.directory = ev.rooms || [];
        this.store.touch("directory");
        return;
      case "kicked":
        this._kicked(ev.room);
        return;
      case "breakout.assigned": {
        this.state.assignments.set(ev.room, ev.breakout);
        const parent = this.state.rooms.get(ev.room);
        if (parent?.breakouts) {
          parent.breakouts.assigned = ev.breakout;
          this.touchRoom(ev.room, ["breakouts"]);
        }
        this.enter(ev.breakout);
        return;
      }
      case "breakout.closed":
        this._breakoutClosed(ev.room, ev.parent);
        return;
      default:
        break;
    }
    const room = typeof ev.room === "string" ? this.state.rooms.get(ev.room) : undefined;
    if (!room) return;
    const topics = applyEvent(room, ev);
    if (ev.ev === "breakouts" && room.breakouts) {
      // The round's event is the same for everyone; one's own room came separately.
      const assigned = this.state.assignments.get(room.id);
      if (assigned && room.breakouts.rooms.some((child) => child.id === assigned)) room.breakouts.assigned = assigned;
    } else if (ev.ev === "breakouts") {
      this.state.assignments.delete(room.id);
    }
    if (topics.length) this.touchRoom(room.id, topics);
    if (ev.ev === "notice") this.announce(t("notice.announced", { text: ev.text }));
    if (ev.ev === "poll" && ev.poll.state === "closed") {
      this.announce(t("poll.closedAnnounce", { question: ev.poll.question }));
    } else if (ev.ev === "poll") {
      this.announce(t("poll.openedAnnounce", { question: ev.poll.question }));
    }
    if (ev.ev === "breakout.ending") this.announce(t("breakout.endingSoon"));
  }

  _kicked(id) {
    const room = this.state.rooms.get(id);
    this.state.rooms.delete(id);
    this.touchRoom(id, ["room"]);
    for (const [childId, child] of this.state.rooms) {
      if (child.parent === id) {
        this.state.rooms.delete(childId);
        this.touchRoom(childId, ["room"]);
      }
    }
    this.toast(t("room.kicked", { title: room?.title || id }), "error");
    if (this.current === id || this.room(this.current) === undefined) this.navigate(null);
  }

  _breakoutClosed(child, parent) {
    this.state.rooms.delete(child);
    this.touchRoom(child, ["room"]);
    if (this.current === child) {
      this.toast(t("breakout.closedToast"));
      this.enter(parent);
    }
  }

  /** Touch `topic:<room>` for each topic. */
  touchRoom(id, topics) {
    this.store.touch(...topics.map((topic) => `${topic}:${id}`));
  }

  // --- navigation -------------------------------------------------------------------------

  /** Show a room (null: the lobby), through the address so the back button works. */
  navigate(id) {
    const hash = id ? `#/room/${encodeURIComponent(id)}` : "#/";
    if (location.hash !== hash) location.hash = hash;
    else this.route();
  }

  /** Enter a room: join it, leave the room on screen unless it is its parent, and show it. */
  enter(id) {
    this.navigate(id);
  }

  /** Follow the address: join the room it names and leave the one on screen. */
  async route() {
    const match = /^#\/room\/(.+)$/.exec(location.hash);
    const target = match ? decodeURIComponent(match[1]) : null;
    const previous = this.current;
    if (target === previous && (target === null || this.state.rooms.has(target))) return;
    this.current = target;
    this.state.view = { room: target };
    this.store.touch("view");
    if (previous && previous !== target) await this._leaveFor(previous, target);
    if (target === null) return;
    if (!this.state.rooms.has(target)) {
      try {
        await this.hub.join(target);
      } catch (error) {
        if (this.current === target) {
          this.toast(t("room.joinFailed", { reason: errorText(error) }), "error");
          this.navigate(null);
        }
        return;
      }
    }
    this.touchRoom(target, ["room"]);
  }

  async _leaveFor(previous, target) {
    const room = this.state.rooms.get(previous);
    if (!room || room.kind === "lobby") return;
    const targetRoom = target ? this.state.rooms.get(target) : null;
    // A parent stays joined while its breakout is on screen, and the other way round nothing.
    const isParentOfTarget = target && (targetRoom?.parent === previous || target.startsWith(`${previous}.b`));
    if (isParentOfTarget) return;
    const leaving = [previous];
    if (room.parent && room.parent !== target) leaving.push(room.parent);
    for (const id of leaving) {
      if (!this.state.rooms.has(id)) continue;
      this.state.rooms.delete(id);
      this.touchRoom(id, ["room"]);
      try {
        await this.hub.leave(id);
      } catch {
        /* gone already (closed breakout, kick): nothing to undo */
      }
    }
  }

  // --- chat -------------------------------------------------------------------------------

  async _loadLatestChat(id) {
    const room = this.room(id);
    if (!room) return;
    room.chat.loading = true;
    try {
      const { messages } = await this.hub.request("chat.history", { room: id, limit: HISTORY_PAGE });
      const current = this.room(id);
      if (current !== room) return;
      addMessages(room, messages);
      if (messages.length < HISTORY_PAGE) room.chat.reachedStart = true;
    } catch (error) {
      this.toast(t("chat.historyFailed", { reason: errorText(error) }), "error");
    } finally {
      room.chat.loading = false;
      this.touchRoom(id, ["chat"]);
    }
  }

  /** Load the page of messages before the oldest one shown; resolves with how many came. */
  async loadOlderChat(id) {
    const room = this.room(id);
    if (!room || room.chat.loading || room.chat.reachedStart || room.chat.memoryFull) return 0;
    const oldest = room.chat.messages[0];
    room.chat.loading = true;
    try {
      const fields = { room: id, limit: HISTORY_PAGE };
      if (oldest) fields.before = oldest.seq;
      const { messages } = await this.hub.request("chat.history", fields);
      if (messages.length < HISTORY_PAGE) room.chat.reachedStart = true;
      addMessages(room, messages, { older: true });
      return messages.length;
    } catch (error) {
      this.toast(t("chat.historyFailed", { reason: errorText(error) }), "error");
      return 0;
    } finally {
      room.chat.loading = false;
      this.touchRoom(id, ["chat"]);
    }
  }

  /** Post a message (through the outbox: it is sent once, whenever the hub is reachable). */
  sendChat(id, text) {
    const room = this.room(id);
    if (room) room.chat.lastSent = Date.now();
    this.hub.sendChat(id, text).catch(() => {
      /* reported through the hub's chat.failed event */
    });
  }

  // --- actions ----------------------------------------------------------------------------

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

  async vote(id, pollId, choice) {
    const room = this.room(id);
    const ok = await this.act("poll.vote", { room: id, poll: pollId, choice }, t("poll.voted"));
    if (ok && room) {
      const view = room.polls.get(pollId);
      if (view) view.mine = choice;
      this.touchRoom(id, ["polls"]);
    }
    return ok;
  }

  /** Download a poll's results as CSV (moderators; the hub checks the token). */
  async downloadCsv(id, pollId) {
    try {
      const response = await fetch(`/api/rooms/${encodeURIComponent(id)}/polls/${encodeURIComponent(pollId)}.csv`, {
        headers: { Authorization: `Bearer ${this.hub.token}` },
      });
      if (!response.ok) {
        let reason = `HTTP ${response.status}`;
        try {
          reason = errorText((await response.json()).err);
        } catch {
          /* not JSON: the status says enough */
        }
        throw new Error(reason);
      }
      const url = URL.createObjectURL(await response.blob());
      const link = Object.assign(document.createElement("a"), { href: url, download: `poll-${pollId}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      this.toast(t("poll.csvFailed", { reason: error.message }), "error");
    }
  }

  /** A page of a room's members: `{members, count, next?}`. */
  presence(id, after) {
    const fields = { room: id, limit: 200 };
    if (after) fields.after = after;
    return this.hub.request("presence", fields);
  }

  // --- direct messages --------------------------------------------------------------------

  async loadConversations() {
    try {
      const { conversations } = await this.hub.request("dm.conversations");
      for (const item of conversations) {
        const conversation = this._conversation(item.with, item.name);
        conversation.n = Math.max(conversation.n, item.n);
        conversation.ts = Math.max(conversation.ts, item.ts);
      }
      this.store.touch("dms");
    } catch {
      /* an older hub without dm.conversations: conversations start with the first message */
    }
  }

  _conversation(user, name) {
    const dms = this.state.dms;
    let conversation = dms.conversations.get(user);
    if (!conversation) {
      conversation = { with: user, name: name || null, n: 0, ts: 0, messages: [], loaded: false };
      dms.conversations.set(user, conversation);
    }
    if (name) conversation.name = name;
    return conversation;
  }

  _dmReceived(ev) {
    const conversation = this._conversation(ev.from, ev.name);
    if (!conversation.messages.some((m) => m.id === ev.id)) conversation.messages.push(ev);
    conversation.n = Math.max(conversation.n, ev.n);
    conversation.ts = Math.max(conversation.ts, ev.ts);
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
        conversation.messages = [...messages.filter((m) => !seen.has(m.id)), ...conversation.messages];
        conversation.messages.sort((a, b) => a.n - b.n);
        conversation.loaded = true;
        for (const message of messages) {
          conversation.n = Math.max(conversation.n, message.n);
          if (message.from === user) conversation.name = message.name;
        }
      } catch (error) {
        this.toast(errorText(error), "error");
      }
    }
    this.markRead(user);
    this.store.touch("dms");
  }

  async sendDm(user, text) {
    const ok = await this.act("dm.send", { to: user, text });
    if (!ok) return false;
    const conversation = this._conversation(user);
    const me = this.hub.user;
    conversation.messages.push({ id: ok.id, from: me.id, name: me.name, text, ts: ok.ts, n: ok.n });
    conversation.n = Math.max(conversation.n, ok.n);
    conversation.ts = ok.ts;
    this.markRead(user);
    this.store.touch("dms");
    return true;
  }

  /** Unread messages of a conversation (its last number past the read mark). */
  unread(conversation) {
    return Math.max(0, conversation.n - (this.state.dms.read[conversation.with] || 0));
  }

  markRead(user) {
    const conversation = this.state.dms.conversations.get(user);
    if (!conversation) return;
    const read = this.state.dms.read;
    if ((read[user] || 0) >= conversation.n) return;
    read[user] = conversation.n;
    try {
      localStorage.setItem(`livehub.dmread.${this.hub.user.id}`, JSON.stringify(read));
    } catch {
      /* storage denied: read marks last for this page */
    }
    this.store.touch("dms");
  }

  loadReadMarks() {
    try {
      const saved = JSON.parse(localStorage.getItem(`livehub.dmread.${this.hub.user.id}`) || "{}");
      if (saved && typeof saved === "object") this.state.dms.read = saved;
    } catch {
      this.state.dms.read = {};
    }
  }

  /** Bring the direct messages into view (the lobby's section, or a room's tab). */
  showMessages() {
    this.store.touch("dms-focus");
  }

  // --- feedback ---------------------------------------------------------------------------

  /** A short message on screen (and for screen readers); `kind` "error" for failures. */
  toast(text, kind = "info") {
    const id = ++this._toastId;
    this.state.toasts.push({ id, text, kind });
    this.store.touch("toasts");
    setTimeout(() => {
      this.state.toasts = this.state.toasts.filter((toast) => toast.id !== id);
      this.store.touch("toasts");
    }, TOAST_MS);
  }

  /** Say something to screen readers only (notices, results, new polls). */
  announce(text) {
    this.state.announcements.push(text);
    if (this.state.announcements.length > 5) this.state.announcements.shift();
    this.store.touch("announce");
  }
}

/** A person-readable text for an error from the hub or the client. */
export function errorText(error) {
  if (!error) return t("error.unknown");
  const code = error.code || (error instanceof HubError ? error.code : null);
  const known = code ? t(`error.${code}`, {}, null) : null;
  const detail = error.msg || error.message || "";
  if (known && detail) return `${known} (${detail})`;
  return known || detail || t("error.unknown");
}

/** Whether the person moderates the room on screen. */
export { moderates };
