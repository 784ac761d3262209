/**
 * The lobby's Awards section, from the lobby's `awards` (protocol.md, "Polls"): each award poll
 * the organizers declared, with a line saying where it stands ("Voting opens soon", "Voting is
 * open", "Results"): before the vote its candidates with their profiles (and for organizers
 * "Open the vote"), during the vote its ballot (the one place to vote on it), after it the
 * result; then the partnerships of the year as cards (title, members, text, link). Hidden while
 * there is nothing to show.
 */

import { button, h, keyed, replace, setText } from "./dom.js";
import { ballot, runsPolls, toolsFor } from "./polls.js";
import { profileNode, profileOf, webAddress } from "./profiles.js";
import { outcomeNode } from "./results.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

/** The Awards section's content in `container`, shown or hidden with `section`. */
export function mountAwards(section, container, session, roomId) {
  const polls = h("div", { class: "awards" });
  const partnerships = h("div");
  container.append(polls, partnerships);
  const items = new Map();
  let drawnAwards = null;
  return watchAll(session.store, [`awards:${roomId}`, `polls:${roomId}`, `room:${roomId}`], () => {
    const room = session.room(roomId);
    if (!room) return;
    const { awards } = room;
    section.hidden = !awards.polls.length && !awards.partnerships.length;
    keyed(polls, items, awards.polls, (award) => award.id, () => awardItem(session, roomId), room);
    if (awards === drawnAwards) return; // partnerships change with a new snapshot only
    drawnAwards = awards;
    replace(partnerships, awards.partnerships.length > 0 && [h("h3", { text: t("awards.partnerships") }), h("ul", { class: "partnership-cards" }, awards.partnerships.map(partnershipCard))]);
  });
}

/** Where an award poll stands: "declared", "open" or "closed", and its poll view when the
 * room has one (open: its ballot; closed: its result). */
function phaseOf(award, room) {
  const open = room.polls.get(award.id);
  if (open) return { phase: "open", view: open };
  const closed = room.closedPolls.find((view) => view.poll.id === award.id);
  if (closed) return { phase: "closed", view: closed };
  return { phase: ["open", "closed"].includes(award.state) ? award.state : "declared", view: null };
}

/** One award poll: its state line, then the card of its phase. */
function awardItem(session, roomId) {
  const state = h("p", { class: "award-state" });
  const slot = h("div");
  const node = h("div", { class: "award" }, state, slot);
  let drawn = {};
  let card = null;
  return {
    node,
    update(award, room) {
      const { phase, view } = phaseOf(award, room);
      const runs = runsPolls(room);
      node.dataset.phase = phase;
      setText(state, t(`awards.${phase}`));
      if (phase !== drawn.phase || Boolean(view) !== drawn.view || runs !== drawn.runs) {
        if (phase === "open" && view) card = ballot(session, roomId, view);
        else if (phase === "closed" && view) card = resultCard(session, roomId, view, runs);
        else card = candidatesCard(session, roomId, award, phase === "declared" && runs);
        replace(slot, card.node);
        drawn = { phase, view: Boolean(view), runs };
      }
      if (view) card.update?.(view, room);
    },
  };
}

/** A card of the candidates with their profiles, and "Open the vote" for organizers. */
function candidatesCard(session, roomId, award, opens) {
  const headingId = `award-${award.id}`;
  const open = async () => {
    openButton.disabled = true;
    const ok = await session.act("poll.open", { room: roomId, poll: award.id }, t("awards.opened"));
    if (!ok) openButton.disabled = false; // the poll's event draws the ballot
  };
  const openButton = opens && button(t("awards.openVote"), open, { class: "primary", "aria-label": t("awards.openVoteOn", { question: award.question }) });
  const candidates = award.options.map((option, index) => h("li", { class: "candidate" }, h("p", { class: "candidate-name", dir: "auto", text: option }), profileNode(option, profileOf(award, index))));
  return {
    node: h(
      "article",
      { class: "card award-card", "aria-labelledby": headingId },
      h("h3", { id: headingId, dir: "auto", text: award.question }),
      h("ul", { class: "candidates", "aria-label": t("awards.candidates") }, candidates),
      openButton,
    ),
  };
}

/** A closed award poll's card, named by its question: its outcome, and the CSV for organizers. */
function resultCard(session, roomId, view, runs) {
  return {
    node: h(
      "article",
      { class: "card award-card", "aria-label": view.poll.question },
      h("h3", { dir: "auto", text: view.poll.question }),
      outcomeNode(view),
      runs && h("div", { class: "tools" }, toolsFor(session, roomId, view.poll, false)),
    ),
  };
}

/** A partnership's card: its title, its members as a list, its text, and its link (an
 * `http:` or `https:` address only, in a new tab, without referrer or opener). */
function partnershipCard(partnership) {
  const members = Array.isArray(partnership.members) ? partnership.members.filter((member) => typeof member === "string") : [];
  const link = webAddress(partnership.link);
  return h(
    "li",
    { class: "partnership-card" },
    h("h4", { dir: "auto", text: partnership.title }),
    members.length > 0 && h("ul", { class: "partnership-members", "aria-label": t("awards.membersOf", { title: partnership.title }) }, members.map((member) => h("li", { dir: "auto", text: member }))),
    typeof partnership.text === "string" && partnership.text.trim() && h("p", { class: "partnership-text", dir: "auto", text: partnership.text }),
    link && h("a", { href: link, target: "_blank", rel: "noopener noreferrer", text: t("awards.website", { host: new URL(link).host }) }),
  );
}
