/**
 * Which language the app speaks, of those the hub has a catalogue of (`/api/hub`'s
 * `languages`): the one the person picked in the app (kept in this browser), else their
 * token's `lang` claim, else the browser's preferences, else English.
 */

const PICKED_KEY = "livehub.lang";

/** The first of `tags` (BCP 47 tags, in order of preference) that `available` has, as an
 * available code: the tag itself, else its primary language ("fr-CA" -> "fr"); or null. */
export function matchLanguage(tags, available) {
  for (const tag of tags) {
    if (typeof tag !== "string" || !tag) continue;
    const wanted = [tag.toLowerCase(), tag.split("-")[0].toLowerCase()];
    for (const code of wanted) {
      const found = available.find((each) => each.toLowerCase() === code);
      if (found) return found;
    }
  }
  return null;
}

/** The language to speak: `picked` (in the app), else `claimed` (the token's), else the
 * first of `browser` (`navigator.languages`) that is `available`, else English. */
export function chooseLanguage(available, { picked = null, claimed = null, browser = [] } = {}) {
  return matchLanguage([picked, claimed, ...browser], available) ?? "en";
}

/** The language the person picked in the app, or null. */
export function pickedLanguage() {
  try {
    return localStorage.getItem(PICKED_KEY);
  } catch {
    return null; // storage denied: nothing was kept
  }
}

/** Keep the person's pick for their next visits in this browser. */
export function rememberLanguage(code) {
  try {
    localStorage.setItem(PICKED_KEY, code);
  } catch {
    /* storage denied: the pick lasts for this page */
  }
}
