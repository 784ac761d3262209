/**
 * A room's chat: the log (a window of at most a few hundred message nodes over the messages
 * kept in memory, older pages loaded on scroll-up), messages still waiting to be posted, and the
 * form ("Message", "Send"). Rendering runs at most once per animation frame.
 */

import { h, linkedText, replace, setText } from "./dom.js";
import { moderates, roleOf } from "./roomstate.js";
import { roleBadge } from "./shell.js";
import { clock, t } from "./strings.js";
import { watchAll } from "./store.js";

/** Message nodes shown while following the newest messages. */
const WINDOW = 300;
/** Message nodes shown at most while reading back. */
const WINDOW_MAX = 450;
/** How many nodes the window moves by when the reader reaches one of its ends. */
const STEP = 100;
/** Pixels from an end of the log that count as being there. */
const NEAR = 60;
const MUTE_SECONDS = 300;

export function mountChat(container, session, roomId) {
  const log = h("ol", { class: "chat-log", role: "log", "aria-label": t("chat.log") });
  const start = h("p", { class: "hint chat-start" });
  const pendingList = h("ol", { class: "chat-pending", "aria-label": t("chat.pending") });
  const scroller = h("div", { class: "chat-scroll", tabindex: "0", "aria-label": t("chat.scroll") }, start, log, pendingList);
  const jump = h("button", { type: "button", class: "jump", hidden: true, text: t("chat.newMessages") });
  const stateLine = h("p", { class: "hint chat-state", "aria-live": "polite" });
  const input = h("textarea", { rows: "2", maxlength: "2000", "aria-label": t("chat.message"), placeholder: t("chat.placeholder") });
  const send = h("button", { type: "submit", class: "primary", text: t("chat.send") });
  const form = h("form", { class: "chat-form" }, input, send);
  container.append(h("div", { class: "chat" }, stateLine, scroller, jump, form));

  const nodes = new Map(); // message id -> <li>
  let sticky = true; // following the newest messages
  let first = null; // id of the window's first message (null while sticky)
  let last = null; // id of the window's last message (null while sticky)
  let loading = false;
  let builtFor = null; // the room's roles version the message nodes were drawn for

  const submit = () => {
    const text = input.value.trim();
    if (!text) return;
    const room = session.room(roomId);
    if (room && room.chat.mutedUntil * 1000 > Date.now()) {
      session.toast(t("chat.mutedUntil", { time: clock(room.chat.mutedUntil) }), "error");
      return;
    }
    session.sendChat(roomId, text);
    input.value = "";
    sticky = true;
    first = last = null;
    render();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  jump.addEventListener("click", () => {
    sticky = true;
    first = last = null;
    render();
  });

  scroller.addEventListener("scroll", () => {
    const room = session.room(roomId);
    if (!room) return;
    const messages = room.chat.messages;
    const bottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
    if (scroller.scrollTop < NEAR) {
      const index = first ? messages.findIndex((m) => m.id === first) : Math.max(0, messages.length - WINDOW);
      if (index > 0) {
        // Reading back within what memory holds: move the window up.
        const top = Math.max(0, index - STEP);
        const lastIndex = Math.min(messages.length - 1, top + WINDOW_MAX - 1);
        sticky = false;
        first = messages[top].id;
        last = messages[lastIndex].id;
        render();
      } else if (!loading && !room.chat.reachedStart && !room.chat.memoryFull) {
        loading = true;
        session.loadOlderChat(roomId).then((count) => {
          loading = false;
          if (!count) return;
          const current = session.room(roomId)?.chat.messages || [];
          sticky = false;
          first = current[0]?.id ?? null;
          last = current[Math.min(current.length - 1, WINDOW_MAX - 1)]?.id ?? null;
          render();
        });
      }
    } else if (!sticky && bottom < NEAR) {
      const index = last ? messages.findIndex((m) => m.id === last) : messages.length - 1;
      if (index < 0 || index >= messages.length - 1) {
        sticky = true;
        first = last = null;
      } else {
        const end = Math.min(messages.length - 1, index + STEP);
        last = messages[end].id;
        first = messages[Math.max(0, end - WINDOW_MAX + 1)].id;
      }
      render();
    }
  });

  function windowOf(messages) {
    if (sticky) return messages.slice(Math.max(0, messages.length - WINDOW));
    const from = messages.findIndex((m) => m.id === first);
    const to = messages.findIndex((m) => m.id === last);
    if (from < 0 || to < from) {
      sticky = true; // what was being read is no longer in memory
      first = last = null;
      return messages.slice(Math.max(0, messages.length - WINDOW));
    }
    return messages.slice(from, to + 1);
  }

  function messageNode(room, message) {
    const role = roleOf(room, message.user);
    const mine = message.user === room.me;
    const actions = [];
    if (mine || moderates(room)) {
      actions.push(
        h("button", {
          type: "button",
          class: "small",
          text: t("chat.delete"),
          "aria-label": t("chat.deleteFrom", { name: message.name }),
          onclick: () => session.act("chat.delete", { room: roomId, msg: message.id }),
        }),
      );
    }
    if (!mine && moderates(room) && role !== "moderator" && role !== "organizer") {
      actions.push(
        h("button", {
          type: "button",
          class: "small",
          text: t("chat.mute"),
          "aria-label": t("chat.muteName", { name: message.name }),
          onclick: () =>
            session.act("chat.mute", { room: roomId, user: message.user, seconds: MUTE_SECONDS }, t("chat.muted", { name: message.name })),
        }),
      );
    }
    return h(
      "li",
      { class: mine ? "msg mine" : "msg", dataset: { id: message.id } },
      h(
        "p",
        { class: "msg-head" },
        h("span", { class: "msg-name", text: message.name }),
        roleBadge(role),
        h("time", { datetime: new Date(message.ts * 1000).toISOString(), text: clock(message.ts) }),
      ),
      h("p", { class: "msg-text", dir: "auto" }, linkedText(message.text)),
      actions.length ? h("div", { class: "msg-actions" }, actions) : null,
    );
  }

  function render() {
    const room = session.room(roomId);
    if (!room) return;
    const chat = room.chat;
    if (builtFor !== room.rolesVersion) {
      // Badges and actions depend on roles: messages are drawn again after a role change.
      builtFor = room.rolesVersion;
      nodes.clear();
      log.replaceChildren();
    }
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR;
    const anchor = log.firstElementChild;
    const anchorTop = anchor ? anchor.offsetTop : 0;
    const shown = windowOf(chat.messages);
    const wanted = new Set(shown.map((m) => m.id));
    for (const [id, node] of nodes) {
      if (!wanted.has(id)) {
        node.remove();
        nodes.delete(id);
      }
    }
    let appended = false;
    let cursor = log.firstElementChild;
    for (const message of shown) {
      let node = nodes.get(message.id);
      if (!node) {
        node = messageNode(room, message);
        nodes.set(message.id, node);
        appended = appended || cursor === null;
      }
      if (node !== cursor) log.insertBefore(node, cursor);
      else cursor = cursor.nextElementSibling;
    }
    renderPending(room);
    const firstShown = shown[0];
    const atStart = chat.reachedStart && (!firstShown || firstShown.id === chat.messages[0]?.id);
    setText(start, chat.loading ? t("chat.loading") : atStart ? t("chat.beginning") : chat.memoryFull ? t("chat.memoryFull") : "");
    setText(stateLine, chatState(room));
    if (sticky && (atBottom || appended || !anchor)) {
      scroller.scrollTop = scroller.scrollHeight;
      jump.hidden = true;
    } else if (anchor && anchor.isConnected) {
      // Keep what the reader looks at in place when older messages come in above it.
      scroller.scrollTop += anchor.offsetTop - anchorTop;
      if (appended) jump.hidden = false;
    } else if (appended) {
      jump.hidden = false;
    }
  }

  function renderPending(room) {
    const pending = session.state.outbox.get(roomId) || [];
    const offline = session.state.status.state !== "connected";
    replace(
      pendingList,
      pending.map((item) =>
        h(
          "li",
          { class: "msg pending", dataset: { key: item.key } },
          h("p", { class: "msg-head" }, h("span", { class: "msg-name", text: session.hub.user.name }), h("span", { class: "hint", text: offline ? t("chat.waiting") : t("chat.sending") })),
          h("p", { class: "msg-text", dir: "auto", text: item.text }),
        ),
      ),
    );
    if (pending.length && room) scroller.scrollTop = scroller.scrollHeight;
  }

  const stop = watchAll(session.store, [`chat:${roomId}`, `room:${roomId}`, "status"], render);
  render();
  return {
    unmount: stop,
    focus: () => input.focus(),
  };
}

function chatState(room) {
  const now = Date.now() / 1000;
  if (room.chat.mutedUntil > now) return t("chat.mutedUntil", { time: clock(room.chat.mutedUntil) });
  if (room.chat.slowmode) return t("chat.slowmode", { count: room.chat.slowmode });
  return "";
}
