/**
 * Direct messages: the person's conversations with their unread counts, and the open one with its
 * history and a form ("Direct message", "Send message").
 */

import { h, keyed, linkedText, setAttr, setText } from "./dom.js";
import { clock, t } from "./strings.js";
import { watchAll } from "./store.js";

export function mountMessages(container, session) {
  const list = h("ul", { class: "conversations", "aria-label": t("dm.conversations") });
  const empty = h("p", { class: "empty", text: t("dm.none") });
  const input = h("textarea", { rows: "2", maxlength: "2000", "aria-label": t("dm.message"), dir: "auto" });
  const send = h("button", { type: "submit", class: "primary", text: t("dm.send") });
  const log = h("ol", { class: "dm-log", role: "log", "aria-label": t("dm.log") });
  const title = h("h3");
  const onsubmit = async (event) => {
    event.preventDefault();
    const to = session.state.dms.open;
    const text = input.value.trim();
    if (!to || !text) return;
    send.disabled = true;
    if (await session.sendDm(to, text)) input.value = "";
    send.disabled = false;
  };
  const thread = h("section", { hidden: true }, title, log, h("form", { class: "chat-form", onsubmit }, input, send));
  container.append(empty, list, thread);
  const me = session.hub.user.id;
  const rows = new Map();
  const messages = new Map();
  let shown = null;
  const stop = watchAll(session.store, ["dms"], () => {
    const { conversations, open } = session.state.dms;
    const sorted = [...conversations.values()].sort((a, b) => b.ts - a.ts);
    empty.hidden = sorted.length > 0;
    // Rows are kept (and so is the focus on one) while their text changes.
    keyed(list, rows, sorted, (c) => c.with, (c) => {
      const label = h("span", { class: "row-name", dir: "auto" });
      const unread = h("span", { class: "count" });
      const row = h("button", { type: "button", class: "row-button", onclick: () => session.openConversation(c.with, c.name) }, label, unread);
      return {
        node: h("li", {}, row),
        update(current) {
          const count = session.unread(current);
          setText(label, current.name || current.with);
          setText(unread, count ? t("dm.unread", { count }) : "");
          unread.hidden = !count;
          setAttr(row, "aria-current", session.state.dms.open === current.with && "true");
        },
      };
    });
    const current = conversations.get(open);
    thread.hidden = !current;
    if (!current) return;
    if (shown !== open) {
      shown = open;
      messages.clear();
      log.replaceChildren();
    }
    title.textContent = t("dm.with", { name: current.name || current.with });
    const before = log.childElementCount;
    keyed(log, messages, current.messages.slice(-200), (m) => m.id, (m) => ({
      node: h(
        "li",
        { class: m.from === me ? "msg mine" : "msg" },
        h("p", { class: "msg-head" }, h("span", { class: "msg-name", dir: "auto", text: m.from === me ? t("dm.me") : m.name }), h("time", { text: clock(m.ts) })),
        h("p", { class: "msg-text", dir: "auto" }, linkedText(m.text)),
      ),
    }));
    if (log.childElementCount !== before) log.scrollTop = log.scrollHeight;
  });
  return Object.assign(stop, { focus: () => input.focus() });
}
