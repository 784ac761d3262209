/** A room's announcements, newest first (screen readers hear new ones through the announcer). */

import { h, replace } from "./dom.js";
import { hubText, t } from "./strings.js";
import { watchAll } from "./store.js";

export function mountNotices(container, session, roomId, limit = 3) {
  const list = h("ul", { class: "notices", "aria-label": t("notice.title") });
  container.append(list);
  return watchAll(session.store, [`notices:${roomId}`], () => {
    const notices = session.room(roomId)?.notices.slice(-limit).reverse() || [];
    list.hidden = !notices.length;
    replace(list, notices.map((n) => h("li", { class: "notice" }, h("strong", { text: t("notice.label") }), " ", h("span", { dir: "auto", text: hubText(n) }))));
  });
}
