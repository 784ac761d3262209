/**
 * A room's questions: the form ("Question", "Ask"), open questions sorted by votes with
 * "Upvote", answered and dismissed ones marked, and for moderators "Mark answered" and "Dismiss".
 */

import { button, h, keyed, replace, setText } from "./dom.js";
import { moderates, sortedQuestions } from "./roomstate.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

export function mountQa(container, session, roomId) {
  const input = h("textarea", { rows: "2", maxlength: "500", "aria-label": t("qa.question"), placeholder: t("qa.placeholder"), dir: "auto" });
  const ask = h("button", { type: "submit", class: "primary", text: t("qa.ask") });
  const onsubmit = async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    ask.disabled = true;
    if (await session.act("qa.ask", { room: roomId, text }, t("qa.asked"))) input.value = "";
    ask.disabled = false;
  };
  const list = h("ol", { class: "qa-list", "aria-label": t("qa.list") });
  const empty = h("p", { class: "empty", text: t("qa.none") });
  container.append(h("form", { class: "qa-form", onsubmit }, input, ask), empty, list);
  const items = new Map();
  return watchAll(session.store, [`qa:${roomId}`, `room:${roomId}`], () => {
    const room = session.room(roomId);
    if (!room) return;
    const questions = sortedQuestions(room);
    empty.hidden = questions.length > 0;
    keyed(list, items, questions, (q) => q.id, (q) => question(session, roomId, q), room);
  });
}

function question(session, roomId, { id, text, name }) {
  const votes = h("span", { class: "votes" });
  const upvote = button("▲", () => session.upvote(roomId, id), { class: "upvote", "aria-label": t("qa.upvote") });
  const mark = h("span", { class: "qa-state" });
  const tools = h("div", { class: "tools" });
  const body = h("div", { class: "qa-body" }, h("p", { class: "qa-text", dir: "auto", text }), h("p", { class: "hint" }, h("span", { dir: "auto", text: name }), " ", mark), tools);
  const node = h("li", { class: "question card" }, h("div", { class: "qa-vote" }, upvote, votes), body);
  const act = (op) => () => session.act(op, { room: roomId, question: id });
  let drawn = null;
  return {
    node,
    update(current, room) {
      const open = current.state === "open";
      const voted = room.voted.has(id);
      setText(votes, t("qa.votes", { count: current.votes }));
      upvote.disabled = !open || voted;
      upvote.setAttribute("aria-pressed", String(voted));
      node.classList.toggle("done", !open);
      setText(mark, open ? "" : t(current.state === "answered" ? "qa.answered" : "qa.dismissed"));
      const manage = moderates(room) && open;
      if (manage !== drawn) {
        drawn = manage;
        replace(tools, manage && [button(t("qa.markAnswered"), act("qa.answer"), { class: "small" }), button(t("qa.dismiss"), act("qa.dismiss"), { class: "small" })]);
      }
    },
  };
}
