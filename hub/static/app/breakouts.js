/**
 * Breakout rounds: the banner of a parent room while a round is open (its rooms, one's own, the
 * countdown, and for moderators "Broadcast" and "Close breakouts"), the banner inside a breakout
 * ("Return to main room"), and the moderators' form that opens a round ("Open breakouts").
 */

import { button, field, h, replace, setText } from "./dom.js";
import { moderates } from "./roomstate.js";
import { countdown, t } from "./strings.js";
import { watchAll } from "./store.js";
import { countdownIn } from "./ticker.js";

const endsIn = (left) => t("breakout.endsIn", { time: countdown(left) });

/** The open round of parent `room`, or null. */
export function roundOf(room) {
  return room?.breakouts?.rooms?.length ? room.breakouts : null;
}

/** The banner of a parent room while its round is open. */
export function mountBreakoutBanner(container, session, roomId) {
  const section = h("section", { class: "card", hidden: true, "aria-label": t("breakout.title") });
  container.append(section);
  let drawn = null;
  return watchAll(session.store, [`breakouts:${roomId}`, `room:${roomId}`], () => {
    const room = session.room(roomId);
    const round = roundOf(room);
    const key = JSON.stringify([round, room?.role]);
    if (key === drawn) return;
    drawn = key;
    section.hidden = !round;
    if (!round) return section.replaceChildren();
    const manage = moderates(room);
    const deadline = h("p", { class: "hint" });
    const rooms = round.rooms.map(({ id, title }) => {
      const mine = round.assigned === id;
      const go = (manage || mine || round.assign === "self" || !round.assigned) && button(t("breakout.join", { title }), () => session.navigate(id), { class: mine ? "primary small" : "small" });
      return h("li", {}, h("span", { dir: "auto", text: title }), mine && h("span", { class: "badge", text: t("breakout.yours") }), go);
    });
    const text = h("input", { type: "text", maxlength: "2000", dir: "auto" });
    const broadcast = async (event) => {
      event.preventDefault();
      const value = text.value.trim();
      if (value && (await session.act("breakout.broadcast", { room: roomId, text: value }, t("breakout.broadcasted")))) text.value = "";
    };
    replace(
      section,
      h("h2", { text: t("breakout.open") }),
      deadline,
      h("ul", { class: "breakout-rooms" }, rooms),
      manage && [
        h("form", { class: "inline-form", onsubmit: broadcast }, field(t("breakout.broadcastLabel"), text), h("button", { type: "submit", text: t("breakout.broadcast") })),
        button(t("breakout.close"), () => session.act("breakout.close", { room: roomId }, t("breakout.closing")), { class: "danger" }),
      ],
    );
    if (round.ends_at) countdownIn(deadline, round.ends_at, endsIn);
  });
}

/** The banner inside a breakout room: where one is, how long is left, the way back. */
export function mountChildBanner(container, session, roomId) {
  const where = h("span");
  const deadline = h("span", { class: "hint" });
  const back = button(t("breakout.return"), () => session.navigate(session.room(roomId)?.parent ?? null));
  container.append(h("section", { class: "child-banner card", "aria-label": t("breakout.title") }, where, " ", deadline, back));
  return watchAll(session.store, [`breakouts:${roomId}`, `room:${roomId}`, "directory"], () => {
    const room = session.room(roomId);
    if (!room) return;
    const parent = session.state.directory.find((entry) => entry.id === room.parent);
    setText(where, t("breakout.inside", { parent: parent?.title || room.parent || "" }));
    const endsAt = room.endingAt || room.breakouts?.ends_at;
    if (endsAt) countdownIn(deadline, endsAt, endsIn);
  });
}
