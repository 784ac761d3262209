/**
 * The app's entry point: signs the person in (a link's token, a stored one, or a guest's name),
 * joins the lobby, and shows the lobby or the room the address names.
 */

import { Hub } from "../livehub.js";
import { mountEntry } from "./entry.js";
import { mountLobby } from "./lobby.js";
import { followMeetings } from "./meet.js";
import { mountRoom } from "./room.js";
import { Session, errorText } from "./session.js";
import { mountShell } from "./shell.js";
import { Store } from "./store.js";
import { t } from "./strings.js";

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
    this.shell = mountShell(this.store, { signOut: () => this.signOut(), messages: () => this.session?.showMessages() });
    this.store.watch("view", () => this.session && this.render());
    addEventListener("hashchange", () => this.session?.route());
    // The skip link moves the focus; as an address it would leave the room on screen.
    document.querySelector(".skip-link")?.addEventListener("click", (event) => {
      event.preventDefault();
      this.main.focus();
    });
  }

  start() {
    // A sign-in link's token rides in the fragment (never sent to a server): take it, then drop it.
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    if (token) history.replaceState(null, "", `${location.pathname}${location.search}#/`);
    const kept = keptToken(token || undefined);
    return kept ? this.signIn({ token: kept }) : this.showEntry();
  }

  async showEntry(problem) {
    this.show(null);
    const info = await fetch("/api/hub").then((response) => response.json()).catch(() => ({}));
    this.store.state.status = { state: "signedOut" };
    this.store.touch("status");
    this.show(mountEntry(this.main, { guests: Boolean(info.guests), problem, join: (name) => this.signIn({ name }) }));
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
      return this.showEntry(t("entry.refused", { reason: errorText(error) }));
    }
    this.session = session;
    this.shell.setSession(session);
    followMeetings(session);
    session.loadConversations();
    await hub.join(LOBBY).then(() => (session.lobby = LOBBY), (error) => session.toast(errorText(error), "error"));
    this.show(null);
    await session.route();
    this.render();
  }

  /** Show the lobby or the room on screen (once per change of room). */
  render() {
    const room = this.session.current;
    if (this.view && this.viewRoom === room) return;
    this.show(room ? mountRoom(this.main, this.session, room) : mountLobby(this.main, this.session));
    this.viewRoom = room;
    this.main.focus({ preventScroll: true });
  }

  /** Remove what is on screen, then keep `view` (the function that removes the new one). */
  show(view) {
    this.view?.();
    if (!view) this.main.replaceChildren();
    this.view = view;
    this.viewRoom = undefined;
  }

  signedOutByHub(code, reason) {
    this.session.localMedia.stopAll();
    this.session = null;
    this.shell.setSession(null);
    if (code === 4001 || code === 4003) keptToken(null);
    this.showEntry(code === 4003 ? t("entry.banned") : t("entry.closed", { reason: reason || code }));
  }

  signOut() {
    this.session?.hub.close();
    keptToken(null);
    history.replaceState(null, "", `${location.pathname}#/`);
    location.reload();
  }
}

new App().start();
