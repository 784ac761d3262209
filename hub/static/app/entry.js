/** The way in: a guest's name form where the hub admits guests, else how to get a link. */

import { field, h } from "./dom.js";
import { t } from "./strings.js";

/** The sign-in page in `main`: `problem` (a text) says why the person is here again, `typed`
 * is a name typed on it before (the page drawn again in another language), `join(name)` signs
 * a guest in. Returns its remover, which with `{keep: true}` returns `{name}` as typed. */
export function mountEntry(main, { guests, problem, typed = "", join }) {
  const name = h("input", { type: "text", required: true, maxlength: "64", autocomplete: "nickname", autofocus: true, value: typed, dir: "auto" });
  const submit = h("button", { type: "submit", class: "primary", text: t("entry.join") });
  const onsubmit = async (event) => {
    event.preventDefault();
    if (!name.value.trim()) return name.focus();
    submit.disabled = true;
    submit.textContent = t("entry.joining");
    await join(name.value.trim());
    submit.disabled = false;
    submit.textContent = t("entry.join");
  };
  main.replaceChildren(
    h(
      "section",
      { class: "entry panel" },
      h("h1", { text: t("entry.title"), tabindex: "-1" }),
      problem && h("p", { class: "problem", role: "alert", text: problem }),
      guests ? [h("p", { text: t("entry.guestIntro") }), h("form", { class: "entry-form", onsubmit }, field(t("entry.name"), name, t("entry.nameHint")), submit)] : h("p", { text: t("entry.needLink") }),
    ),
  );
  return ({ keep = false } = {}) => (keep ? { name: name.value } : undefined);
}
