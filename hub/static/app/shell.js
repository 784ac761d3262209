/**
 * What stays on screen whatever the view: the connection status (the page's one `status`
 * region: "Connected", "Reconnecting…"), the language switch, the account bar, short messages,
 * the screen-reader announcer, and the page's own texts (the skip link, the account bar's name).
 * All of it is drawn again when the language changes (the store's "language" topic); the views
 * name the page (its title) themselves.
 */

import { button, h, keyed, replace, setAttr, setText } from "./dom.js";
import { currentLanguage, languageName, t } from "./strings.js";

/** A role's badge, or null for attendees. Roles always come from the hub, never from names. */
export function roleBadge(role) {
  return ["organizer", "moderator", "speaker"].includes(role) ? h("span", { class: `badge badge-${role}`, text: t(`role.${role}`) }) : null;
}

/** The shell, with `signOut()`, `messages()` (bring the direct messages into view) and
 * `pickLanguage(code)` (the person chose another language) for its controls. */
export function mountShell(store, { signOut, messages, pickLanguage }) {
  const [status, account, toasts, announcer] = ["status", "account", "toasts", "announcer"].map((id) => document.getElementById(id));
  const skip = document.querySelector(".skip-link");
  const shown = new Map();
  let session = null;
  const languages = h("select", { id: "language", onchange: () => pickLanguage(languages.value) });
  const languageLabel = h("label", { class: "visually-hidden", htmlFor: "language" });
  const switcher = h("div", { class: "language", hidden: true }, languageLabel, languages);
  account.before(switcher);

  const drawStatus = () => {
    status.dataset.state = store.state.status.state;
    setText(status, t(`status.${store.state.status.state}`));
  };
  const drawAccount = () => {
    if (!session) return account.replaceChildren();
    const { name, role } = session.hub.user;
    const unread = [...store.state.dms.conversations.values()].reduce((sum, c) => sum + session.unread(c), 0);
    replace(
      account,
      h("span", { class: "who" }, h("span", { dir: "auto", text: name }), roleBadge(role)),
      button(unread ? t("account.messagesUnread", { count: unread }) : t("account.messages"), messages, { class: "link-button" }),
      button(t("account.signOut"), signOut, { class: "link-button" }),
    );
  };
  const drawPage = () => {
    if (skip) setText(skip, t("page.skip"));
    setAttr(account, "aria-label", t("account.label"));
    setText(languageLabel, t("language.label"));
    languages.value = currentLanguage();
  };
  store.watch("status", drawStatus);
  store.watch("dms", drawAccount);
  store.watch("language", () => (drawPage(), drawStatus(), drawAccount()));
  store.watch("toasts", () => keyed(toasts, shown, store.state.toasts, (toast) => toast.id, (toast) => ({ node: h("p", { class: `toast toast-${toast.kind}`, dir: toast.written ? "auto" : null, text: toast.text }) })));
  // A new text in the live region is read out.
  store.watch("announce", () => setText(announcer, store.state.announcements.at(-1) || ""));
  return {
    setSession(next) {
      session = next;
      drawAccount();
    },
    /** Offer `codes` (the hub's catalogues), each named in its own language. */
    setLanguages(codes) {
      replace(languages, codes.map((code) => h("option", { value: code, lang: code, text: languageName(code) })));
      languages.value = currentLanguage();
      switcher.hidden = codes.length < 2;
    },
  };
}
