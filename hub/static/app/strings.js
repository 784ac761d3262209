/**
 * Every text the app shows comes from a message catalogue, one per language
 * (`text-<language>.js`, docs/translating.md), read with `t(key, params)`: `{name}` in a text is
 * replaced by `params.name`; a text given as plural forms (`{one, other}`, `{one, many, other}`…)
 * is chosen by `Intl.PluralRules` from `params.count`. Numbers in params, times and language
 * names are formatted by `Intl` for the page's language. English is always loaded: a key another
 * catalogue lacks is shown in English and reported once on the console. People's own words
 * (names, chat, questions) never go through here, except as params.
 */

import { catalogue as english } from "./text-en.js";

const FALLBACK = "en";
// Letters, digits and hyphens only: a language code becomes part of a module's address.
const LANGUAGE_CODE = /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/;
// Scripts written right to left: a param in one of them is isolated in the sentence around it.
const RIGHT_TO_LEFT = /[\p{Script=Arabic}\p{Script=Hebrew}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}]/u;

let language = FALLBACK;
let catalogue = english;
let formats = formatsOf(FALLBACK);
const englishPlurals = new Intl.PluralRules(FALLBACK);
const reported = new Set();

function formatsOf(code) {
  return {
    plurals: new Intl.PluralRules(code),
    numbers: new Intl.NumberFormat(code),
    percent: new Intl.NumberFormat(code, { style: "percent", maximumFractionDigits: 1 }),
    list: new Intl.ListFormat(code, { type: "conjunction" }),
    time: new Intl.DateTimeFormat(code, { hour: "2-digit", minute: "2-digit" }),
  };
}

/** Load the catalogue of `code` (a language the hub lists) and speak it from then on: `t()`,
 * the formats, `<html lang dir>`. Resolves once done; rejects, changing nothing, when the
 * catalogue cannot be loaded. */
export async function useLanguage(code) {
  if (!LANGUAGE_CODE.test(code)) throw new Error(`not a language code: ${code}`);
  const loaded = code === FALLBACK ? english : (await import(`./text-${code}.js`)).catalogue;
  language = code;
  catalogue = loaded;
  formats = formatsOf(code);
  document.documentElement.lang = code;
  const locale = new Intl.Locale(code);
  document.documentElement.dir = (locale.getTextInfo?.() ?? locale.textInfo)?.direction === "rtl" ? "rtl" : "ltr";
}

/** The language the app speaks now ("en", "fr"…). */
export function currentLanguage() {
  return language;
}

/** The text of `key` with `params` filled in, in the page's language; in English (reported
 * once) when that catalogue lacks it; `fallback` (default: the key) when English lacks it too. */
export function t(key, params = {}, fallback = key) {
  let text = Object.hasOwn(catalogue, key) ? catalogue[key] : undefined;
  let plurals = formats.plurals;
  if (text === undefined && Object.hasOwn(english, key)) {
    text = english[key];
    plurals = englishPlurals;
    reportMissing(key);
  }
  if (text === undefined) return fallback;
  if (typeof text === "object") {
    const count = Number(params.count ?? 0);
    text = text[plurals.select(count)] ?? text.other;
  }
  return text.replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(params, name) ? shown(params[name]) : whole));
}

function reportMissing(key) {
  if (reported.has(`${language}:${key}`)) return;
  reported.add(`${language}:${key}`);
  console.warn(`livehub: the ${language} catalogue has no text for "${key}": shown in English`);
}

/** A param as it goes into a text: numbers formatted; text in a right-to-left script isolated
 * (U+2068…U+2069), so a name in Arabic keeps its place in an English sentence. */
function shown(value) {
  if (typeof value === "number") return formats.numbers.format(value);
  const text = String(value);
  return RIGHT_TO_LEFT.test(text) ? `\u2068${text}\u2069` : text;
}

/** The text of an event that may carry the hub's own words: the catalogue's for its `key`
 * (`notice`, `event.closed`, `table.left`: protocol.md), else its `text` as sent ("" if none). */
export function hubText(event) {
  const sent = typeof event.text === "string" ? event.text : "";
  return typeof event.key === "string" ? t(`hub.${event.key}`, {}, sent) : sent;
}

/** A time of day in the page's language ("14:05", "2:05 PM"). */
export function clock(seconds) {
  return formats.time.format(new Date(seconds * 1000));
}

/** The name of language `code` in that language, as a person looking for it knows it
 * ("Deutsch", "Français"); the code where the browser has no name for it. */
export function languageName(code) {
  try {
    const name = new Intl.DisplayNames([code], { type: "language" }).of(code) || code;
    return name.charAt(0).toLocaleUpperCase(code) + name.slice(1);
  } catch {
    return code;
  }
}

/** A share (0..1) as a percentage in the page's language ("42.5%", "42,5 %"). */
export function percent(share) {
  return formats.percent.format(share);
}

/** Words joined as a list in the page's language ("Ada, Bob and Cleo", "Ada, Bob et Cleo"). */
export function listOf(words) {
  return formats.list.format(words.map(String));
}

let regions = null; // the country names of one language: {language, names}

/** A country's name (ISO 3166-1 alpha-2 code) in the page's language; its code where the
 * browser has no name for it. */
export function countryName(code) {
  try {
    if (regions?.language !== language) regions = { language, names: new Intl.DisplayNames([language], { type: "region" }) };
    return regions.names.of(code) || code;
  } catch {
    return code;
  }
}

/** A countdown as "m:ss" (or "h:mm:ss"): the same in every language. */
export function countdown(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
