/** Moderators' room tools that belong to no other tab: announcements and slow mode. */

import { field, h } from "./dom.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

const SLOWMODE = [0, 5, 10, 30, 60, 120];

export function mountManage(container, session, roomId) {
  const text = h("textarea", { rows: "2", maxlength: "2000" });
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
