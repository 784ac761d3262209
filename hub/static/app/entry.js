/** The way in: a guest's name form where the hub admits guests, else how to get a link. */

import { field, h } from "./dom.js";
import { t } from "./strings.js";

const NAME_MAX = 64;

export function mountEntry(main, { guests, problem, join }) {
  const heading = h("h1", { text: t("entry.title"), tabindex: "-1" });
  const problemNode = problem ? h("p", { class: "problem", role: "alert", text: problem }) : null;
  const children = [heading, problemNode];
  if (guests) {
    const name = h("input", {
      type: "text",
      name: "name",
      required: true,
      maxlength: String(NAME_MAX),
      autocomplete: "nickname",
      autofocus: true,
    });
    const button = h("button", { type: "submit", class: "primary", text: t("entry.join") });
    const form = h(
      "form",
      {
        class: "entry-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const value = name.value.trim();
          if (!value) {
            name.focus();
            return;
          }
          button.disabled = true;
          button.textContent = t("entry.joining");
          await join(value);
          button.disabled = false;
          button.textContent = t("entry.join");
        },
      },
      field(t("entry.name"), name, t("entry.nameHint")).wrap,
      button,
    );
    children.push(h("p", { text: t("entry.guestIntro") }), form);
  } else {
    children.push(h("p", { text: t("entry.needLink") }));
  }
  main.replaceChildren(h("section", { class: "entry panel" }, ...children));
  return { unmount() {} };
}
