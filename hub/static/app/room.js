/**
 * A room on screen: its header, announcements, breakouts, the stage or the video grid with the
 * media controls and hands, and the side panel's tabs (Chat, Q&A, Polls, Messages, People, and
 * Manage for moderators).
 */

import { mountBreakoutBanner, mountChildBanner } from "./breakouts.js";
import { mountChat } from "./chat.js";
import { mountMessages } from "./dm.js";
import { button, h, setText } from "./dom.js";
import { Mesh } from "./media.js";
import { StageFeed } from "./sfu.js";
import { mountNotices } from "./notices.js";
import { mountPeople } from "./people.js";
import { mountPolls } from "./polls.js";
import { mountQa } from "./qa.js";
import { moderates } from "./roomstate.js";
import { mountHands, mountMediaControls, mountTiles } from "./stage.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

/**
 * Show room `roomId` in `main` (it may still be joining), taking over what an earlier drawing of
 * it `kept` (the same room drawn again in another language: its media links, the tab on
 * screen, the chat's draft). Returns the function that removes it; with `{keep: true}` that
 * leaves the room's media running and returns what the next drawing takes over.
 */
export function mountRoom(main, session, roomId, kept = null) {
  const stops = [];
  // One room visit's media links: made once, kept through a drawing again, closed on leaving.
  const previous = kept?.roomId === roomId ? kept : null;
  let media = previous?.media ?? null;
  let tabs = null;
  let chat = null;
  const heading = h("h1", { tabindex: "-1", dir: "auto" });
  const kind = h("span", { class: "badge" });
  const members = h("span", { class: "hint" });
  const waiting = h("p", { class: "hint", text: t("room.joining") });
  const body = h("div", { class: "room-body" });
  const back = button(t("room.backToLobby"), () => session.navigate(null), { class: "link-button" });
  main.replaceChildren(h("section", { class: "room" }, h("header", { class: "room-head" }, back, heading, kind, members), waiting, body));
  stops.push(
    watchAll(session.store, [`room:${roomId}`, `members:${roomId}`], () => {
      const room = session.room(roomId);
      setText(heading, room?.title ?? roomId);
      setText(kind, room ? t(`kind.${room.kind}`) : "");
      setText(members, room ? t("room.members", { count: room.members }) : "");
      waiting.hidden = Boolean(room);
      if (room && !body.firstChild) build(room);
    }),
  );

  function build(room) {
    document.title = `${room.title} · ${t("page.title")}`;
    const stage = h("div", { class: "room-main" });
    const side = h("aside", { class: "room-side", "aria-label": t("room.side") });
    body.append(stage, side);
    stops.push(mountNotices(stage, session, roomId));
    stops.push((room.kind === "breakout" ? mountChildBanner : mountBreakoutBanner)(stage, session, roomId));
    media ||= { mesh: new Mesh(session, session.localMedia, roomId), feed: room.kind === "panel" ? new StageFeed(session, session.localMedia, roomId) : null };
    const { mesh, feed } = media;
    stops.push(
      session.store.watch(`stage:${roomId}`, () => mesh.sync()),
      // A new connection is a new session: the links of the old one are gone on both sides.
      session.store.watch(`rejoined:${roomId}`, () => mesh.rejoined()),
      mountTiles(stage, session, roomId, mesh, feed),
      mountMediaControls(stage, session, roomId),
      mountHands(stage, session, roomId),
    );
    if (feed) {
      stops.push(
        session.store.watch(`room:${roomId}`, () => feed.sync()),
        session.store.watch(`rejoined:${roomId}`, () => feed.rejoined()),
      );
      feed.sync();
    }
    mesh.sync();
    if (session.localMedia.camera || session.localMedia.microphone) mesh.publish();

    tabs = new Tabs(side);
    chat = mountChat(tabs.add("chat", t("tab.chat")), session, roomId, previous?.draft);
    stops.push(chat);
    stops.push(mountQa(tabs.add("qa", t("tab.qa")), session, roomId));
    stops.push(mountPolls(tabs.add("polls", t("tab.polls")), session, roomId));
    const messages = mountMessages(tabs.add("messages", t("tab.messages")), session);
    const openMessages = (user, name) => {
      tabs.select("messages");
      session.openConversation(user, name).then(messages.focus);
    };
    stops.push(messages, mountPeople(tabs.add("people", t("tab.people")), session, roomId, openMessages));
    const manage = tabs.add("manage", t("tab.manage"));
    stops.push(
      watchAll(session.store, [`room:${roomId}`], () => {
        const allowed = moderates(session.room(roomId) || {});
        tabs.show("manage", allowed);
        if (allowed && !manage.firstChild) {
          manage.append(h("p", { class: "hint", text: t("room.joining") })); // until the tools load
          import("./staff.js").then((staff) => {
            manage.replaceChildren();
            stops.push(staff.mountManage(manage, session, roomId));
            if (room.kind !== "breakout") stops.push(staff.mountBreakoutForm(manage, session, roomId));
          });
        }
      }),
    );
    if (previous?.tab) tabs.select(previous.tab);
    // A dot on the tabs that have news the person has not seen.
    const counts = () => {
      const current = session.room(roomId);
      return { chat: current?.chat.messages.at(-1)?.seq ?? 0, qa: current?.questions.size ?? 0, polls: (current?.polls.size ?? 0) + (current?.closedPolls.length ?? 0) };
    };
    const seen = counts();
    tabs.onSelect = () => {
      const now = counts();
      for (const name of Object.keys(seen)) {
        if (tabs.selected === name) seen[name] = now[name];
        tabs.mark(name, now[name] !== seen[name]);
      }
    };
    stops.push(watchAll(session.store, [`chat:${roomId}`, `qa:${roomId}`, `polls:${roomId}`], tabs.onSelect));
    stops.push(session.store.watch("dms-focus", () => tabs.select("messages")));
  }

  return ({ keep = false } = {}) => {
    const draft = chat?.draft();
    for (const stop of stops) stop();
    if (keep) return { roomId, media, tab: tabs?.selected, draft };
    media?.mesh.close();
    media?.feed?.close();
    document.title = t("page.title");
  };
}

