/**
 * The people directory in the lobby: a search (name or organisation, country, interest) over the
 * profiles people chose to show, as cards with a "Message" button where the person accepts
 * contact, and the person's own profile form. Guests have no profile: they see a line saying the
 * directory needs a sign-in. Everything people wrote is shown as text.
 */

import { button, field, h, replace, uniqueId } from "./dom.js";
import { errorText } from "./session.js";
import { countryName, currentLanguage, t } from "./strings.js";

// ISO 3166-1 alpha-2, as the hub accepts them.
const COUNTRY_CODES = `AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET
FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ
IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS
PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL
TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW`.split(/\s+/);
const PAGE = 20;

/** A `<select>` of the countries by name, in the page's language's order, with a first option
 * for none. */
function countrySelect(noneText) {
  const countries = COUNTRY_CODES.map((code) => ({ code, name: countryName(code) })).sort((a, b) => a.name.localeCompare(b.name, currentLanguage()));
  return h("select", {}, h("option", { value: "", text: noneText }), countries.map(({ code, name }) => h("option", { value: code, text: name })));
}

/** A checkbox with its label: `[input, label]`. */
function checkbox(text, checked, value) {
  const input = h("input", { type: "checkbox", checked, value });
  return [input, h("label", { class: "choice" }, input, h("span", { text }))];
}

export function mountDirectory(container, session) {
  let stopped = false;
  let stopBuilt = null;
  const status = h("p", { class: "hint", text: t("directory.loading") });
  container.append(status);
  if (session.eventClosed) {
    status.textContent = t("directory.closed");
    return () => {};
  }
  session.hub.request("profile.get").then(
    ({ profile, interests }) => {
      if (!stopped) stopBuilt = build(container, session, profile, interests);
    },
    (error) => {
      if (stopped) return;
      status.textContent = error.code === "forbidden" ? t("directory.signIn") : error.code === "closed" ? t("directory.closed") : errorText(error);
    },
  );
  return () => {
    stopped = true;
    stopBuilt?.();
  };
}

/** The search and the profile form, for `mine` (the person's profile) and the event's
 * `interests`; returns the function that stops what it listens to. */
