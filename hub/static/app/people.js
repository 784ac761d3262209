/**
 * The people in a room: pages of the member list read with `presence` and drawn as a windowed
 * list (only the rows in view exist, whatever the room's size), and what can be done with the
 * one selected: a direct message, and for moderators the stage, roles, chat mute, kick and bans.
 */

import { button, h, keyed, replace, setText } from "./dom.js";
import { moderates, rank, roleOf } from "./roomstate.js";
import { roleBadge } from "./shell.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

const ROW = 44; // px, one row (as app.css has it)
const OVERSCAN = 8;
/** Rooms up to this size have their list re-read as people come and go (the hub names who came
 * and went only while a room is this small). */
const LIVE_LIST = 200;

export function mountPeople(container, session, roomId, openMessages) {
  const count = h("p", { class: "hint" });
  const rows = h("div", { class: "rows", role: "list", "aria-label": t("people.list") });
  const viewport = h("div", { class: "people-scroll" }, rows);
  const details = h("section", { class: "person card", hidden: true });
  const drawnRows = new Map();
  container.append(count, viewport, details);
  let members = []; // [{sid, user, name, role}]
  let next = null; // the cursor of the next page; null once all are read
  let loading = false;
  let selected = null;
  let counted = -1;

  const load = async (reset) => {
    if (loading || (!reset && next === null)) return;
    loading = true;
    try {
      const page = await session.presence(roomId, reset ? null : next);
      members = reset ? page.members : members.concat(page.members);
      next = page.next ?? null;
    } catch {
      session.toast(t("people.failed"), "error");
    }
    loading = false;
    draw();
  };

  const draw = () => {
    const room = session.room(roomId);
    if (!room) return;
    rows.style.height = `${members.length * ROW}px`;
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(members.length, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW) + OVERSCAN);
    // Rows in view only; a row that stays in view is kept (with the focus on it).
    const shown = members.slice(first, last).map((member, offset) => ({ member, index: first + offset }));
    keyed(rows, drawnRows, shown, ({ member }) => member.sid, ({ member }) => {
      const badge = h("span");
      const pick = h("button", { type: "button", class: "row-button", onclick: () => ((selected = member), draw()) }, h("span", { class: "row-name", dir: "auto", text: member.name }), member.user === room.me && h("span", { class: "hint", text: t("people.you") }), badge);
      const row = h("div", { role: "listitem", class: "row" }, pick);
      return {
        node: row,
        update({ index }) {
          const known = roleOf(room, member.user);
          if (badge.textContent !== (roleBadge(known === "attendee" ? member.role : known)?.textContent ?? "")) replace(badge, roleBadge(known === "attendee" ? member.role : known));
          row.style.top = `${index * ROW}px`;
          row.setAttribute("aria-setsize", String(members.length));
          row.setAttribute("aria-posinset", String(index + 1));
          pick.setAttribute("aria-pressed", String(selected?.sid === member.sid));
        },
      };
    });
    if (last >= members.length - OVERSCAN) load(false);
    drawDetails(room);
  };

  let detailsFor = null;
  const drawDetails = (room) => {
    details.hidden = !selected;
    // Drawn again only when what it offers may change (not at every scroll or presence batch).
    const key = selected && `${selected.sid}:${room.role}:${room.rolesVersion}`;
    if (!selected || key === detailsFor) return;
    detailsFor = key;
    const { user, name } = selected;
    const role = roleOf(room, user);
    const act = (op, fields, done, confirmText) => () => (!confirmText || confirm(confirmText)) && session.act(op, { room: roomId, user, ...fields }, done);
    const setRole = (label, to) => button(label, act("role.set", { role: to }, t("people.roleChanged", { name })));
    const mine = user === room.me;
    const manage = moderates(room) && !mine && rank(role) < rank(room.role);
    const actions = [
      !mine && button(t("people.message"), () => openMessages(user, name)),
      manage && room.kind === "panel" && (role === "speaker" ? setRole(t("stage.remove"), "attendee") : setRole(t("stage.invite"), "speaker")),
      manage && role !== "moderator" && setRole(t("people.makeModerator"), "moderator"),
      manage && button(t("chat.mute"), act("chat.mute", { seconds: 300 }, t("chat.muted", { name }))),
      manage && button(t("people.kick"), act("kick", {}, t("people.kicked", { name }))),
      manage && button(t("people.banRoom"), act("kick", { ban: true }, t("people.banned", { name }), t("people.confirmBanRoom", { name })), { class: "danger" }),
      manage && session.hub.user.role === "organizer" && button(t("people.banEvent"), () => confirm(t("people.confirmBanEvent", { name })) && session.act("ban", { user }, t("people.banned", { name })), { class: "danger" }),
    ].filter(Boolean);
    replace(details, h("h3", {}, h("span", { dir: "auto", text: name }), " ", roleBadge(role)), actions.length ? h("div", { class: "tools" }, actions) : h("p", { class: "hint", text: t("people.nothing") }));
  };

  viewport.addEventListener("scroll", () => requestAnimationFrame(draw), { passive: true });
  // Drawn while its tab was hidden, the list had no height: draw again once it has one.
  const resized = new ResizeObserver(() => draw());
  resized.observe(viewport);
  const stop = watchAll(session.store, [`members:${roomId}`, `room:${roomId}`], () => {
    const room = session.room(roomId);
    if (!room) return;
    setText(count, t("people.count", { count: room.members }));
    // Small rooms: read the list again as people come and go; large ones: page by page.
    if (room.members !== counted && (room.members <= LIVE_LIST || counted < 0)) load(true);
    counted = room.members;
    draw();
  });
  return () => (stop(), resized.disconnect());
}
