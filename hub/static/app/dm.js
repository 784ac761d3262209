/**
 * Direct messages: the person's conversations with their unread counts, and the open one with
 * its history and a form ("Direct message", "Send message").
 */

import { h, linkedText, replace } from "./dom.js";
import { clock, t } from "./strings.js";
import { watchAll } from "./store.js";

export function mountMessages(container, session) {
  const list = h("ul", { class: "conversations", "aria-label": t("dm.conversations") });
  const empty = h("p", { class: "empty", text: t("dm.none") });
  const thread = h("section", { class: "thread", hidden: true });
  container.append(empty, list, thread);

  const input = h("textarea", { rows: "2", maxlength: "2000", "aria-label": t("dm.message") });
  const send = h("button", { type: "submit", class: "primary", text: t("dm.send") });
  const messages = h("ol", { class: "dm-log", role: "log", "aria-label": t("dm.log") });
  const title = h("h3");
  const form = h(
    "form",
    {
      class: "chat-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const to = session.state.dms.open;
        const text = input.value.trim();
        if (!to || !text) return;
        send.disabled = true;
        if (await session.sendDm(to, text)) input.value = "";
        send.disabled = false;
      },
    },
    input,
    send,
  );
  thread.append(title, messages, form);

  const render = () => {
    const dms = session.state.dms;
    const conversations = Array.from(dms.conversations.values()).sort((a, b) => b.ts - a.ts);
    empty.hidden = conversations.length > 0;
    replace(
      list,
      conversations.map((conversation) => {
        const unread = session.unread(conversation);
        const name = conversation.name || conversation.with;
        return h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "row-button",
              "aria-current": dms.open === conversation.with ? "true" : null,
              onclick: () => session.openConversation(conversation.with, conversation.name),
            },
            h("span", { class: "row-name", text: name }),
            unread ? h("span", { class: "count", text: t("dm.unread", { count: unread }) }) : null,
          ),
        );
      }),
    );
    const open = dms.open ? dms.conversations.get(dms.open) : null;
    thread.hidden = !open;
    if (!open) return;
    title.textContent = t("dm.with", { name: open.name || open.with });
    const me = session.hub.user.id;
    replace(
      messages,
      open.messages.slice(-200).map((message) =>
        h(
          "li",
          { class: message.from === me ? "msg mine" : "msg" },
          h("p", { class: "msg-head" }, h("span", { class: "msg-name", text: message.from === me ? t("dm.me") : message.name }), h("time", { text: clock(message.ts) })),
          h("p", { class: "msg-text", dir: "auto" }, linkedText(message.text)),
        ),
      ),
    );
    messages.scrollTop = messages.scrollHeight;
  };
  const stop = watchAll(session.store, ["dms"], render);
  render();
  return { unmount: stop, focus: () => input.focus() };
}
