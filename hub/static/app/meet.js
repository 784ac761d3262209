/**
 * "Meet someone": the lobby's card (the "Meet someone" button with optional interests, "Cancel"
 * and a live "Waiting for a partner…" while in the queue, and after a meeting "Share my contact
 * card" and the cards received), and the bar above a meeting the queue made (who one meets, the
 * countdown, "Extend", "Leave"). The hub pairs people; the app follows its events: on
 * `match.found` it goes into the meeting's room, on `match.ended` back to the lobby.
 */

import { button, field, h, replace, setAttr, setText } from "./dom.js";
import { countdown, t } from "./strings.js";
import { watchAll } from "./store.js";
import { countdownIn } from "./ticker.js";

const TOPIC = "meet";
// One state per session: the hub's events are followed from the first mount on.
const states = new WeakMap();

const names = (people) => people.map((person) => person.name || person.user).join(", ");

/** The meet state of `session` (made, with its event listeners and the meeting bar, once). */
function meetOf(session) {
  let meet = states.get(session);
  if (meet) return meet;
  meet = { phase: "idle", meeting: null, requestedBy: null, asked: false, extended: false, shared: false, cards: null, busy: false };
  states.set(session, meet);
  const hub = session.hub;
  const touch = () => session.store.touch(TOPIC);
  const current = (ev) => meet.meeting && meet.meeting.room === ev.room;
  hub.on("match.found", (ev) => {
    Object.assign(meet, { phase: "meeting", meeting: { room: ev.room, with: ev.with, ends_at: ev.ends_at, minutes: ev.minutes }, requestedBy: null, asked: false, extended: false, shared: false, cards: null });
    touch();
    session.announce(t("meet.found", { names: names(ev.with) }));
    session.navigate(ev.room);
  });
  hub.on("match.left", () => {
    meet.phase = "idle";
    touch();
    session.toast(t("meet.queueClosed"));
  });
  hub.on("match.extend_requested", (ev) => {
    if (!current(ev)) return;
    meet.requestedBy = meet.meeting.with.find((person) => person.user === ev.by)?.name || ev.by;
    touch(); // the bar's note says it (a live region)
  });
  hub.on("match.extended", (ev) => {
    if (!current(ev)) return;
    Object.assign(meet.meeting, { ends_at: ev.ends_at });
    meet.extended = true;
    touch(); // the bar's note says it (a live region)
  });
  hub.on("match.member_left", (ev) => {
    if (!current(ev)) return;
    const gone = meet.meeting.with.find((person) => person.user === ev.user);
    meet.meeting.with = meet.meeting.with.filter((person) => person.user !== ev.user);
    touch();
    session.announce(t("meet.memberLeft", { name: gone?.name || ev.user }));
  });
  hub.on("match.ended", (ev) => {
    if (!current(ev)) return;
    meet.phase = "ended";
    touch();
    session.toast(t(`meet.ended.${ev.reason}`, {}, t("meet.ended.time")));
    if (session.current === ev.room) session.navigate(null);
  });
  hub.on("match.cards", (ev) => {
    if (!current(ev)) return;
    meet.cards = ev.cards;
    touch();
    session.announce(t("meet.cardsArrived"));
  });
  // A page loaded while its person waits or meets finds its place again.
  hub.request("match.status").then(
    ({ queued, meeting }) => {
      if (meet.phase !== "idle") return;
      if (meeting) Object.assign(meet, { phase: "meeting", meeting, extended: meeting.extended });
      else if (queued) meet.phase = "waiting";
      touch();
    },
    () => {},
  );
  mountMeetingBar(session, meet);
  return meet;
}

/** Follow the match queue's events for `session` from its start, so that a page loaded in a
 * meeting's room (a reload) gets its bar without passing through the lobby. */
export function followMeetings(session) {
  meetOf(session);
}

/** The lobby's "Meet someone" card, inside `container`; returns the function that removes it. */
export function mountMeet(container, session) {
  const meet = meetOf(session);
  const body = h("div");
  const card = h("section", { class: "card meet", "aria-labelledby": "meet-title" }, h("h2", { id: "meet-title", text: t("meet.title") }), body);
  container.append(card);
  const interests = h("input", { type: "text", maxlength: "400", autocomplete: "off" });
  const status = h("p", { class: "hint", "aria-live": "polite" });

  const join = async (event) => {
    event.preventDefault();
    const list = interests.value.split(",").map((word) => word.trim()).filter(Boolean).slice(0, 10);
    meet.busy = true;
    session.store.touch(TOPIC);
    const ok = await session.act("match.join", { interests: list });
    meet.busy = false;
    if (ok) Object.assign(meet, { phase: "waiting", meeting: null, cards: null });
    session.store.touch(TOPIC);
  };
  const cancel = async () => {
    await session.act("match.leave", {});
    if (meet.phase === "waiting") meet.phase = "idle";
    session.store.touch(TOPIC);
  };

  const stop = watchAll(session.store, [TOPIC, "event"], () => {
    if (session.eventClosed && meet.phase !== "ended") {
      setText(status, "");
      return replace(body, h("p", { class: "hint", text: t("meet.closed") }));
    }
    if (meet.phase === "waiting") {
      setText(status, t("meet.waiting"));
      return replace(body, status, button(t("meet.cancel"), cancel));
    }
    setText(status, "");
    const form = h(
      "form",
      { class: "inline-form", onsubmit: join },
      field(t("meet.interests"), interests, t("meet.interestsHint")),
      h("button", { type: "submit", class: "primary", text: t("meet.button"), disabled: meet.busy }),
    );
    const parts = [h("p", { class: "hint", text: t("meet.intro") })];
    if (meet.phase === "meeting" && meet.meeting) {
      parts.push(h("p", {}, t("meet.inMeeting", { names: names(meet.meeting.with) }), " ", button(t("meet.return"), () => session.navigate(meet.meeting.room), { class: "small" })));
    } else {
      if (meet.phase === "ended" && meet.meeting) parts.push(mountCards(session, meet));
      parts.push(form, status);
    }
    replace(body, parts);
  });
  return () => {
    stop();
    card.remove();
  };
}

