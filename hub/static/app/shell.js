/**
 * What stays on screen whatever the view: the connection status (the page's one `status`
 * region), the account menu, short messages (toasts) and the screen-reader announcer.
 */

import { h, replace, setText } from "./dom.js";
import { t } from "./strings.js";

const STATUS_TEXT = {
  idle: "status.loading",
  connecting: "status.connecting",
  connected: "status.connected",
  reconnecting: "status.reconnecting",
  closed: "status.closed",
  signedOut: "status.signedOut",
};

/** A role's badge text, or null for attendees. The role always comes from the hub. */
export function roleBadge(role) {
  if (role === "organizer" || role === "moderator" || role === "speaker") {
    return h("span", { class: `badge badge-${role}`, text: t(`role.${role}`) });
  }
  return null;
}

export function mountShell(store, { signOut, messages }) {
  const status = document.getElementById("status");
  const account = document.getElementById("account");
  const toasts = document.getElementById("toasts");
  const announcer = document.getElementById("announcer");
  let session = null;

  store.watch("status", () => {
    const state = store.state.status.state;
    status.dataset.state = state;
    setText(status, t(STATUS_TEXT[state] || "status.loading"));
  });

  const renderAccount = () => {
    if (!session) {
      account.replaceChildren();
      return;
    }
    const user = session.hub.user;
    let unread = 0;
    for (const conversation of store.state.dms.conversations.values()) unread += session.unread(conversation);
    replace(
      account,
      h("span", { class: "who" }, h("span", { class: "who-name", text: user.name }), roleBadge(user.role)),
      h(
        "button",
        { type: "button", class: "link-button", onclick: messages },
        unread ? t("account.messagesUnread", { count: unread }) : t("account.messages"),
      ),
      h("button", { type: "button", class: "link-button", onclick: signOut, text: t("account.signOut") }),
    );
  };
  store.watch("dms", renderAccount);

  store.watch("toasts", () => {
    const shown = new Map(Array.from(toasts.children, (node) => [Number(node.dataset.id), node]));
    for (const toast of store.state.toasts) {
      if (shown.has(toast.id)) {
        shown.delete(toast.id);
        continue;
      }
      toasts.append(h("p", { class: `toast toast-${toast.kind}`, dataset: { id: String(toast.id) }, text: toast.text }));
    }
    for (const node of shown.values()) node.remove();
  });

  store.watch("announce", () => {
    // Replacing the text makes the live region speak it.
    const latest = store.state.announcements.at(-1);
    if (latest) setText(announcer, latest);
  });

  return {
    setSession(next) {
      session = next;
      renderAccount();
    },
  };
}
