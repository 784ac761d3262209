/** A room's announcements, newest first (screen readers hear new ones through the announcer). */

import { h, replace } from "./dom.js";
import { clock, t } from "./strings.js";

export function mountNotices(container, session, roomId, { limit = 3 } = {}) {
  const list = h("ul", { class: "notices", "aria-label": t("notice.title") });
  container.append(list);
  const render = () => {
    const room = session.room(roomId);
    const notices = room ? room.notices.slice(-limit).reverse() : [];
    list.hidden = notices.length === 0;
    replace(
      list,
      notices.map((notice) =>
        h(
          "li",
          { class: "notice" },
          h("span", { class: "notice-label", text: t("notice.label") }),
          h("span", { class: "notice-text", dir: "auto", text: notice.text }),
          notice.ts ? h("time", { text: clock(notice.ts) }) : null,
        ),
      ),
    );
  };
  const stop = session.store.watch(`notices:${roomId}`, render);
  render();
  return stop;
}
