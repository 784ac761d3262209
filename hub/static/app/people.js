/**
 * The people in a room: pages of the member list read with `presence` and drawn as a windowed
 * list (only the rows in view exist, whatever the room's size), and what can be done with the
 * one selected: a direct message, and for moderators the stage, chat mute, kick and bans.
 */

import { h, replace, setText } from "./dom.js";
import { moderates, rank, roleOf } from "./roomstate.js";
import { roleBadge } from "./shell.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

const ROW = 44; // px, one row (the CSS says the same)
const OVERSCAN = 8;
const MUTE_SECONDS = 300;
/** Rooms up to this size have their list re-read when people come and go (the hub sends the
 * joined and left lists only while a room is this small). */
const LIVE_LIST = 200;

export function mountPeople(container, session, roomId, { openMessages }) {
  const count = h("p", { class: "hint", "aria-live": "polite" });
  const spacer = h("div", { class: "rows", role: "list", "aria-label": t("people.list") });
  const viewport = h("div", { class: "people-scroll" }, spacer);
  const details = h("section", { class: "person card", hidden: true, "aria-live": "polite" });
  container.append(count, viewport, details);

  let members = []; // [{sid, user, name, role}]
  let next = null; // cursor of the next page, null when all are read
  let loading = false;
  let selected = null;
  let lastMembers = -1;

  const load = async (reset) => {
    if (loading || (!reset && next === null && members.length)) return;
    loading = true;
    try {
      const page = await session.presence(roomId, reset ? null : next);
      members = reset ? page.members : members.concat(page.members);
      next = page.next ?? null;
    } catch (error) {
      if (error.code !== "timeout") session.toast(t("people.failed"), "error");
    } finally {
      loading = false;
    }
    drawRows();
  };

  const drawRows = () => {
    const room = session.room(roomId);
    if (!room) return;
    spacer.style.height = `${members.length * ROW}px`;
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(members.length, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW) + OVERSCAN);
    const rows = [];
    for (let index = first; index < last; index += 1) {
      const member = members[index];
      const role = roleOf(room, member.user) === "attendee" ? member.role : roleOf(room, member.user);
      const row = h(
        "div",
        { role: "listitem", class: "row", "aria-setsize": String(members.length), "aria-posinset": String(index + 1) },
        h(
          "button",
          {
            type: "button",
            class: "row-button",
            "aria-pressed": selected?.sid === member.sid ? "true" : "false",
            onclick: () => select(member),
          },
          h("span", { class: "row-name", text: member.name }),
          member.user === room.me ? h("span", { class: "hint", text: t("people.you") }) : null,
          roleBadge(role),
        ),
      );
      row.style.top = `${index * ROW}px`;
      rows.push(row);
    }
    replace(spacer, rows);
    if (next !== null && last >= members.length - OVERSCAN) load(false);
  };

  const select = (member) => {
    selected = member;
    drawRows();
    drawDetails();
  };

  const drawDetails = () => {
    const room = session.room(roomId);
    if (!room || !selected) {
      details.hidden = true;
      return;
    }
    const member = selected;
    const role = roleOf(room, member.user);
    const actions = [];
    const isMe = member.user === room.me;
    if (!isMe) {
      actions.push(
        h("button", {
          type: "button",
          text: t("people.message"),
          onclick: () => openMessages(member.user, member.name),
        }),
      );
    }
    const myRank = rank(room.role);
    if (moderates(room) && !isMe && rank(role) < myRank) {
      const roleAction = (label, newRole) =>
        h("button", {
          type: "button",
          text: label,
          onclick: () => session.act("role.set", { room: roomId, user: member.user, role: newRole }, t("people.roleChanged", { name: member.name })),
        });
      if (room.kind === "panel") {
        actions.push(role === "speaker" ? roleAction(t("stage.remove"), "attendee") : roleAction(t("stage.invite"), "speaker"));
      }
      if (role !== "moderator") actions.push(roleAction(t("people.makeModerator"), "moderator"));
      actions.push(
        h("button", {
          type: "button",
          text: t("chat.mute"),
          onclick: () => session.act("chat.mute", { room: roomId, user: member.user, seconds: MUTE_SECONDS }, t("chat.muted", { name: member.name })),
        }),
        h("button", {
          type: "button",
          text: t("people.kick"),
          onclick: () => session.act("kick", { room: roomId, user: member.user }, t("people.kicked", { name: member.name })),
        }),
        h("button", {
          type: "button",
          class: "danger",
          text: t("people.banRoom"),
          onclick: () => {
            if (confirm(t("people.confirmBanRoom", { name: member.name }))) {
              session.act("kick", { room: roomId, user: member.user, ban: true }, t("people.banned", { name: member.name }));
            }
          },
        }),
      );
      if (session.hub.user.role === "organizer") {
        actions.push(
          h("button", {
            type: "button",
            class: "danger",
            text: t("people.banEvent"),
            onclick: () => {
              if (confirm(t("people.confirmBanEvent", { name: member.name }))) {
                session.act("ban", { user: member.user }, t("people.banned", { name: member.name }));
              }
            },
          }),
        );
      }
    }
    replace(
      details,
      h("h3", {}, h("span", { text: member.name }), " ", roleBadge(role)),
      actions.length ? h("div", { class: "tools" }, actions) : h("p", { class: "hint", text: t("people.nothing") }),
    );
    details.hidden = false;
  };

  viewport.addEventListener("scroll", () => requestAnimationFrame(drawRows), { passive: true });

  const render = () => {
    const room = session.room(roomId);
    if (!room) return;
    setText(count, t("people.count", { count: room.members }));
    // Small rooms: re-read the list as people come and go. Large ones: on demand.
    if (room.members !== lastMembers && (room.members <= LIVE_LIST || lastMembers < 0)) load(true);
    lastMembers = room.members;
    drawRows();
    drawDetails();
  };
  const stop = watchAll(session.store, [`members:${roomId}`, `room:${roomId}`], render);
  render();
  return { unmount: stop, refresh: () => load(true) };
}
