/**
 * The profile of a poll's option (protocol.md, "Polls": a poll's `profiles`, parallel to its
 * `options`): a picture at a fixed size, the organisation and the country, and a description.
 * Everything in it is the organizers' text, shown as text in its own direction; the picture is
 * shown only from an `http:` or `https:` address, without a referrer, and the hub never fetches
 * it.
 */

import { h } from "./dom.js";
import { countryName } from "./strings.js";

const PICTURE_SIZE = "56";

/** An organizer's web address (a picture's, a link's) as an absolute `http:` or `https:` URL,
 * or null for anything else (other schemes, relative or malformed addresses, non-strings). */
export function webAddress(address) {
  if (typeof address !== "string") return null;
  try {
    const url = new URL(address);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** The profile of option `index` of `poll` (a map), or null when it has none. */
export function profileOf(poll, index) {
  const profile = Array.isArray(poll?.profiles) ? poll.profiles[index] : null;
  return profile && typeof profile === "object" ? profile : null;
}

const text = (value) => (typeof value === "string" && value.trim() ? value : null);

/** The profile of `option` as a node (with `id` when given, for `aria-describedby`): its
 * picture (alt: the option), "organisation · country" (the country named in the page's
 * language) and its description, each when present; null when there is nothing to show. */
export function profileNode(option, profile, id = null) {
  if (!profile) return null;
  const src = webAddress(profile.image);
  const country = typeof profile.country === "string" && /^[A-Za-z]{2}$/.test(profile.country) ? countryName(profile.country.toUpperCase()) : null;
  const where = [text(profile.organisation), country].filter(Boolean).join(" · ");
  const description = text(profile.description);
  if (!src && !where && !description) return null;
  // `src` goes last: the other attributes (lazy loading, no referrer) are set before it loads.
  const picture =
    src &&
    h("img", {
      class: "profile-picture",
      alt: option,
      width: PICTURE_SIZE,
      height: PICTURE_SIZE,
      loading: "lazy",
      decoding: "async",
      referrerpolicy: "no-referrer",
      onerror: (event) => (event.target.hidden = true),
      src,
    });
  return h(
    "div",
    { class: "option-profile", id },
    picture,
    h("div", { class: "option-profile-text" }, where && h("p", { class: "hint", dir: "auto", text: where }), description && h("p", { class: "option-description", dir: "auto", text: description })),
  );
}
