/**
 * The lobby: the event's sessions (kind, title, live member count, who is on stage),
 * announcements, the awards (the election's candidates, ballot and result; the partnerships of
 * the year), the conference-wide polls, direct messages, and for moderators the lobby's
 * announcements.
 */

import { mountAwards } from "./awards.js";
import { mountDirectory } from "./directory.js";
import { mountMessages } from "./dm.js";
import { h, replace } from "./dom.js";
import { mountMeet } from "./meet.js";
import { mountNotices } from "./notices.js";
import { mountPolls } from "./polls.js";
import { moderates } from "./roomstate.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";
import { mountLounge } from "./tables.js";

/** A titled section of the lobby: `[section, its body]`. */
function section(id, title, body = h("div")) {
  return [h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id, text: title }), body), body];
}

export function mountLobby(main, session) {
  session.localMedia.stopAll(); // the lobby has no media: the camera goes off
  document.title = t("page.title");
  const lobby = session.lobby;
  const notices = h("div");
  const [sessionsSection, sessions] = section("lobby-sessions", t("lobby.sessions"), h("ul", { class: "room-cards" }));
  const [awardsSection, awards] = section("lobby-awards", t("awards.title"));
  const [pollsSection, polls] = section("lobby-polls", t("lobby.polls"));
  const [messagesSection, messages] = section("lobby-messages", t("dm.title"));
  const [manageSection, manage] = section("lobby-manage", t("manage.title"));
  const [peopleSection, people] = section("lobby-people", t("directory.title"));
  const [loungeSection, stopLounge] = mountLounge(session);
  manageSection.hidden = true;
  awardsSection.hidden = true;
  main.replaceChildren(
    h("div", { class: "lobby-head" }, h("h1", { tabindex: "-1", text: t("lobby.title") }), h("p", { class: "hint", text: t("lobby.welcome", { name: session.hub.user.name }) }), notices),
    // Two columns on a wide screen (the sessions, the awards and the people; the lounge, votes,
    // messages and tools beside), one on a phone, where the stylesheet orders the sections by
    // what matters.
    h("div", { class: "lobby-grid" }, h("div", { class: "lobby-column" }, sessionsSection, awardsSection, peopleSection), h("div", { class: "lobby-column" }, pollsSection, loungeSection, messagesSection, manageSection)),
  );
  const stops = [mountMessages(messages, session), mountDirectory(people, session), stopLounge, mountMeet(main.querySelector(".lobby-head"), session)];
  if (lobby) stops.push(mountNotices(notices, session, lobby, 5), mountAwards(awardsSection, awards, session, lobby), mountPolls(polls, session, lobby));
  stops.push(
    watchAll(session.store, [`room:${lobby}`], () => {
      const room = session.room(lobby);
      if (!room || !moderates(room) || !manageSection.hidden) return;
      manageSection.hidden = false;
      import("./staff.js").then((staff) => stops.push(staff.mountManage(manage, session, lobby)));
    }),
    watchAll(session.store, ["directory"], () => {
      const directory = session.state.directory;
      const rooms = directory.filter((room) => room.kind === "panel" || room.kind === "workshop").sort((a, b) => a.kind.localeCompare(b.kind) || a.title.localeCompare(b.title));
      replace(
        sessions,
        rooms.length
          ? rooms.map((room) => {
              const stage = (room.stage || []).map((person) => person.name).join(", ");
              const away = room.in_breakouts > 0 ? room.in_breakouts : null;
              return h(
                "li",
                { class: "room-card" },
                h("h3", {}, h("a", { href: `#/room/${encodeURIComponent(room.id)}`, dir: "auto", text: room.title })),
                h("p", {}, h("span", { class: "badge", text: t(`kind.${room.kind}`) }), " ", t("lobby.members", { count: room.members || 0 })),
                stage && h("p", { class: "hint", text: t("lobby.onStage", { names: stage }) }),
                away && h("p", { class: "hint", text: t("lobby.inBreakouts", { count: away }) }),
              );
            })
          : h("li", { class: "empty", text: t("lobby.noSessions") }),
      );
    }),
    session.store.watch("dms-focus", () => messagesSection.scrollIntoView({ block: "start" })),
  );
  return () => stops.forEach((stop) => stop());
}
