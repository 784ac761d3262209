/**
 * What stays on screen whatever the view: the connection status (the page's one `status`
 * region: "Connected", "Reconnecting…"), the account bar, short messages, and the
 * screen-reader announcer.
 */

import { button, h, keyed, replace, setText } from "./dom.js";
import { t } from "./strings.js";

/** A role's badge, or null for attendees. Roles always come from the hub, never from names. */
export function roleBadge(role) {
  return ["organizer", "moderator", "speaker"].includes(role) ? h("span", { class: `badge badge-${role}`, text: t(`role.${role}`) }) : null;
}

export function mountShell(store, { signOut, messages }) {
  const [status, account, toasts, announcer] = ["status", "account", "toasts", "announcer"].map((id) => document.getElementById(id));
  const shown = new Map();
  let session = null;
  store.watch("status", () => {
    status.dataset.state = store.state.status.state;
    setText(status, t(`status.${store.state.status.state}`));
  });
  const drawAccount = () => {
    if (!session) return account.replaceChildren();
    const { name, role } = session.hub.user;
    const unread = [...store.state.dms.conversations.values()].reduce((sum, c) => sum + session.unread(c), 0);
    replace(
      account,
      h("span", { class: "who" }, name, roleBadge(role)),
      button(unread ? t("account.messagesUnread", { count: unread }) : t("account.messages"), messages, { class: "link-button" }),
      button(t("account.signOut"), signOut, { class: "link-button" }),
    );
  };
  store.watch("dms", drawAccount);
  store.watch("toasts", () => keyed(toasts, shown, store.state.toasts, (toast) => toast.id, (toast) => ({ node: h("p", { class: `toast toast-${toast.kind}`, text: toast.text }) })));
  // A new text in the live region is read out.
  store.watch("announce", () => setText(announcer, store.state.announcements.at(-1) || ""));
  return {
    setSession(next) {
      session = next;
      drawAccount();
    },
  };
}