/** Tabs as the WAI-ARIA pattern has them: arrow keys move between tabs, one panel shown. */
class Tabs {
  constructor(container) {
    this.list = h("div", { class: "tabs", role: "tablist", "aria-label": t("room.side") });
    this.panels = h("div", { class: "tab-panels" });
    container.append(this.list, this.panels);
    this.tabs = new Map();
    this.selected = null;
    this.onSelect = null;
    this.list.addEventListener("keydown", (event) => {
      const names = [...this.tabs.keys()].filter((name) => !this.tabs.get(name).tab.hidden);
      const index = names.indexOf(this.selected);
      const next = { ArrowRight: names[(index + 1) % names.length], ArrowLeft: names.at(index - 1), Home: names[0], End: names.at(-1) }[event.key];
      if (next) {
        event.preventDefault();
        this.select(next, true);
      }
    });
  }

  /** Add a tab; returns its panel. The first one added is selected. */
  add(name, label) {
    const dot = h("span", { class: "dot", hidden: true, text: t("tab.new") });
    const tab = h("button", { type: "button", role: "tab", id: `tab-${name}`, "aria-controls": `panel-${name}`, tabindex: "-1", onclick: () => this.select(name) }, label, dot);
    const panel = h("div", { role: "tabpanel", id: `panel-${name}`, "aria-labelledby": `tab-${name}`, class: "tab-panel", hidden: true });
    this.list.append(tab);
    this.panels.append(panel);
    this.tabs.set(name, { tab, panel, dot });
    if (!this.selected) this.select(name);
    return panel;
  }

  show(name, visible) {
    this.tabs.get(name).tab.hidden = !visible;
    if (!visible && this.selected === name) this.select(this.tabs.keys().next().value);
  }

  mark(name, unseen) {
    this.tabs.get(name).dot.hidden = !unseen;
  }

  select(name, focus = false) {
    const entry = this.tabs.get(name);
    if (!entry || entry.tab.hidden) return;
    for (const [other, { tab, panel }] of this.tabs) {
      tab.setAttribute("aria-selected", String(other === name));
      tab.tabIndex = other === name ? 0 : -1;
      panel.hidden = other !== name;
    }
    this.selected = name;
    if (focus) entry.tab.focus();
    this.onSelect?.();
  }
}
