/**
 * Polls and elections of a room: each open poll as a ballot (a group named by its question,
 * one radio or checkbox per option, and "Vote"), results as the poll's `show` allows, closed
 * polls with their results, and for moderators the form that starts a poll, "Close poll" and
 * the CSV download.
 */

import { field, h, replace, setAttr, setText, uniqueId } from "./dom.js";
import { moderates, rank, results } from "./roomstate.js";
import { countdown, t } from "./strings.js";
import { watchAll } from "./store.js";
import { countdownIn } from "./ticker.js";

const MAX_OPTIONS = 20;
const DURATIONS = [0, 30, 60, 120, 300, 600, 1800];

/** Whether the person may start and close polls here (organizers only in the lobby). */
function mayRunPolls(room) {
  return room.kind === "lobby" ? rank(room.role) >= rank("organizer") : moderates(room);
}

export function mountPolls(container, session, roomId) {
  const openList = h("div", { class: "poll-list" });
  const closedList = h("div", { class: "poll-list" });
  const closedSection = h("section", { class: "closed-polls", hidden: true }, h("h3", { text: t("poll.results") }), closedList);
  const empty = h("p", { class: "empty", text: t("poll.none") });
  const formSlot = h("div");
  container.append(empty, openList, formSlot, closedSection);
  const cards = new Map();
  const closedCards = new Map();
  let form = null;

  const render = () => {
    const room = session.room(roomId);
    if (!room) return;
    if (mayRunPolls(room) && !form) {
      form = createForm(session, roomId);
      formSlot.append(form);
    } else if (!mayRunPolls(room) && form) {
      form.remove();
      form = null;
    }
    syncCards(openList, cards, Array.from(room.polls.values()), (view) => openCard(session, roomId, view), (card, view) => card.update(view, room));
    syncCards(closedList, closedCards, room.closedPolls.slice().reverse(), (view) => closedCard(session, roomId, view), (card, view) => card.update(view, room));
    closedSection.hidden = room.closedPolls.length === 0;
    empty.hidden = room.polls.size > 0 || room.closedPolls.length > 0;
  };
  const stop = watchAll(session.store, [`polls:${roomId}`, `room:${roomId}`], render);
  render();
  return { unmount: stop };
}

/** Keep one card per poll id, in the given order, creating and updating as needed. */
function syncCards(list, cards, views, create, update) {
  const wanted = new Set(views.map((view) => view.poll.id));
  for (const [id, card] of cards) {
    if (!wanted.has(id)) {
      card.node.remove();
      cards.delete(id);
    }
  }
  let previous = null;
  for (const view of views) {
    let card = cards.get(view.poll.id);
    if (!card) {
      card = create(view);
      cards.set(view.poll.id, card);
    }
    update(card, view);
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (expected !== card.node) list.insertBefore(card.node, expected);
    previous = card.node;
  }
}

function rules(poll) {
  const parts = [];
  if (poll.multi === true) parts.push(t("poll.chooseAny"));
  else if (typeof poll.multi === "number" && poll.multi > 1) parts.push(t("poll.chooseUpTo", { count: poll.multi }));
  else parts.push(t("poll.chooseOne"));
  if (poll.allow_change === false) parts.push(t("poll.oneVote"));
  if (poll.show === "closed") parts.push(t("poll.hiddenUntilClosed"));
  if (poll.show === "never") parts.push(t("poll.moderatorsOnly"));
  return parts.join(" · ");
}

function resultsNode(view) {
  const rows = results(view);
  if (!rows) {
    const hidden = view.poll.show === "never" ? t("poll.resultsModerators") : t("poll.resultsWhenClosed");
    return h("p", { class: "hint", text: hidden });
  }
  return h(
    "div",
    { class: "results" },
    rows.map((row) => {
      const percent = Math.round(row.share * 100);
      const bar = h("progress", { max: "100", value: String(percent), "aria-hidden": "true" });
      return h(
        "div",
        { class: "result" },
        h("span", { class: "result-option", text: row.option }),
        h("span", { class: "result-count", text: t("poll.count", { count: row.count, percent }) }),
        bar,
      );
    }),
    h("p", { class: "hint", text: t("poll.voters", { count: view.voters ?? 0 }) }),
  );
}

