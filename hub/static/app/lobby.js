/**
 * The lobby: the event's sessions (kind, title, live member count, who is on stage),
 * announcements, the conference-wide polls and the award election, and direct messages.
 */

import { mountMessages } from "./dm.js";
import { h, replace } from "./dom.js";
import { mountManage } from "./manage.js";
import { mountNotices } from "./notices.js";
import { mountPolls } from "./polls.js";
import { moderates } from "./roomstate.js";
import { t } from "./strings.js";

const KIND_ORDER = { panel: 0, workshop: 1, breakout: 2, lobby: 3 };

export function mountLobby(main, session) {
  session.localMedia.stopAll(); // the lobby has no media: the camera goes off
  const lobbyId = session.lobby;
  const heading = h("h1", { tabindex: "-1", text: t("lobby.title") });
  const welcome = h("p", { class: "hint", text: t("lobby.welcome", { name: session.hub.user.name }) });
  const sessions = h("ul", { class: "room-cards", "aria-label": t("lobby.sessions") });
  const noticesSlot = h("div");
  const pollsSlot = h("div");
  const messagesSlot = h("div");
  const manageSlot = h("div");
  const messagesSection = h("section", { class: "panel", "aria-labelledby": "lobby-messages" }, h("h2", { id: "lobby-messages", text: t("dm.title") }), messagesSlot);
  main.replaceChildren(
    h(
      "div",
      { class: "lobby" },
      h("div", { class: "lobby-head" }, heading, welcome, noticesSlot),
      h(
        "div",
        { class: "lobby-grid" },
        h("section", { class: "panel", "aria-labelledby": "lobby-sessions" }, h("h2", { id: "lobby-sessions", text: t("lobby.sessions") }), sessions),
        h("section", { class: "panel", "aria-labelledby": "lobby-polls" }, h("h2", { id: "lobby-polls", text: t("lobby.polls") }), pollsSlot),
        messagesSection,
        h("div", { class: "lobby-manage" }, manageSlot),
      ),
    ),
  );

  const stops = [];
  if (lobbyId) {
    stops.push(mountNotices(noticesSlot, session, lobbyId, { limit: 5 }));
    stops.push(mountPolls(pollsSlot, session, lobbyId).unmount);
  }
  stops.push(mountMessages(messagesSlot, session).unmount);
  let managing = false;
  const renderManage = () => {
    const room = lobbyId ? session.room(lobbyId) : null;
    if (room && moderates(room) && !managing) {
      managing = true;
      const box = h("section", { class: "panel", "aria-labelledby": "lobby-manage" }, h("h2", { id: "lobby-manage", text: t("manage.title") }));
      manageSlot.append(box);
      stops.push(mountManage(box, session, lobbyId));
    }
  };

  const renderSessions = () => {
    const rooms = session.state.directory
      .filter((room) => room.kind === "panel" || room.kind === "workshop")
      .sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || a.title.localeCompare(b.title));
    if (!rooms.length) {
      replace(sessions, h("li", { class: "empty", text: t("lobby.noSessions") }));
      return;
    }
    const children = new Map();
    for (const room of session.state.directory) {
      if (room.kind === "breakout" && room.parent) children.set(room.parent, (children.get(room.parent) || 0) + (room.members || 0));
    }
    replace(
      sessions,
      rooms.map((room) => {
        const stage = (room.stage || []).map((person) => person.name);
        const inBreakouts = children.get(room.id) || 0;
        return h(
          "li",
          { class: `room-card kind-${room.kind}` },
          h("h3", {}, h("a", { href: `#/room/${encodeURIComponent(room.id)}`, text: room.title })),
          h("p", { class: "room-meta" }, h("span", { class: "badge", text: t(`kind.${room.kind}`) }), " ", t("lobby.members", { count: room.members || 0 })),
          stage.length ? h("p", { class: "hint", text: t("lobby.onStage", { names: stage.join(", ") }) }) : null,
          inBreakouts ? h("p", { class: "hint", text: t("lobby.inBreakouts", { count: inBreakouts }) }) : null,
        );
      }),
    );
  };
  stops.push(session.store.watch("directory", renderSessions));
  if (lobbyId) stops.push(session.store.watch(`room:${lobbyId}`, renderManage));
  renderSessions();
  renderManage();
  const stopFocus = session.store.watch("dms-focus", () => {
    messagesSection.scrollIntoView({ block: "start" });
  });
  stops.push(stopFocus);
  return {
    unmount() {
      for (const stop of stops) stop();
    },
  };
}
