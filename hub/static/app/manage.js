/** Moderators' room tools that belong to no other tab: announcements and slow mode. */

import { field, h } from "./dom.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

const SLOWMODE = [0, 5, 10, 30, 60, 120];

export function mountManage(container, session, roomId) {
  const text = h("textarea", { rows: "2", maxlength: "2000" });
  const announce = h("button", { type: "submit", class: "primary", text: t("manage.announce") });
  const announceForm = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const value = text.value.trim();
        if (!value) return;
        announce.disabled = true;
        if (await session.act("announce", { room: roomId, text: value }, t("manage.announced"))) text.value = "";
        announce.disabled = false;
      },
    },
    h("h3", { text: t("manage.announcements") }),
    field(t("manage.announcement"), text, t("manage.announcementHint")).wrap,
    announce,
  );
  const slowmode = h(
    "select",
    {
      onchange: () => session.act("room.slowmode", { room: roomId, seconds: Number(slowmode.value) }, t("manage.slowmodeSet")),
    },
    SLOWMODE.map((seconds) => h("option", { value: String(seconds), text: seconds ? t("manage.slowmodeEvery", { count: seconds }) : t("manage.slowmodeOff") })),
  );
  const slowForm = h("div", { class: "card" }, h("h3", { text: t("manage.chat") }), field(t("manage.slowmode"), slowmode).wrap);
  container.append(announceForm, slowForm);
  const render = () => {
    const room = session.room(roomId);
    if (!room || document.activeElement === slowmode) return;
    slowmode.value = String(SLOWMODE.includes(room.chat.slowmode) ? room.chat.slowmode : 0);
  };
  return watchAll(session.store, [`room:${roomId}`], render);
}