function openCard(session, roomId, view) {
  const poll = view.poll;
  const multi = poll.multi === true || (typeof poll.multi === "number" && poll.multi > 1);
  const name = uniqueId("poll");
  const inputs = poll.options.map((option, index) => {
    const input = h("input", { type: multi ? "checkbox" : "radio", name, value: String(index) });
    return { input, label: h("label", { class: "choice" }, input, h("span", { text: option })) };
  });
  const voteButton = h("button", { type: "submit", class: "primary", text: t("poll.vote") });
  const mineNode = h("p", { class: "hint mine" });
  const deadline = h("p", { class: "hint deadline" });
  const resultSlot = h("div", { "aria-live": "polite" });
  const tools = h("div", { class: "tools" });
  const legend = h("legend", { text: poll.question });
  const fieldset = h(
    "fieldset",
    { class: "ballot" },
    legend,
    h("p", { class: "hint", text: rules(poll) }),
    inputs.map((item) => item.label),
    voteButton,
    mineNode,
  );
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const chosen = inputs.filter((item) => item.input.checked).map((item) => Number(item.input.value));
      if (!chosen.length) {
        session.toast(t("poll.chooseFirst"), "error");
        return;
      }
      if (typeof poll.multi === "number" && poll.multi > 1 && chosen.length > poll.multi) {
        session.toast(t("poll.tooMany", { count: poll.multi }), "error");
        return;
      }
      voteButton.disabled = true;
      await session.vote(roomId, poll.id, multi ? chosen : chosen[0]);
      voteButton.disabled = false;
      session.touchRoom(roomId, ["polls"]);
    },
  }, fieldset);
  const node = h("article", { class: "poll card" }, form, deadline, resultSlot, tools);
  let toolsFor = null;
  let lastResults = "";
  return {
    node,
    update(current, room) {
      const mine = current.mine;
      const voted = mine !== null && mine !== undefined;
      const locked = voted && current.poll.allow_change === false;
      const chosen = new Set(Array.isArray(mine) ? mine : voted ? [mine] : []);
      for (const item of inputs) {
        if (voted && !form.contains(document.activeElement)) item.input.checked = chosen.has(Number(item.input.value));
        item.input.disabled = locked;
      }
      voteButton.disabled = locked;
      setText(voteButton, voted && !locked ? t("poll.changeVote") : t("poll.vote"));
      setText(mineNode, voted ? (locked ? t("poll.votedFinal") : t("poll.votedChange")) : "");
      if (current.poll.closes_at) {
        countdownIn(deadline, current.poll.closes_at, (left) => t("poll.closesIn", { time: countdown(left) }));
      }
      const key = JSON.stringify([current.counts, current.voters]);
      if (key !== lastResults) {
        lastResults = key;
        replace(resultSlot, resultsNode(current));
      }
      const manage = mayRunPolls(room);
      if (manage !== toolsFor) {
        toolsFor = manage;
        replace(
          tools,
          manage && [
            h("button", {
              type: "button",
              text: t("poll.close"),
              onclick: () => session.act("poll.close", { room: roomId, poll: poll.id }),
            }),
            h("button", {
              type: "button",
              text: t("poll.csv"),
              onclick: () => session.downloadCsv(roomId, poll.id),
            }),
          ],
        );
      }
    },
  };
}