function build(container, session, mine, interests) {
  const me = session.hub.user.id;

  // --- the search
  const query = h("input", { type: "search", maxlength: "64" });
  const country = countrySelect(t("directory.anyCountry"));
  const interest = h("select", {}, h("option", { value: "", text: t("directory.anyInterest") }), interests.map((name) => h("option", { value: name, text: name })));
  const results = h("ul", { class: "profile-cards", "aria-label": t("directory.results") });
  const summary = h("p", { class: "hint" });
  const more = button(t("directory.more"), () => search(false));
  more.hidden = true;
  let next = null;
  let asked = 0;

  const search = async (fresh) => {
    const ask = ++asked;
    const fields = { limit: PAGE };
    if (query.value.trim()) fields.q = query.value.trim();
    if (country.value) fields.country = country.value;
    if (interest.value) fields.interest = interest.value;
    if (!fresh && next) fields.after = next;
    try {
      const page = await session.hub.request("directory.search", fields);
      if (ask !== asked) return; // a newer search is under way
      if (fresh) results.replaceChildren();
      results.append(...page.profiles.map((profile) => card(profile)));
      next = page.next ?? null;
      more.hidden = !next;
      summary.textContent = results.childElementCount ? "" : t("directory.none");
    } catch (error) {
      if (ask === asked) summary.textContent = error.code === "closed" ? t("directory.closed") : errorText(error);
    }
  };

  const card = (profile) => {
    const where = [profile.organisation, profile.country && countryName(profile.country)].filter(Boolean).join(" · ");
    return h(
      "li",
      { class: "profile-card" },
      h("h3", { dir: "auto", text: profile.name }),
      where && h("p", { class: "hint", dir: "auto", text: where }),
      profile.interests.length > 0 && h("p", { "aria-label": t("directory.interestsOf", { name: profile.name }) }, profile.interests.map((name) => h("span", { class: "badge", dir: "auto", text: name }))),
      profile.bio && h("p", { class: "profile-bio", dir: "auto", text: profile.bio }),
      profile.contact &&
        profile.user !== me &&
        button(t("directory.message"), () => (session.openConversation(profile.user, profile.name), session.showMessages()), { "aria-label": t("directory.messageTo", { name: profile.name }) }),
    );
  };

  const searchForm = h(
    "form",
    { role: "search", "aria-label": t("directory.searchLabel"), onsubmit: (event) => (event.preventDefault(), search(true)) },
    field(t("directory.query"), query),
    h("div", { class: "inline-form" }, field(t("directory.country"), country), field(t("directory.interest"), interest)),
    h("button", { type: "submit", class: "primary", text: t("directory.search") }),
  );
  country.addEventListener("change", () => search(true));
  interest.addEventListener("change", () => search(true));

  // --- the person's own profile
  const name = h("input", { type: "text", maxlength: "64", value: mine.name, autocomplete: "name" });
  const organisation = h("input", { type: "text", maxlength: "100", value: mine.organisation || "", autocomplete: "organization" });
  const myCountry = countrySelect(t("profile.noCountry"));
  myCountry.value = mine.country || "";
  const bio = h("textarea", { rows: "3", maxlength: "500", value: mine.bio || "" });
  const interestBoxes = interests.map((name) => checkbox(name, mine.interests.includes(name), name));
  const [listed, listedLabel] = checkbox(t("profile.listed"), mine.listed);
  const [contact, contactLabel] = checkbox(t("profile.contact"), mine.contact);
  const hiddenNote = h("p", { class: "problem", text: t("profile.hiddenNote") });
  hiddenNote.hidden = !mine.hidden;
  const save = h("button", { type: "submit", class: "primary", text: t("profile.save") });
  const legendId = uniqueId("interests");
  const onsubmit = async (event) => {
    event.preventDefault();
    save.disabled = true;
    const ok = await session.act(
      "profile.set",
      {
        name: name.value.trim() || null,
        organisation: organisation.value.trim() || null,
        country: myCountry.value || null,
        bio: bio.value.trim() || null,
        interests: interestBoxes.filter(([input]) => input.checked).map(([input]) => input.value),
        listed: listed.checked,
        contact: contact.checked,
      },
      t("profile.saved"),
    );
    save.disabled = false;
    if (ok) {
      name.value = ok.profile.name;
      hiddenNote.hidden = !ok.profile.hidden;
      search(true);
    }
  };
  const profileForm = h(
    "form",
    { class: "card profile-form", "aria-labelledby": `${legendId}-title`, onsubmit },
    h("h3", { id: `${legendId}-title`, text: t("profile.title") }),
    hiddenNote,
    field(t("profile.name"), name),
    field(t("profile.organisation"), organisation),
    field(t("profile.country"), myCountry),
    field(t("profile.bio"), bio, t("profile.bioHint")),
    interests.length > 0 && h("fieldset", { class: "checks" }, h("legend", { text: t("profile.interests") }), interestBoxes.map(([, label]) => label)),
    h("div", { class: "checks" }, listedLabel, contactLabel),
    save,
  );

  replace(container, searchForm, summary, results, more, profileForm);
  const stops = [
    session.hub.on("profile.hidden", ({ hidden }) => {
      hiddenNote.hidden = !hidden;
      session.announce(t(hidden ? "profile.hiddenNote" : "profile.shownAgain"));
    }),
    // Once the event is over the directory answers no more: say so instead of a stale list.
    session.hub.on("event.closed", () => replace(container, h("p", { class: "hint", text: t("directory.closed") }))),
  ];
  search(true);
  return () => stops.forEach((stop) => stop());
}
