/**
 * Polls and elections of a room: each open poll as a ballot (a group named by its question, one
 * radio or checkbox per option, and "Vote"), results as the poll's `show` allows, closed polls
 * with their results, and for those who run polls the form that starts one ("Poll question",
 * "Option 1" …, "Add option", "Start poll"), "Close poll" and the CSV download.
 */

import { button, field, h, keyed, replace, setText, uniqueId } from "./dom.js";
import { moderates, rank, results } from "./roomstate.js";
import { countdown, t } from "./strings.js";
import { watchAll } from "./store.js";
import { countdownIn } from "./ticker.js";

const DURATIONS = [0, 30, 60, 120, 300, 600, 1800];

/** Whether the person may start and close polls here (organizers only, in the lobby). */
function runsPolls(room) {
  return room.kind === "lobby" ? rank(room.role) >= rank("organizer") : moderates(room);
}

export function mountPolls(container, session, roomId) {
  const empty = h("p", { class: "empty", text: t("poll.none") });
  const open = h("div");
  const form = pollForm(session, roomId);
  const closed = h("div");
  const closedSection = h("section", { hidden: true }, h("h3", { text: t("poll.results") }), closed);
  container.append(empty, open, form, closedSection);
  const cards = new Map();
  const closedCards = new Map();
  const id = (view) => view.poll.id;
  return watchAll(session.store, [`polls:${roomId}`, `room:${roomId}`], () => {
    const room = session.room(roomId);
    if (!room) return;
    form.hidden = !runsPolls(room);
    keyed(open, cards, [...room.polls.values()], id, (view) => ballot(session, roomId, view), room);
    keyed(closed, closedCards, room.closedPolls.toReversed(), id, (view) => resultCard(session, roomId, view), room);
    closedSection.hidden = !room.closedPolls.length;
    empty.hidden = room.polls.size > 0 || room.closedPolls.length > 0;
  });
}

/** What the poll's rules are, in a line ("Choose one · One person, one vote …"). */
function rules({ multi, allow_change, show }) {
  const choose = multi === true ? t("poll.chooseAny") : multi > 1 ? t("poll.chooseUpTo", { count: multi }) : t("poll.chooseOne");
  const more = [allow_change === false && "poll.oneVote", show === "closed" && "poll.hiddenUntilClosed", show === "never" && "poll.moderatorsOnly"];
  return [choose, ...more.filter(Boolean).map((key) => t(key))].join(" · ");
}

/** The results of a poll as bars, or why they are hidden. */
function resultsNode(view) {
  const rows = results(view);
  if (!rows) return h("p", { class: "hint", text: t(view.poll.show === "never" ? "poll.resultsModerators" : "poll.resultsWhenClosed") });
  return h(
    "div",
    { class: "results" },
    rows.map(({ option, count, share }) => {
      const percent = Math.round(share * 100);
      return h("div", { class: "result" }, h("span", { text: option }), h("span", { class: "hint", text: t("poll.count", { count, percent }) }), h("progress", { max: "100", value: String(percent), "aria-hidden": "true" }));
    }),
    h("p", { class: "hint", text: t("poll.voters", { count: view.voters ?? 0 }) }),
  );
}

/** The tools of a poll's card for those who run polls: close it (while open), download it. */
function toolsFor(session, roomId, poll, isOpen) {
  return [isOpen && button(t("poll.close"), () => session.act("poll.close", { room: roomId, poll: poll.id })), button(t("poll.csv"), () => session.downloadCsv(roomId, poll.id))];
}

function ballot(session, roomId, view) {
  const poll = view.poll;
  const multi = poll.multi === true || poll.multi > 1;
  const name = uniqueId("poll");
  const inputs = poll.options.map((_, index) => h("input", { type: multi ? "checkbox" : "radio", name, value: String(index) }));
  const vote = h("button", { type: "submit", class: "primary" });
  const mine = h("p", { class: "hint" });
  const deadline = h("p", { class: "hint" });
  const resultSlot = h("div", { "aria-live": "polite" });
  const tools = h("div", { class: "tools" });
  const onsubmit = async (event) => {
    event.preventDefault();
    const chosen = inputs.filter((input) => input.checked).map((input) => Number(input.value));
    if (!chosen.length) return session.toast(t("poll.chooseFirst"), "error");
    if (poll.multi > 1 && chosen.length > poll.multi) return session.toast(t("poll.tooMany", { count: poll.multi }), "error");
    vote.disabled = true;
    await session.vote(roomId, poll.id, multi ? chosen : chosen[0]);
    vote.disabled = false;
  };
  const fieldset = h(
    "fieldset",
    { class: "ballot" },
    h("legend", { text: poll.question }),
    h("p", { class: "hint", text: rules(poll) }),
    inputs.map((input, index) => h("label", { class: "choice" }, input, h("span", { text: poll.options[index] }))),
    vote,
    mine,
  );
  const node = h("article", { class: "poll card" }, h("form", { onsubmit }, fieldset), deadline, resultSlot, tools);
  if (poll.closes_at) countdownIn(deadline, poll.closes_at, (left) => t("poll.closesIn", { time: countdown(left) }));
  let drawn = {};
  return {
    node,
    update(current, room) {
      const voted = current.mine !== null && current.mine !== undefined;
      const locked = voted && current.poll.allow_change === false;
      const chosen = [current.mine].flat();
      for (const input of inputs) {
        if (voted && !fieldset.contains(document.activeElement)) input.checked = chosen.includes(Number(input.value));
        input.disabled = locked;
      }
      vote.disabled = locked;
      setText(vote, t(voted && !locked ? "poll.changeVote" : "poll.vote"));
      setText(mine, voted ? t(locked ? "poll.votedFinal" : "poll.votedChange") : "");
      const tally = JSON.stringify([current.counts, current.voters]);
      if (tally !== drawn.tally) replace(resultSlot, resultsNode(current));
      if (runsPolls(room) !== drawn.runs) replace(tools, runsPolls(room) && toolsFor(session, roomId, poll, true));
      drawn = { tally, runs: runsPolls(room) };
    },
  };
}

function resultCard(session, roomId, view) {
  const body = h("div");
  const tools = h("div", { class: "tools" });
  const node = h("article", { class: "poll card", "aria-label": view.poll.question }, h("h4", { text: view.poll.question }), h("p", { class: "hint", text: t("poll.closedLabel") }), body, tools);
  return {
    node,
    update(current, room) {
      replace(body, resultsNode(current));
      replace(tools, runsPolls(room) && toolsFor(session, roomId, current.poll, false));
    },
  };
}

/** The form that starts a poll. */
function pollForm(session, roomId) {
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
  const duration = h("select", {}, DURATIONS.map((s) => h("option", { value: String(s), text: s ? countdown(s) : t("poll.noDuration") })));
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
    { class: "card", "aria-label": t("poll.newPoll"), onsubmit, hidden: true },
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
