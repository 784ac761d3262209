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

const DURATIONS = [0, 60, 300, 600, 900, 1800, 3600];
const endsIn = (left) => t("breakout.endsIn", { time: countdown(left) });

/** The open round of parent `room`, or null. */
function roundOf(room) {
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
      return h("li", {}, h("span", { text: title }), mine && h("span", { class: "badge", text: t("breakout.yours") }), go);
    });
    const text = h("input", { type: "text", maxlength: "2000" });
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
  const parentId = session.room(roomId)?.parent;
  return watchAll(session.store, [`breakouts:${roomId}`, `room:${roomId}`, `breakouts:${parentId}`], () => {
    const room = session.room(roomId);
    if (!room) return;
    setText(where, t("breakout.inside", { parent: session.room(room.parent)?.title || room.parent || "" }));
    const endsAt = room.endingAt || roundOf(session.room(room.parent))?.ends_at || room.breakouts?.ends_at;
    if (endsAt) countdownIn(deadline, endsAt, endsIn);
  });
}

/** The moderators' form that opens a round (workshops and panels, while none is open). */
export function mountBreakoutForm(container, session, roomId) {
  const count = h("input", { type: "number", min: "1", max: "50", value: "2", required: true });
  const assign = h("select", {}, ["random", "manual", "self"].map((value) => h("option", { value, text: t(`breakout.${value}`) })));
  const duration = h("select", {}, DURATIONS.map((s) => h("option", { value: String(s), text: s ? countdown(s) : t("breakout.noDuration") })));
  const moderatorsToo = h("input", { type: "checkbox" });
  const manual = h("div", { hidden: true });
  const choices = new Map(); // user -> <select> of their room

  const drawManual = async () => {
    manual.hidden = assign.value !== "manual";
    if (manual.hidden) return;
    const { members } = await session.presence(roomId).catch(() => ({ members: [] }));
    const rooms = Math.max(1, Math.min(50, Number(count.value) || 1));
    choices.clear();
    replace(
      manual,
      h("p", { class: "hint", text: t("breakout.manualHint") }),
      members
        .filter((member) => member.user !== session.hub.user.id)
        .map((member) => {
          const options = Array.from({ length: rooms }, (_, i) => h("option", { value: String(i + 1), text: t("breakout.roomN", { n: i + 1 }) }));
          const select = h("select", {}, h("option", { value: "", text: t("breakout.unassigned") }), options);
          choices.set(member.user, select);
          return field(t("breakout.roomFor", { name: member.name }), select);
        }),
    );
  };
  assign.addEventListener("change", drawManual);
  count.addEventListener("change", drawManual);
  const onsubmit = async (event) => {
    event.preventDefault();
    const fields = { room: roomId, count: Number(count.value), assign: assign.value };
    if (Number(duration.value)) fields.duration = Number(duration.value);
    if (assign.value === "random" && moderatorsToo.checked) fields.moderators = true;
    if (assign.value === "manual") fields.assignments = Object.fromEntries([...choices].filter(([, select]) => select.value).map(([user, select]) => [user, Number(select.value)]));
    await session.act("breakout.open", fields, t("breakout.opened"));
  };
  const form = h(
    "form",
    { class: "card", onsubmit },
    h("h3", { text: t("breakout.title") }),
    field(t("breakout.count"), count),
    field(t("breakout.assign"), assign),
    field(t("breakout.durationLabel"), duration),
    h("label", { class: "choice" }, moderatorsToo, h("span", { text: t("breakout.moderatorsToo") })),
    manual,
    h("button", { type: "submit", class: "primary", text: t("breakout.openButton") }),
  );
  container.append(form);
  return watchAll(session.store, [`breakouts:${roomId}`, `room:${roomId}`], () => {
    form.hidden = Boolean(roundOf(session.room(roomId)));
  });
}
