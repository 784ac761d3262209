/**
 * Every text the app shows, in one catalogue, and `t(key, params)` to read it: `{name}` in a
 * text is replaced by `params.name`; a text given as `{one, other}` is chosen by
 * `Intl.PluralRules` from `params.count`. Numbers in params are formatted for the page's
 * language. People's own words (names, chat, questions) never go through here.
 */

import { catalogue } from "./text-en.js";

const LANGUAGE = "en";
const plurals = new Intl.PluralRules(LANGUAGE);
const numbers = new Intl.NumberFormat(LANGUAGE);

/** The text of `key` with `params` filled in; `fallback` (default: the key) when it is missing. */
export function t(key, params = {}, fallback = key) {
  let text = catalogue[key];
  if (text === undefined) return fallback;
  if (typeof text === "object") {
    const count = Number(params.count ?? 0);
    text = text[plurals.select(count)] ?? text.other;
  }
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in params)) return whole;
    const value = params[name];
    return typeof value === "number" ? numbers.format(value) : String(value);
  });
}

/** A time of day in the page's language ("14:05"). */
export function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString(LANGUAGE, { hour: "2-digit", minute: "2-digit" });
}

/** A countdown as "m:ss" (or "h:mm:ss"). */
export function countdown(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
