/**
 * A room's chat: the log (a window of at most a few hundred message nodes over the messages kept
 * in memory; older pages load on scroll-up), the messages waiting to be posted, and the form
 * ("Message", "Send"). It renders at most once per animation frame.
 */

import { button, h, keyed, linkedText, replace, setText } from "./dom.js";
import { moderates, rank, roleOf } from "./roomstate.js";
import { roleBadge } from "./shell.js";
import { clock, t } from "./strings.js";
import { watchAll } from "./store.js";

const WINDOW = 300; // message nodes while following the newest
const WINDOW_MAX = 450; // message nodes at most while reading back
const STEP = 100; // how far the window moves at one of its ends
const NEAR = 60; // px from an end of the log that count as being there

/** The chat of `roomId` in `container`, its box holding `draft` (what was typed in an earlier
 * drawing); returns its remover, with `focus()` and `draft()` (what is typed now). */
export function mountChat(container, session, roomId, draft = "") {
  const log = h("ol", { class: "chat-log", role: "log", "aria-label": t("chat.log") });
  const start = h("p", { class: "hint" });
  const pending = h("ol", { class: "chat-pending", "aria-label": t("chat.pending") });
  const scroller = h("div", { class: "chat-scroll", role: "region", tabindex: "0", "aria-label": t("chat.scroll") }, start, log, pending);
  const jump = button(t("chat.newMessages"), () => follow(), { class: "jump", hidden: true });
  const state = h("p", { class: "hint", "aria-live": "polite" });
  const input = h("textarea", { rows: "2", maxlength: "2000", "aria-label": t("chat.message"), placeholder: t("chat.placeholder"), value: draft, dir: "auto" });
  const form = h("form", { class: "chat-form" }, input, h("button", { type: "submit", class: "primary", text: t("chat.send") }));
  container.append(h("div", { class: "chat" }, state, scroller, jump, form));

  const nodes = new Map(); // message id -> {node}
  let from = null; // id of the window's first message; null: following the newest

  const room = () => session.room(roomId);
  const follow = () => {
    from = null;
    render();
  };
  const submit = (event) => {
    event.preventDefault();
    const text = input.value.trim();
    const muted = room()?.chat.mutedUntil || 0;
    if (!text) return;
    if (muted * 1000 > Date.now()) return session.toast(t("chat.mutedUntil", { time: clock(muted) }), "error");
    session.sendChat(roomId, text);
    input.value = "";
    follow();
  };
  form.addEventListener("submit", submit);
  input.addEventListener("keydown", (event) => event.key === "Enter" && !event.shiftKey && !event.isComposing && submit(event));

  scroller.addEventListener("scroll", async () => {
    const messages = room()?.chat.messages;
    if (!messages) return;
    const index = from ? messages.findIndex((m) => m.id === from) : Math.max(0, messages.length - WINDOW);
    const bottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR;
    // Scrolled away from the newest: the window stays put while new messages come in.
    if (!from && !bottom && messages.length) from = messages[index].id;
    if (scroller.scrollTop < NEAR) {
      if (index > 0) {
        from = messages[Math.max(0, index - STEP)].id; // reading back within memory
        render();
      } else if (await session.loadChat(roomId, true)) {
        from = room()?.chat.messages[0]?.id ?? null;
        render();
      }
    } else if (from && bottom) {
      if (index + WINDOW_MAX >= messages.length) follow();
      else {
        from = messages[index + STEP].id;
        render();
      }
    }
  });

  function message(msg) {
    const mine = msg.user === room().me;
    const name = msg.name;
    const badge = h("span");
    const actions = h("div", { class: "msg-actions" });
    let drawn = null;
    const node = h(
      "li",
      { class: mine ? "msg mine" : "msg" },
      h("p", { class: "msg-head" }, h("span", { class: "msg-name", dir: "auto", text: name }), badge, h("time", { datetime: new Date(msg.ts * 1000).toISOString(), text: clock(msg.ts) })),
      h("p", { class: "msg-text", dir: "auto" }, linkedText(msg.text)),
      actions,
    );
    return {
      node,
      // Badges and actions follow role changes in place: the log is not drawn again.
      update() {
        const current = room();
        if (drawn === current.rolesVersion) return;
        drawn = current.rolesVersion;
        const role = roleOf(current, msg.user);
        const moderator = moderates(current);
        replace(badge, roleBadge(role));
        replace(
          actions,
          (mine || moderator) && button(t("chat.delete"), () => session.act("chat.delete", { room: roomId, msg: msg.id }), { class: "small", "aria-label": t("chat.deleteFrom", { name }) }),
          !mine && moderator && rank(role) < rank("moderator") && button(t("chat.mute"), () => session.act("chat.mute", { room: roomId, user: msg.user, seconds: 300 }, t("chat.muted", { name })), { class: "small", "aria-label": t("chat.muteName", { name }) }),
        );
        actions.hidden = !actions.firstChild;
      },
    };
  }

  function render() {
    const current = room();
    if (!current) return;
    const chat = current.chat;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR;
    const anchor = log.firstElementChild;
    const anchorTop = anchor?.offsetTop ?? 0;
    const lastShown = log.lastElementChild;
    let index = from ? chat.messages.findIndex((m) => m.id === from) : -1;
    if (from && index < 0) from = null; // what was being read left memory: follow again
    if (!from) index = Math.max(0, chat.messages.length - WINDOW);
    keyed(log, nodes, chat.messages.slice(index, index + (from ? WINDOW_MAX : WINDOW)), (m) => m.id, message);
    const offline = session.state.status.state !== "connected";
    const waiting = session.state.outbox.get(roomId) || [];
    replace(
      pending,
      waiting.map((item) =>
        h(
          "li",
          { class: "msg pending" },
          h("p", { class: "msg-head" }, h("span", { class: "msg-name", dir: "auto", text: session.hub.user.name }), h("span", { class: "hint", text: t(offline ? "chat.waiting" : "chat.sending") })),
          h("p", { class: "msg-text", dir: "auto", text: item.text }),
        ),
      ),
    );
    const atStart = chat.reachedStart && (!chat.messages.length || index === 0);
    setText(start, t(chat.loading ? "chat.loading" : atStart ? "chat.beginning" : chat.memoryFull ? "chat.memoryFull" : "", {}, ""));
    const muted = chat.mutedUntil > Date.now() / 1000;
    setText(state, muted ? t("chat.mutedUntil", { time: clock(chat.mutedUntil) }) : chat.slowmode ? t("chat.slowmode", { count: chat.slowmode }) : "");
    const grew = log.lastElementChild !== lastShown;
    if (!from && (atBottom || !anchor || waiting.length)) {
      scroller.scrollTop = scroller.scrollHeight;
      jump.hidden = true;
    } else {
      // Keep what the reader looks at in place when older messages come in above it.
      if (anchor?.isConnected) scroller.scrollTop += anchor.offsetTop - anchorTop;
      if (grew) jump.hidden = false;
    }
  }

  const stop = watchAll(session.store, [`chat:${roomId}`, `room:${roomId}`, "status"], render);
  return Object.assign(stop, { focus: () => input.focus(), draft: () => input.value });
}
