/**
 * The staff's tools, loaded only for moderators and organizers (most people never need them):
 * the form that starts a poll, the form that opens breakout rooms, announcements and slow mode.
 */

import { roundOf } from "./breakouts.js";
import { button, field, h, replace } from "./dom.js";
import { countdown, t } from "./strings.js";
import { watchAll } from "./store.js";

const POLL_DURATIONS = [0, 30, 60, 120, 300, 600, 1800];
const BREAKOUT_DURATIONS = [0, 60, 300, 600, 900, 1800, 3600];

const SLOWMODE = [0, 5, 10, 30, 60, 120];

export function mountManage(container, session, roomId) {
  const text = h("textarea", { rows: "2", maxlength: "2000", dir: "auto" });
  const onsubmit = async (event) => {
    event.preventDefault();
    if (text.value.trim() && (await session.act("announce", { room: roomId, text: text.value.trim() }, t("manage.announced")))) text.value = "";
  };
  const slowmode = h(
    "select",
    { onchange: () => session.act("room.slowmode", { room: roomId, seconds: Number(slowmode.value) }, t("manage.slowmodeSet")) },
    SLOWMODE.map((s) => h("option", { value: String(s), text: s ? t("manage.slowmodeEvery", { count: s }) : t("manage.slowmodeOff") })),
  );
  container.append(
    h("form", { class: "card", onsubmit }, h("h3", { text: t("manage.announcements") }), field(t("manage.announcement"), text, t("manage.announcementHint")), h("button", { type: "submit", class: "primary", text: t("manage.announce") })),
    h("div", { class: "card" }, h("h3", { text: t("manage.chat") }), field(t("manage.slowmode"), slowmode)),
  );
  return watchAll(session.store, [`room:${roomId}`], () => {
    const seconds = session.room(roomId)?.chat.slowmode || 0;
    if (document.activeElement !== slowmode) slowmode.value = String(SLOWMODE.includes(seconds) ? seconds : 0);
  });
}

/** The form that starts a poll. */
export function pollForm(session, roomId) {
  const question = h("input", { type: "text", required: true, maxlength: "300" });
  const options = h("div");
  const add = button(t("poll.addOption"), () => addOption(true));
  const check = (key, checked) => {
    const input = h("input", { type: "checkbox", checked });
    return [input, h("label", { class: "choice" }, input, h("span", { text: t(key) }))];
  };
  const [multi, multiLabel] = check("poll.multi", false);
  const [anonymous, anonymousLabel] = check("poll.anonymous", true);
  const [change, changeLabel] = check("poll.allowChange", true);
  const [guests, guestsLabel] = check("poll.guests", true);
  const show = h("select", {}, ["live", "closed", "never"].map((value) => h("option", { value, text: t(`poll.show.${value}`) })));
  const duration = h("select", {}, POLL_DURATIONS.map((s) => h("option", { value: String(s), text: s ? countdown(s) : t("poll.noDuration") })));
  const start = h("button", { type: "submit", class: "primary", text: t("poll.start") });

  const renumber = () => {
    [...options.children].forEach((row, index) => {
      row.querySelector("label").textContent = t("poll.option", { n: index + 1 });
      const remove = row.querySelector("button");
      remove.setAttribute("aria-label", t("poll.removeOption", { n: index + 1 }));
      remove.hidden = options.children.length <= 2;
    });
    add.disabled = options.children.length >= 20;
  };
  const addOption = (focus) => {
    const input = h("input", { type: "text", required: true, maxlength: "100" });
    const row = h("div", { class: "option-row" }, field("", input), button("×", () => (row.remove(), renumber()), { class: "icon-button" }));
    options.append(row);
    renumber();
    if (focus) input.focus();
  };
  const reset = () => {
    question.value = "";
    options.replaceChildren();
    addOption(false);
    addOption(false);
  };
  reset();
  const onsubmit = async (event) => {
    event.preventDefault();
    const fields = {
      room: roomId,
      question: question.value.trim(),
      options: [...options.querySelectorAll("input")].map((input) => input.value.trim()),
      multi: multi.checked,
      anonymous: anonymous.checked,
      show: show.value,
      allow_change: change.checked,
      guests: guests.checked,
      ...(Number(duration.value) && { duration: Number(duration.value) }),
    };
    start.disabled = true;
    if (await session.act("poll.create", fields, t("poll.started"))) reset();
    start.disabled = false;
  };
  return h(
    "form",
    { class: "card", "aria-label": t("poll.newPoll"), onsubmit },
    h("h3", { text: t("poll.newPoll") }),
    field(t("poll.question"), question),
    options,
    add,
    h("div", { class: "checks" }, multiLabel, anonymousLabel, changeLabel, guestsLabel),
    field(t("poll.show"), show),
    field(t("poll.closesAfter"), duration),
    start,
  );
}

/** The moderators' form that opens a round (workshops and panels, while none is open). */
export function mountBreakoutForm(container, session, roomId) {
  const count = h("input", { type: "number", min: "1", max: "50", value: "2", required: true });
  const assign = h("select", {}, ["random", "manual", "self"].map((value) => h("option", { value, text: t(`breakout.${value}`) })));
  const duration = h("select", {}, BREAKOUT_DURATIONS.map((s) => h("option", { value: String(s), text: s ? countdown(s) : t("breakout.noDuration") })));
  const moderatorsToo = h("input", { type: "checkbox" });
  const move = h("input", { type: "checkbox", checked: true });
  const moveLabel = h("label", { class: "choice" }, move, h("span", { text: t("breakout.move") }));
  const manual = h("div", { hidden: true });
  const choices = new Map(); // user -> <select> of their room

  const drawManual = async () => {
    moveLabel.hidden = assign.value === "self"; // people choose their room themselves
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
    // Named here, in the moderator's language, rather than by the hub's English "Room N".
    const rooms = Math.max(1, Math.min(50, Number(count.value) || 1));
    const titles = Array.from({ length: rooms }, (_, i) => t("breakout.roomN", { n: i + 1 }));
    const fields = { room: roomId, titles, assign: assign.value };
    if (Number(duration.value)) fields.duration = Number(duration.value);
    if (assign.value === "random" && moderatorsToo.checked) fields.moderators = true;
    if (assign.value !== "self" && move.checked) fields.move = true;
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
    moveLabel,
    manual,
    h("button", { type: "submit", class: "primary", text: t("breakout.openButton") }),
  );
  container.append(form);
  return watchAll(session.store, [`breakouts:${roomId}`, `room:${roomId}`], () => {
    form.hidden = Boolean(roundOf(session.room(roomId)));
  });
}
