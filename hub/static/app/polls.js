/**
 * Polls and elections of a room: each open poll as a ballot (a group named by its question, one
 * radio or checkbox per option with the option's profile when it has one, and "Vote"), results
 * as the poll's `show` allows, closed polls with their results, and for those who run polls the
 * form that starts one ("Poll question", "Option 1" …, "Add option", "Start poll"), "Close poll"
 * and the CSV download. The lobby's award polls are left to its Awards section (awards.js),
 * which shows their ballots with these cards: one place to vote.
 */

import { button, h, keyed, replace, setText, uniqueId } from "./dom.js";
import { profileNode, profileOf } from "./profiles.js";
import { awardPollIds, moderates, rank, results } from "./roomstate.js";
import { countdown, t } from "./strings.js";
import { watchAll } from "./store.js";
import { countdownIn } from "./ticker.js";


/** Whether the person may start and close polls here (organizers only, in the lobby). */
export function runsPolls(room) {
  return room.kind === "lobby" ? rank(room.role) >= rank("organizer") : moderates(room);
}

export function mountPolls(container, session, roomId) {
  const empty = h("p", { class: "empty", text: t("poll.none") });
  const open = h("div");
  const form = h("div"); // the staff's form that starts a poll, loaded for them alone
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
    if (runsPolls(room) && !form.firstChild) import("./staff.js").then((staff) => form.firstChild || form.append(staff.pollForm(session, roomId)));
    const awards = awardPollIds(room);
    const openPolls = [...room.polls.values()].filter((view) => !awards.has(view.poll.id));
    const closedPolls = room.closedPolls.filter((view) => !awards.has(view.poll.id)).toReversed();
    keyed(open, cards, openPolls, id, (view) => ballot(session, roomId, view), room);
    keyed(closed, closedCards, closedPolls, id, (view) => resultCard(session, roomId, view), room);
    closedSection.hidden = !closedPolls.length;
    empty.hidden = openPolls.length > 0 || closedPolls.length > 0;
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
      return h("div", { class: "result" }, h("span", { dir: "auto", text: option }), h("span", { class: "hint", text: t("poll.count", { count, percent }) }), h("progress", { max: "100", value: String(percent), "aria-hidden": "true" }));
    }),
    h("p", { class: "hint", text: t("poll.voters", { count: view.voters ?? 0 }) }),
  );
}

/** The tools of a poll's card for those who run polls: close it (while open), download it. */
export function toolsFor(session, roomId, poll, isOpen) {
  return [isOpen && button(t("poll.close"), () => session.act("poll.close", { room: roomId, poll: poll.id })), button(t("poll.csv"), () => session.downloadCsv(roomId, poll.id))];
}

/** An open poll's card: `{node, update(view, room)}`, the ballot (a group named by the question)
 * with its rules, the person's vote, the countdown, the results as `show` allows and the tools
 * of those who run polls. */
export function ballot(session, roomId, view) {
  const poll = view.poll;
  const multi = poll.multi === true || poll.multi > 1;
  const name = uniqueId("poll");
  const inputs = poll.options.map((_, index) => h("input", { type: multi ? "checkbox" : "radio", name, value: String(index) }));
  const vote = h("button", { type: "submit", class: "primary" });
  const mine = h("p", { class: "hint" });
  const deadline = h("p", { class: "hint" });
  const resultSlot = h("div"); // not a live region: tallies change up to 4 times a second
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
    h("legend", { dir: "auto", text: poll.question }),
    h("p", { class: "hint", text: rules(poll) }),
    inputs.map((input, index) => choice(input, poll.options[index], profileOf(poll, index))),
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

/** An option of a ballot: its control and text, and below them its profile, which describes
 * the control (its name stays the option's text). */
function choice(input, option, profile) {
  const about = profileNode(option, profile, profile && uniqueId("profile"));
  if (about) input.setAttribute("aria-describedby", about.id);
  return h("div", { class: "choice-row" }, h("label", { class: "choice" }, input, h("span", { dir: "auto", text: option })), about);
}

function resultCard(session, roomId, view) {
  const body = h("div");
  const tools = h("div", { class: "tools" });
  const node = h("article", { class: "poll card", "aria-label": view.poll.question }, h("h4", { dir: "auto", text: view.poll.question }), h("p", { class: "hint", text: t("poll.closedLabel") }), body, tools);
  return {
    node,
    update(current, room) {
      replace(body, resultsNode(current));
      replace(tools, runsPolls(room) && toolsFor(session, roomId, current.poll, false));
    },
  };
}
