/**
 * A room on screen: its header, announcements, breakouts, the stage or the video grid with the
 * media controls and hands, and the side panel's tabs (Chat, Q&A, Polls, People, Messages, and
 * Manage for moderators).
 */

import { mountBreakoutBanner, mountBreakoutForm, mountChildBanner } from "./breakouts.js";
import { mountChat } from "./chat.js";
import { mountMessages } from "./dm.js";
import { h, setText } from "./dom.js";
import { mountManage } from "./manage.js";
import { Mesh } from "./media.js";
import { mountNotices } from "./notices.js";
import { mountPeople } from "./people.js";
import { mountPolls } from "./polls.js";
import { mountQa } from "./qa.js";
import { moderates } from "./roomstate.js";
import { mountHands, mountMediaControls, mountStage, mountVideoGrid } from "./stage.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

export function mountRoom(main, session, roomId) {
  const stops = [];
  const heading = h("h1", { tabindex: "-1" });
  const kind = h("span", { class: "badge" });
  const members = h("span", { class: "hint" });
  const back = h("button", { type: "button", class: "link-button", onclick: () => session.navigate(null) }, t("room.backToLobby"));
  const body = h("div", { class: "room-body" });
  const waiting = h("p", { class: "hint", text: t("room.joining") });
  main.replaceChildren(
    h("section", { class: "room" }, h("header", { class: "room-head" }, back, heading, kind, members), waiting, body),
  );

  let built = false;
  const renderHead = () => {
    const room = session.room(roomId);
    setText(heading, room ? room.title : roomId);
    setText(kind, room ? t(`kind.${room.kind}`) : "");
    setText(members, room ? t("room.members", { count: room.members }) : "");
    waiting.hidden = Boolean(room);
    if (room && !built) {
      built = true;
      build(room);
    }
  };
  stops.push(watchAll(session.store, [`room:${roomId}`, `members:${roomId}`], renderHead));

  function build(room) {
    document.title = `${room.title} · livehub`;
    const stageArea = h("div", { class: "room-main" });
    const side = h("aside", { class: "room-side", "aria-label": t("room.side") });
    body.append(stageArea, side);
    const noticeSlot = h("div");
    stageArea.append(noticeSlot);
    stops.push(mountNotices(noticeSlot, session, roomId));
    if (room.kind === "breakout") stops.push(mountChildBanner(stageArea, session, roomId));
    else stops.push(mountBreakoutBanner(stageArea, session, roomId));

    const mesh = new Mesh(session, session.localMedia, roomId);
    stops.push(() => mesh.close());
    stops.push(session.store.watch(`stage:${roomId}`, () => mesh.sync()));
    stops.push(
      // A new connection is a new session: the links of the old one are gone on both sides.
      session.store.watch(`rejoined:${roomId}`, () => mesh.reset()),
    );
    if (room.kind === "panel") stops.push(mountStage(stageArea, session, roomId, mesh));
    else stops.push(mountVideoGrid(stageArea, session, roomId, mesh));
    stops.push(mountMediaControls(stageArea, session, roomId));
    stops.push(mountHands(stageArea, session, roomId));
    mesh.sync();
    if (session.localMedia.camera || session.localMedia.microphone) mesh.publish();

    const tabs = new Tabs(side);
    const chat = mountChat(tabs.add("chat", t("tab.chat")), session, roomId);
    stops.push(chat.unmount);
    stops.push(mountQa(tabs.add("qa", t("tab.qa")), session, roomId).unmount);
    stops.push(mountPolls(tabs.add("polls", t("tab.polls")), session, roomId).unmount);
    const messages = mountMessages(tabs.add("messages", t("tab.messages")), session);
    stops.push(messages.unmount);
    const people = mountPeople(tabs.add("people", t("tab.people")), session, roomId, {
      openMessages: (user, name) => {
        tabs.select("messages");
        session.openConversation(user, name).then(() => messages.focus());
      },
    });
    stops.push(people.unmount);
    let manageBuilt = false;
    const renderManage = () => {
      const current = session.room(roomId);
      const manage = Boolean(current && moderates(current));
      tabs.show("manage", manage);
      if (manage && !manageBuilt) {
        manageBuilt = true;
        const panel = tabs.panel("manage");
        stops.push(mountManage(panel, session, roomId));
        if (current.kind === "workshop" || current.kind === "panel") stops.push(mountBreakoutForm(panel, session, roomId));
      }
    };
    tabs.add("manage", t("tab.manage"));
    stops.push(session.store.watch(`room:${roomId}`, renderManage));
    renderManage();

    // Unseen activity in tabs that are not on screen.
    const seen = { chat: 0, qa: 0, polls: 0 };
    const counts = () => {
      const current = session.room(roomId);
      if (!current) return { chat: 0, qa: 0, polls: 0 };
      return {
        chat: current.chat.messages.length ? current.chat.messages.at(-1).seq : 0,
        qa: current.questions.size,
        polls: current.polls.size + current.closedPolls.length,
      };
    };
    Object.assign(seen, counts());
    const renderBadges = () => {
      const now = counts();
      for (const name of Object.keys(seen)) {
        if (tabs.selected === name) seen[name] = now[name];
        tabs.mark(name, now[name] !== seen[name]);
      }
    };
    tabs.onSelect = renderBadges;
    stops.push(watchAll(session.store, [`chat:${roomId}`, `qa:${roomId}`, `polls:${roomId}`], renderBadges));
    stops.push(session.store.watch("dms-focus", () => tabs.select("messages")));
  }

  renderHead();
  return {
    unmount() {
      for (const stop of stops) stop();
      document.title = "livehub";
    },
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
    this.list.addEventListener("keydown", (event) => this._key(event));
  }

  /** Add a tab; returns its panel. The first one added is selected. */
  add(name, label) {
    const tab = h("button", {
      type: "button",
      role: "tab",
      id: `tab-${name}`,
      "aria-controls": `panel-${name}`,
      "aria-selected": "false",
      tabindex: "-1",
      onclick: () => this.select(name),
    });
    const text = h("span", { text: label });
    const dot = h("span", { class: "dot", hidden: true, text: t("tab.new") });
    tab.append(text, dot);
    const panel = h("div", { role: "tabpanel", id: `panel-${name}`, "aria-labelledby": `tab-${name}`, class: "tab-panel", hidden: true });
    this.list.append(tab);
    this.panels.append(panel);
    this.tabs.set(name, { tab, panel, dot });
    if (!this.selected) this.select(name);
    return panel;
  }

  panel(name) {
    return this.tabs.get(name).panel;
  }

  show(name, visible) {
    const entry = this.tabs.get(name);
    if (!entry) return;
    entry.tab.hidden = !visible;
    if (!visible && this.selected === name) this.select(this.tabs.keys().next().value);
  }

  mark(name, unseen) {
    const entry = this.tabs.get(name);
    if (entry) entry.dot.hidden = !unseen;
  }

  select(name, focus = false) {
    const entry = this.tabs.get(name);
    if (!entry || entry.tab.hidden) return;
    for (const [other, { tab, panel }] of this.tabs) {
      const on = other === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      panel.hidden = !on;
    }
    this.selected = name;
    if (focus) entry.tab.focus();
    this.onSelect?.();
  }

  _key(event) {
    const names = Array.from(this.tabs.keys()).filter((name) => !this.tabs.get(name).tab.hidden);
    const index = names.indexOf(this.selected);
    let next = null;
    if (event.key === "ArrowRight") next = names[(index + 1) % names.length];
    else if (event.key === "ArrowLeft") next = names[(index - 1 + names.length) % names.length];
    else if (event.key === "Home") next = names[0];
    else if (event.key === "End") next = names[names.length - 1];
    if (next) {
      event.preventDefault();
      this.select(next, true);
    }
  }
}
