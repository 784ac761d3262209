/**
 * The app's entry point: speaks the person's language, signs them in (a link's token, a stored
 * one, or a guest's name), joins the lobby, and shows the lobby or the room the address names.
 * Another language picked in the top bar draws the view on screen again in it, the connection
 * and the room untouched.
 */

import { Hub, tokenClaims } from "../livehub.js";
import { mountEntry } from "./entry.js";
import { chooseLanguage, pickedLanguage, rememberLanguage } from "./language.js";
import { mountLobby } from "./lobby.js";
import { followMeetings } from "./meet.js";
import { followResults } from "./results.js";
import { mountRoom } from "./room.js";
import { Session, closeText, errorText } from "./session.js";
import { mountShell } from "./shell.js";
import { Store } from "./store.js";
import { t, useLanguage } from "./strings.js";

const TOKEN_KEY = "livehub.token";
const LOBBY = "main";

/** The token kept for this tab (a reload keeps the person in), or none. */
function keptToken(token) {
  try {
    if (token !== undefined) token ? sessionStorage.setItem(TOKEN_KEY, token) : sessionStorage.removeItem(TOKEN_KEY);
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return token || null; // storage denied: the person stays in until they reload
  }
}

/** What the hub tells the page before anyone signs in (`GET /api/hub`): whether it admits
 * guests, and the languages the app has a catalogue of (English alone if it cannot be asked). */
async function aboutHub() {
  try {
    const info = await (await fetch("/api/hub")).json();
    const languages = Array.isArray(info.languages) && info.languages.includes("en") ? info.languages : ["en"];
    return { guests: Boolean(info.guests), languages };
  } catch {
    return { guests: false, languages: ["en"] };
  }
}

/** The state of one sign-in: a new sign-in starts from a fresh one. */
function freshState() {
  return { status: { state: "idle" }, directory: [], rooms: new Map(), outbox: new Map(), assignments: new Map(), dms: { conversations: new Map(), open: null, read: {} }, toasts: [], announcements: [] };
}

class App {
  constructor() {
    this.store = new Store(freshState());
    this.main = document.getElementById("main");
    this.session = null;
    this.view = null; // the function that removes what is on screen
    this.entry = null; // the sign-in page's {guests, problem} while it is on screen
    this.shell = mountShell(this.store, { signOut: () => this.signOut(), messages: () => this.session?.showMessages(), pickLanguage: (code) => this.pickLanguage(code) });
    this.store.watch("view", () => this.session && this.render());
    addEventListener("hashchange", () => this.session?.route());
    // The skip link moves the focus; as an address it would leave the room on screen.
    document.querySelector(".skip-link")?.addEventListener("click", (event) => {
      event.preventDefault();
      this.main.focus();
    });
  }

  async start() {
    // A sign-in link's token rides in the fragment (never sent to a server): take it, then drop it.
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    if (token) history.replaceState(null, "", `${location.pathname}${location.search}#/`);
    const kept = keptToken(token || undefined);
    // Everything is drawn in the person's language from the first view on.
    const { languages } = await aboutHub();
    const claimed = kept ? tokenClaims(kept)?.lang : null;
    await this.speak(chooseLanguage(languages, { picked: pickedLanguage(), claimed, browser: navigator.languages }));
    this.shell.setLanguages(languages);
    return kept ? this.signIn({ token: kept }) : this.showEntry();
  }

  /** Speak `code` from now on (English if its catalogue cannot be loaded); the shell redraws. */
  async speak(code) {
    try {
      await useLanguage(code);
    } catch (error) {
      console.warn(`livehub: the ${code} catalogue could not be loaded: English it is`, error);
      await useLanguage("en");
    }
    this.store.touch("language");
  }

  /** The person picked `code`: speak it, keep the pick, and draw what is on screen again in it.
   * The connection, the room, its media and what was typed stay as they are. Picks made in a
   * row (arrow keys on the switch) are applied in turn, so the last one is what stays. */
  pickLanguage(code) {
    rememberLanguage(code);
    this.picking = (this.picking ?? Promise.resolve()).catch(() => {}).then(async () => {
      await this.speak(code);
      const kept = this.view?.({ keep: true });
      this.view = null;
      if (this.session) this.render({ kept, focus: false });
      else if (this.entry) this.drawEntry(kept);
    });
    return this.picking;
  }

  /** The sign-in page, with `problem()` (the text of why the person is there again) if any. */
  async showEntry(problem = null) {
    this.show(null);
    const { guests } = await aboutHub();
    this.store.state.status = { state: "signedOut" };
    this.store.touch("status");
    this.entry = { guests, problem };
    this.drawEntry();
  }

  /** Draw the sign-in page in the language spoken now, with the name `kept` from its previous
   * drawing. */
  drawEntry(kept = null) {
    const { guests, problem } = this.entry;
    document.title = t("page.title");
    this.show(mountEntry(this.main, { guests, problem: problem?.(), typed: kept?.name, join: (name) => this.signIn({ name }) }));
  }

  async signIn({ token, name }) {
    Object.assign(this.store.state, freshState());
    const hub = new Hub({ token, name, storage: sessionStorage });
    hub.on("token", ({ token: fresh }) => keptToken(fresh));
    const session = new Session(hub, this.store);
    hub.on("status", ({ state, code, reason }) => state === "closed" && this.session === session && this.signedOutByHub(code, reason));
    try {
      await hub.connect();
    } catch (error) {
      keptToken(null);
      hub.close();
      return this.showEntry(() => t("entry.refused", { reason: errorText(error) }));
    }
    this.entry = null;
    this.session = session;
    this.shell.setSession(session);
    followMeetings(session);
    session.loadConversations();
    await hub.join(LOBBY).then(() => (session.lobby = LOBBY), (error) => session.toast(errorText(error), "error"));
    this.stopResults = followResults(session);
    this.show(null);
    await session.route();
    this.render();
  }

  /** Show the lobby or the room on screen (once per change of room), taking over what the
   * previous drawing of the same view `kept`; the focus goes to it unless `focus` is false. */
  render({ kept = null, focus = true } = {}) {
    const room = this.session.current;
    if (this.view && this.viewRoom === room) return;
    this.show(room ? mountRoom(this.main, this.session, room, kept) : mountLobby(this.main, this.session));
    this.viewRoom = room;
    if (focus) this.main.focus({ preventScroll: true });
  }

  /** Remove what is on screen, then keep `view` (the function that removes the new one: called
   * with `{keep: true}`, it returns what the same view drawn again may take over). */
  show(view) {
    this.view?.();
    if (!view) this.main.replaceChildren();
    this.view = view;
    this.viewRoom = undefined;
  }

  signedOutByHub(code, reason) {
    this.session.localMedia.stopAll();
    this.stopResults?.();
    this.session = null;
    this.shell.setSession(null);
    if (code === 4001 || code === 4003) keptToken(null);
    console.debug("livehub: the hub closed the session:", code, reason);
    this.showEntry(code === 4003 ? () => t("entry.banned") : () => t("entry.closed", { reason: closeText(code) }));
  }

  signOut() {
    this.session?.hub.close();
    keptToken(null);
    history.replaceState(null, "", `${location.pathname}#/`);
    location.reload();
  }
}

new App().start();
