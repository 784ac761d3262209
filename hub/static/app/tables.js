/**
 * The lobby's lounge: the event's tables with their topic, seats taken and who sits there, kept
 * live by the hub's `tables` events; a "Join" button per table with a free seat sits the person
 * down (`table.sit`) and goes into the table's room. The hub taking the person out of a table
 * (`table.left`: the event closed, or they sat down from another connection) brings them back
 * to the lobby with its sentence.
 */

import { h, replace } from "./dom.js";
import { errorText } from "./session.js";
import { hubText, t } from "./strings.js";
import { watchAll } from "./store.js";

const tracked = new WeakSet();

/** Keep `session.state.tables` (the list, or null before the first) and whether the event is
 * over current from the hub's events, once per session; touches the store topic `tables`. */
function track(session) {
  if (tracked.has(session)) return;
  tracked.add(session);
  const { hub, state, store } = session;
  state.tables = state.tables ?? null;
  const set = (tables) => {
    if (Array.isArray(tables)) ((state.tables = tables), store.touch("tables"));
  };
  hub.on("joined", ({ reply }) => reply?.room?.kind === "lobby" && set(reply.snapshot?.tables));
  hub.on("tables", (ev) => set(ev.tables));
  hub.on("table.left", (ev) => {
    if (session.current !== ev.room) return;
    session.toast(hubText(ev) || t("tables.left"), "info");
    session.navigate(null);
  });
}

/** The lounge section of the lobby: `[section, stop]` (the section stays hidden while the event
 * has no tables). */
export function mountLounge(session) {
  track(session);
  const list = h("ul", { class: "room-cards table-cards" });
  const closed = h("p", { class: "hint", text: t("tables.closed"), hidden: true });
  const section = h("section", { class: "panel", "aria-labelledby": "lobby-lounge", hidden: true }, h("h2", { id: "lobby-lounge", text: t("tables.title") }), closed, list);
  const sitting = new Set(); // tables a sit is under way for: their button waits

  async function sit(table) {
    sitting.add(table.id);
    session.store.touch("tables");
    try {
      await session.hub.request("table.sit", { table: table.id });
      session.navigate(table.id);
    } catch (error) {
      session.toast(t("tables.sitFailed", { title: table.title, reason: errorText(error) }), "error");
    } finally {
      sitting.delete(table.id);
      session.store.touch("tables");
    }
  }

  function card(table) {
    const taken = Math.min(table.taken ?? table.occupants.length, table.seats);
    const full = taken >= table.seats;
    const names = table.occupants.map((person) => h("li", { dir: "auto", text: person.name }));
    let action;
    if (session.eventClosed) action = null;
    else if (full) action = h("span", { class: "badge table-full", text: t("tables.full") });
    else
      action = h("button", {
        type: "button",
        text: t("tables.join"),
        "aria-label": t("tables.joinLabel", { title: table.title }),
        disabled: sitting.has(table.id),
        onclick: () => sit(table),
      });
    return h(
      "li",
      { class: "room-card table-card", dataset: { table: table.id } },
      h("h3", { dir: "auto", text: table.title }),
      table.topic && h("p", { class: "hint", dir: "auto", text: table.topic }),
      h("p", { class: "table-seats", text: t("tables.taken", { taken, count: table.seats }) }),
      names.length ? h("ul", { class: "table-occupants", "aria-label": t("tables.occupants", { title: table.title }) }, names) : h("p", { class: "empty", text: t("tables.nobody") }),
      action,
    );
  }

  const stop = watchAll(session.store, ["tables", "event"], () => {
    const tables = session.state.tables;
    section.hidden = !tables || tables.length === 0;
    closed.hidden = !session.eventClosed;
    if (tables) replace(list, tables.map(card));
  });
  // The list may have changed while the person was away from the lobby.
  session.hub.request("table.list").then(
    ({ tables }) => ((session.state.tables = tables), session.store.touch("tables")),
    () => {},
  );
  return [section, stop];
}