/** After a meeting: "Share my contact card" (until every member shared) and the cards received. */
function mountCards(session, meet) {
  const meeting = meet.meeting;
  const box = h("div", { class: "meet-cards" }, h("p", { text: t("meet.endedWith", { names: names(meeting.with) }) }));
  if (meet.cards) {
    box.append(
      h("h3", { text: t("meet.cardsTitle") }),
      h(
        "ul",
        { class: "meet-card-list" },
        meet.cards.map((card) =>
          h(
            "li",
            { class: "meet-card" },
            h("strong", { dir: "auto", text: card.name }),
            card.organisation && h("span", { dir: "auto", text: card.organisation }),
            card.email && h("span", { dir: "auto", text: card.email }),
            card.link && h("span", { dir: "auto", text: card.link }),
          ),
        ),
      ),
    );
    return box;
  }
  if (meet.shared) {
    box.append(h("p", { class: "hint", "aria-live": "polite", text: t("meet.sharedWaiting") }));
    return box;
  }
  const inputs = {
    name: h("input", { type: "text", maxlength: "64", value: session.hub.user.name || "", autocomplete: "name" }),
    organisation: h("input", { type: "text", maxlength: "100", autocomplete: "organization" }),
    email: h("input", { type: "email", maxlength: "200", autocomplete: "email" }),
    link: h("input", { type: "url", maxlength: "300", placeholder: "https://", autocomplete: "url" }),
  };
  const share = async (event) => {
    event.preventDefault();
    const card = {};
    for (const [key, input] of Object.entries(inputs)) if (input.value.trim()) card[key] = input.value.trim();
    const ok = await session.act("match.share", { room: meeting.room, card });
    if (!ok) return;
    meet.shared = true;
    session.store.touch(TOPIC);
  };
  box.append(
    h(
      "form",
      { class: "meet-share", onsubmit: share },
      h("p", { class: "hint", text: t("meet.shareHint") }),
      field(t("meet.cardName"), inputs.name),
      field(t("meet.cardOrganisation"), inputs.organisation),
      field(t("meet.cardEmail"), inputs.email),
      field(t("meet.cardLink"), inputs.link),
      h("button", { type: "submit", class: "primary", text: t("meet.share") }),
    ),
  );
  return box;
}

/** The bar above the page while the person is in their meeting's room. */
function mountMeetingBar(session, meet) {
  const who = h("strong");
  const left = h("span", { class: "meet-countdown", role: "timer", "aria-live": "off" });
  const note = h("span", { class: "hint", "aria-live": "polite" });
  const extend = button("", async () => {
    const ok = await session.act("match.extend", { room: meet.meeting.room });
    if (!ok) return;
    meet.asked = true;
    if (ok.extended) {
      meet.extended = true;
      meet.meeting.ends_at = ok.ends_at;
    }
    session.store.touch(TOPIC);
  });
  const leave = button("", () => session.act("match.end", { room: meet.meeting.room }), { class: "danger" });
  const bar = h("section", { id: "meet-bar", class: "meet-bar", hidden: true }, who, left, note, extend, leave);
  document.getElementById("meet-bar")?.remove(); // a previous sign-in's
  document.getElementById("main")?.before(bar);
  // Outside the views: drawn again in another language by itself.
  watchAll(session.store, [TOPIC, "view", "language"], () => {
    const meeting = meet.meeting;
    bar.hidden = !(meet.phase === "meeting" && meeting && session.current === meeting.room);
    if (bar.hidden) return;
    setAttr(bar, "aria-label", t("meet.barLabel"));
    setText(leave, t("meet.leave"));
    setText(who, t("meet.with", { names: names(meeting.with) }));
    countdownIn(left, meeting.ends_at, (seconds) => t("meet.endsIn", { time: countdown(seconds) }));
    setText(extend, t("meet.extend", { count: meeting.minutes }));
    extend.disabled = meet.asked || meet.extended;
    setText(note, meet.extended ? t("meet.extended") : meet.asked ? t("meet.extendWaiting") : meet.requestedBy ? t("meet.extendAsked", { name: meet.requestedBy }) : "");
  });
}
