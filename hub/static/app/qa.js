/**
 * A room's questions: the form ("Question", "Ask"), open questions sorted by votes with
 * "Upvote", answered and dismissed ones marked, and for moderators "Mark answered" and
 * "Dismiss".
 */

import { h, replace, setText } from "./dom.js";
import { moderates, sortedQuestions } from "./roomstate.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

export function mountQa(container, session, roomId) {
  const input = h("textarea", { rows: "2", maxlength: "500", "aria-label": t("qa.question"), placeholder: t("qa.placeholder") });
  const ask = h("button", { type: "submit", class: "primary", text: t("qa.ask") });
  const form = h(
    "form",
    {
      class: "qa-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const text = input.value.trim();
        if (!text) return;
        ask.disabled = true;
        const ok = await session.act("qa.ask", { room: roomId, text }, t("qa.asked"));
        ask.disabled = false;
        if (ok) input.value = "";
      },
    },
    input,
    ask,
  );
  const list = h("ol", { class: "qa-list", "aria-label": t("qa.list") });
  const empty = h("p", { class: "empty", text: t("qa.none") });
  container.append(form, empty, list);
  const items = new Map();

  const render = () => {
    const room = session.room(roomId);
    if (!room) return;
    const questions = sortedQuestions(room);
    empty.hidden = questions.length > 0;
    const wanted = new Set(questions.map((q) => q.id));
    for (const [id, item] of items) {
      if (!wanted.has(id)) {
        item.node.remove();
        items.delete(id);
      }
    }
    let cursor = list.firstElementChild;
    for (const question of questions) {
      let item = items.get(question.id);
      if (!item) {
        item = questionItem(session, roomId, question);
        items.set(question.id, item);
      }
      item.update(question, room);
      if (item.node !== cursor) list.insertBefore(item.node, cursor);
      else cursor = cursor.nextElementSibling;
    }
  };
  const stop = watchAll(session.store, [`qa:${roomId}`, `room:${roomId}`], render);
  render();
  return { unmount: stop };
}

function questionItem(session, roomId, question) {
  const votes = h("span", { class: "votes" });
  const upvote = h("button", {
    type: "button",
    class: "upvote",
    "aria-label": t("qa.upvote"),
    text: "▲",
    onclick: () => session.upvote(roomId, question.id),
  });
  const mark = h("span", { class: "qa-state" });
  const tools = h("div", { class: "tools" });
  const node = h(
    "li",
    { class: "question card" },
    h("div", { class: "qa-vote" }, upvote, votes),
    h(
      "div",
      { class: "qa-body" },
      h("p", { class: "qa-text", dir: "auto", text: question.text }),
      h("p", { class: "hint" }, h("span", { text: question.name }), " ", mark),
      tools,
    ),
  );
  let toolsKey = null;
  return {
    node,
    update(current, room) {
      setText(votes, t("qa.votes", { count: current.votes }));
      const open = current.state === "open";
      const voted = room.voted.has(current.id);
      upvote.disabled = !open || voted;
      upvote.setAttribute("aria-pressed", voted ? "true" : "false");
      node.classList.toggle("done", !open);
      setText(mark, open ? "" : current.state === "answered" ? t("qa.answered") : t("qa.dismissed"));
      const key = `${moderates(room)}:${current.state}`;
      if (key !== toolsKey) {
        toolsKey = key;
        replace(
          tools,
          moderates(room) &&
            open && [
              h("button", {
                type: "button",
                class: "small",
                text: t("qa.markAnswered"),
                onclick: () => session.act("qa.answer", { room: roomId, question: current.id }),
              }),
              h("button", {
                type: "button",
                class: "small",
                text: t("qa.dismiss"),
                onclick: () => session.act("qa.dismiss", { room: roomId, question: current.id }),
              }),
            ],
        );
      }
    },
  };
}