function closedCard(session, roomId, view) {
  const title = h("h4", { text: view.poll.question });
  const body = h("div");
  const tools = h("div", { class: "tools" });
  const node = h("article", { class: "poll card closed", "aria-label": view.poll.question }, title, h("p", { class: "hint", text: t("poll.closedLabel") }), body, tools);
  let toolsFor = null;
  return {
    node,
    update(current, room) {
      replace(body, resultsNode(current));
      const manage = mayRunPolls(room);
      if (manage !== toolsFor) {
        toolsFor = manage;
        replace(tools, manage && h("button", { type: "button", text: t("poll.csv"), onclick: () => session.downloadCsv(roomId, current.poll.id) }));
      }
    },
  };
}

function createForm(session, roomId) {
  const question = h("input", { type: "text", required: true, maxlength: "300" });
  const options = h("div", { class: "options" });
  const addButton = h("button", { type: "button", text: t("poll.addOption") });
  const multi = h("input", { type: "checkbox" });
  const anonymous = h("input", { type: "checkbox", checked: true });
  const change = h("input", { type: "checkbox", checked: true });
  const guests = h("input", { type: "checkbox", checked: true });
  const show = h(
    "select",
    {},
    h("option", { value: "live", text: t("poll.showLive") }),
    h("option", { value: "closed", text: t("poll.showClosed") }),
    h("option", { value: "never", text: t("poll.showNever") }),
  );
  const duration = h(
    "select",
    {},
    DURATIONS.map((seconds) => h("option", { value: String(seconds), text: seconds ? t("poll.duration", { time: countdown(seconds) }) : t("poll.noDuration") })),
  );
  const start = h("button", { type: "submit", class: "primary", text: t("poll.start") });

  const renumber = () => {
    Array.from(options.children).forEach((row, index) => {
      const label = t("poll.option", { n: index + 1 });
      setText(row.querySelector("label"), label);
      const remove = row.querySelector("button");
      setAttr(remove, "aria-label", t("poll.removeOption", { n: index + 1 }));
      remove.hidden = options.children.length <= 2;
    });
    addButton.disabled = options.children.length >= MAX_OPTIONS;
  };
  const addOption = (focus) => {
    const input = h("input", { type: "text", required: true, maxlength: "100" });
    const row = h(
      "div",
      { class: "option-row" },
      field("", input).wrap,
      h("button", {
        type: "button",
        class: "icon-button",
        text: "×",
        onclick: () => {
          row.remove();
          renumber();
        },
      }),
    );
    options.append(row);
    renumber();
    if (focus) input.focus();
  };
  addOption(false);
  addOption(false);
  addButton.addEventListener("click", () => addOption(true));

  const form = h(
    "form",
    {
      class: "poll-form card",
      "aria-label": t("poll.newPoll"),
      onsubmit: async (event) => {
        event.preventDefault();
        const texts = Array.from(options.querySelectorAll("input")).map((input) => input.value.trim());
        const fields = {
          room: roomId,
          question: question.value.trim(),
          options: texts,
          multi: multi.checked,
          anonymous: anonymous.checked,
          show: show.value,
          allow_change: change.checked,
          guests: guests.checked,
        };
        if (Number(duration.value)) fields.duration = Number(duration.value);
        start.disabled = true;
        const ok = await session.act("poll.create", fields, t("poll.started"));
        start.disabled = false;
        if (ok) {
          question.value = "";
          options.replaceChildren();
          addOption(false);
          addOption(false);
        }
      },
    },
    h("h3", { text: t("poll.newPoll") }),
    field(t("poll.question"), question).wrap,
    options,
    addButton,
    h(
      "div",
      { class: "checks" },
      h("label", { class: "choice" }, multi, h("span", { text: t("poll.multi") })),
      h("label", { class: "choice" }, anonymous, h("span", { text: t("poll.anonymous") })),
      h("label", { class: "choice" }, change, h("span", { text: t("poll.allowChange") })),
      h("label", { class: "choice" }, guests, h("span", { text: t("poll.guests") })),
    ),
    field(t("poll.show"), show).wrap,
    field(t("poll.closesAfter"), duration).wrap,
    start,
  );
  return form;
}
