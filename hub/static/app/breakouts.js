/**
 * Breakout rounds: the banner of a parent room while a round is open (the rooms, one's own,
 * the countdown, and for moderators "Broadcast" and "Close breakouts"), the banner inside a
 * breakout ("Return to main room"), and the moderators' form that opens a round.
 */

import { field, h, replace, setText } from "./dom.js";
import { moderates } from "./roomstate.js";
import { countdown, t } from "./strings.js";
import { watchAll } from "./store.js";
import { countdownIn } from "./ticker.js";

const DURATIONS = [0, 60, 300, 600, 900, 1800, 3600];

/** The open round of `room` (a parent), or null. */
function roundOf(room) {
  return room?.breakouts && room.breakouts.rooms?.length ? room.breakouts : null;
}

/** The banner of a parent room while its round is open. */
export function mountBreakoutBanner(container, session, roomId) {
  const section = h("section", { class: "breakouts card", hidden: true, "aria-label": t("breakout.title") });
  container.append(section);
  let drawn = null;
  const render = () => {
    const room = session.room(roomId);
    const round = roundOf(room);
    section.hidden = !round;
    if (!round) {
      drawn = null;
      section.replaceChildren();
      return;
    }
    const key = JSON.stringify([round, room.role]);
    if (key === drawn) return;
    drawn = key;
    const manage = moderates(room);
    const mayPick = manage || round.assign === "self" || !round.assigned;
    const deadline = h("p", { class: "hint" });
    const list = h(
      "ul",
      { class: "breakout-rooms" },
      round.rooms.map((child) => {
        const mine = round.assigned === child.id;
        return h(
          "li",
          {},
          h("span", { text: child.title }),
          mine ? h("span", { class: "badge", text: t("breakout.yours") }) : null,
          (mayPick || mine) &&
            h("button", {
              type: "button",
              class: mine ? "primary small" : "small",
              text: t("breakout.join", { title: child.title }),
              onclick: () => session.enter(child.id),
            }),
        );
      }),
    );
    const children = [h("h2", { text: t("breakout.open") }), deadline, list];
    if (manage) {
      const text = h("input", { type: "text", maxlength: "2000" });
      children.push(
        h(
          "form",
          {
            class: "inline-form",
            onsubmit: async (event) => {
              event.preventDefault();
              const value = text.value.trim();
              if (value && (await session.act("breakout.broadcast", { room: roomId, text: value }, t("breakout.broadcasted")))) text.value = "";
            },
          },
          field(t("breakout.broadcastLabel"), text).wrap,
          h("button", { type: "submit", text: t("breakout.broadcast") }),
        ),
        h("button", {
          type: "button",
          class: "danger",
          text: t("breakout.close"),
          onclick: () => session.act("breakout.close", { room: roomId }, t("breakout.closing")),
        }),
      );
    }
    replace(section, children);
    if (round.ends_at) countdownIn(deadline, round.ends_at, (left) => t("breakout.endsIn", { time: countdown(left) }));
  };
  return watchAll(session.store, [`breakouts:${roomId}`, `room:${roomId}`], render);
}

/** The banner inside a breakout room: where one is, how long is left, the way back. */
export function mountChildBanner(container, session, roomId) {
  const deadline = h("span", { class: "hint" });
  const parentName = h("span");
  const back = h("button", {
    type: "button",
    text: t("breakout.return"),
    onclick: () => {
      const room = session.room(roomId);
      session.enter(room?.parent || null);
    },
  });
  container.append(h("section", { class: "child-banner card", "aria-label": t("breakout.title") }, parentName, " ", deadline, back));
  const render = () => {
    const room = session.room(roomId);
    if (!room) return;
    const parent = room.parent ? session.room(room.parent) : null;
    setText(parentName, t("breakout.inside", { parent: parent?.title || room.parent || "" }));
    const endsAt = room.endingAt || roundOf(parent)?.ends_at || room.breakouts?.ends_at;
    if (endsAt) countdownIn(deadline, endsAt, (left) => t("breakout.endsIn", { time: countdown(left) }));
  };
  const parentId = session.room(roomId)?.parent;
  return watchAll(session.store, [`breakouts:${roomId}`, `room:${roomId}`, parentId ? `breakouts:${parentId}` : "none"], render);
}

/** The moderators' form that opens a round (workshops and panels, while none is open). */
export function mountBreakoutForm(container, session, roomId) {
  const count = h("input", { type: "number", min: "1", max: "50", value: "2", required: true });
  const assign = h(
    "select",
    {},
    h("option", { value: "random", text: t("breakout.random") }),
    h("option", { value: "manual", text: t("breakout.manual") }),
    h("option", { value: "self", text: t("breakout.self") }),
  );
  const duration = h(
    "select",
    {},
    DURATIONS.map((seconds) => h("option", { value: String(seconds), text: seconds ? t("breakout.duration", { time: countdown(seconds) }) : t("breakout.noDuration") })),
  );
  const moderatorsToo = h("input", { type: "checkbox" });
  const manual = h("div", { class: "manual", hidden: true });
  const open = h("button", { type: "submit", class: "primary", text: t("breakout.openButton") });
  const choices = new Map(); // user -> <select>

  const drawManual = async () => {
    manual.hidden = assign.value !== "manual";
    if (manual.hidden) return;
    let members = [];
    try {
      members = (await session.presence(roomId)).members;
    } catch {
      members = [];
    }
    choices.clear();
    const rooms = Math.max(1, Math.min(50, Number(count.value) || 1));
    replace(
      manual,
      h("p", { class: "hint", text: t("breakout.manualHint") }),
      members
        .filter((member) => member.user !== session.hub.user.id)
        .map((member) => {
          const select = h(
            "select",
            {},
            h("option", { value: "", text: t("breakout.unassigned") }),
            Array.from({ length: rooms }, (_, index) => h("option", { value: String(index + 1), text: t("breakout.roomN", { n: index + 1 }) })),
          );
          choices.set(member.user, select);
          return field(t("breakout.roomFor", { name: member.name }), select).wrap;
        }),
    );
  };
  assign.addEventListener("change", drawManual);
  count.addEventListener("change", drawManual);

  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const fields = { room: roomId, count: Number(count.value), assign: assign.value };
        if (Number(duration.value)) fields.duration = Number(duration.value);
        if (assign.value === "random" && moderatorsToo.checked) fields.moderators = true;
        if (assign.value === "manual") {
          fields.assignments = {};
          for (const [user, select] of choices) if (select.value) fields.assignments[user] = Number(select.value);
        }
        open.disabled = true;
        await session.act("breakout.open", fields, t("breakout.opened"));
        open.disabled = false;
      },
    },
    h("h3", { text: t("breakout.title") }),
    field(t("breakout.count"), count).wrap,
    field(t("breakout.assign"), assign).wrap,
    field(t("breakout.durationLabel"), duration).wrap,
    h("label", { class: "choice" }, moderatorsToo, h("span", { text: t("breakout.moderatorsToo") })),
    manual,
    open,
  );
  container.append(form);
  const render = () => {
    form.hidden = Boolean(roundOf(session.room(roomId)));
  };
  return watchAll(session.store, [`breakouts:${roomId}`, `room:${roomId}`], render);
}
