/**
 * The results moment: when a poll of the lobby closes (its closing stored `poll` event, which
 * every lobby member gets at once), every screen shows its result, in the lobby and in any room:
 * a region above the page, announced through the app's live region and highlighted, that takes
 * nobody's focus (someone typing keeps typing). It shows the winner(s) first with their
 * profile, then the tally as bars with counts and percentages and the number of voters; with
 * counts hidden (`show: "never"`) only that the vote is closed. Someone who arrives later sees
 * the newest closed lobby poll's result the same way, without the highlight. "Close the
 * results" dismisses a result for good in this browser.
 */

import { button, h, replace, setText, uniqueId } from "./dom.js";
import { profileNode, profileOf } from "./profiles.js";
import { results, winners } from "./roomstate.js";
import { currentLanguage, listOf, percent, t } from "./strings.js";
import { watchAll } from "./store.js";

const DISMISSED_KEPT = 50;

/** The tally of a poll's view whose counts are visible: one row per option, most votes first,
 * each with its count, percentage and bar; then the number of voters. */
export function tallyNode(view) {
  const rows = results(view).toSorted((a, b) => b.count - a.count || a.index - b.index);
  return h(
    "div",
    { class: "results" },
    rows.map(({ option, count, share }) =>
      h(
        "div",
        { class: "result" },
        h("span", { dir: "auto", text: option }),
        h("span", { class: "hint", text: t("results.count", { count, percent: percent(share) }) }),
        h("progress", { max: "1000", value: String(Math.round(share * 1000)), "aria-hidden": "true" }),
      ),
    ),
    h("p", { class: "hint", text: t("poll.voters", { count: view.voters ?? 0 }) }),
  );
}

/** What a closed poll's view came to: the winner(s) with their profiles and the tally; or that
 * nobody voted; or, its counts hidden, that the vote is closed. */
export function outcomeNode(view) {
  const won = winners(view);
  if (won === null) return h("p", { class: "outcome-closed", text: t("results.closed") });
  if (!won.length) return [h("p", { text: t("results.nobody") }), tallyNode(view)];
  return [
    h(
      "div",
      { class: "winners" },
      h("p", { class: "winners-label", text: t("results.winner", { count: won.length }) }),
      h("ul", { class: "winner-list" }, won.map(({ option, index }) => h("li", { class: "winner" }, h("p", { class: "winner-name", dir: "auto", text: option }), profileNode(option, profileOf(view.poll, index))))),
    ),
    tallyNode(view),
  ];
}

/** The sentence screen readers hear when a result comes in. */
function announcement(view) {
  const won = winners(view);
  const question = view.poll.question;
  if (!won?.length) return t("poll.closedAnnounce", { question });
  return t("results.announced", { count: won.length, question, names: listOf(won.map((row) => row.option)) });
}

/** The poll ids a person closed the results of, kept in the browser (null: storage denied). */
function dismissedStore(user) {
  const key = `livehub.results.${user}`;
  let ids = [];
  try {
    ids = JSON.parse(localStorage.getItem(key) || "[]");
  } catch {
    /* storage denied or spoilt: nothing dismissed yet */
  }
  const dismissed = new Set(Array.isArray(ids) ? ids : []);
  return {
    has: (id) => dismissed.has(id),
    add(id) {
      dismissed.add(id);
      try {
        localStorage.setItem(key, JSON.stringify([...dismissed].slice(-DISMISSED_KEPT)));
      } catch {
        /* storage denied: dismissed for this page */
      }
    },
  };
}

/** Whether the person is typing in a text control (a result then never scrolls the page). */
function typing() {
  const active = document.activeElement;
  return Boolean(active?.isContentEditable || active?.matches?.("textarea, select, input:not([type=checkbox], [type=radio], [type=button], [type=submit])"));
}

/** Show the lobby's results panel for `session` above the page, from now until the returned
 * function removes it (a sign-out). */
export function followResults(session) {
  const lobby = session.lobby;
  if (!lobby) return () => {};
  const dismissed = dismissedStore(session.hub.user.id);
  const headingId = uniqueId("results");
  const heading = h("h2", { id: headingId });
  const body = h("div", { class: "results-body" });
  const close = button("", () => {
    dismissed.add(drawn.reveal.poll);
    const hadFocus = panel.contains(document.activeElement);
    panel.hidden = true;
    if (hadFocus) document.getElementById("main")?.focus({ preventScroll: true });
  }, { class: "small" });
  const panel = h("section", { id: "results-panel", class: "results-panel", "aria-labelledby": headingId, hidden: true }, h("div", { class: "results-head" }, heading, close), body);
  document.getElementById("results-panel")?.remove(); // a previous sign-in's
  document.getElementById("main")?.before(panel);
  let drawn = { reveal: null, language: null };

  const draw = () => {
    const room = session.room(lobby);
    const reveal = room?.reveal;
    const view = reveal && room.closedPolls.find((closed) => closed.poll.id === reveal.poll);
    if (!view || dismissed.has(reveal.poll)) {
      panel.hidden = true;
      return;
    }
    if (drawn.reveal === reveal && drawn.language === currentLanguage() && !panel.hidden) return;
    const fresh = drawn.reveal !== reveal;
    drawn = { reveal, language: currentLanguage() };
    setText(heading, t("results.title", { question: view.poll.question }));
    setText(close, t("results.dismiss"));
    replace(body, outcomeNode(view));
    panel.hidden = false;
    if (!fresh) return;
    panel.classList.remove("moment");
    if (!reveal.moment) return;
    void panel.offsetWidth; // a new result starts the highlight again
    panel.classList.add("moment");
    session.announce(announcement(view));
    if (!typing() && panel.getBoundingClientRect().bottom < 0) panel.scrollIntoView({ block: "start", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
  };
  const stop = watchAll(session.store, [`polls:${lobby}`, "language"], draw);
  return () => {
    stop();
    panel.remove();
  };
}
