/**
 * The app's entry point: signs the person in (a link's token, a stored one, or a guest name),
 * joins the lobby, and shows the lobby or the room the address names.
 */

import { Hub } from "../livehub.js";
import { mountEntry } from "./entry.js";
import { mountLobby } from "./lobby.js";
import { mountRoom } from "./room.js";
import { Session, errorText } from "./session.js";
import { mountShell } from "./shell.js";
import { Store } from "./store.js";
import { t } from "./strings.js";

const TOKEN_KEY = "livehub.token";
const LOBBY = "main";

function initialState() {
  return {
    status: { state: "idle" },
    view: { room: null },
    directory: [],
    rooms: new Map(),
    outbox: new Map(),
    assignments: new Map(), // parent room -> one's breakout in its open round
    dms: { conversations: new Map(), open: null, read: {} },
    toasts: [],
    announcements: [],
  };
}

/** A token handed over in the address (`#token=…`), removed from it at once. */
function tokenFromAddress() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (token) history.replaceState(null, "", `${location.pathname}${location.search}#/`);
  return token;
}

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function keepToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage denied: the person stays in until they reload */
  }
}

async function hubInfo() {
  try {
    const response = await fetch("/api/hub", { headers: { Accept: "application/json" } });
    if (response.ok) return await response.json();
  } catch {
    /* unreachable: the form below still works once the hub is back */
  }
  return { guests: false };
}

class App {
  constructor() {
    this.store = new Store(initialState());
    this.main = document.getElementById("main");
    this.session = null;
    this.view = null;
    this.shell = mountShell(this.store, {
      signOut: () => this.signOut(),
      messages: () => this.session?.showMessages(),
    });
    this.store.watch("view", () => this.session && this.render());
    addEventListener("hashchange", () => this.session?.route());
  }

  async start() {
    const token = tokenFromAddress() || storedToken();
    if (token) {
      keepToken(token);
      await this.signIn({ token });
    } else {
      await this.showEntry();
    }
  }

  async showEntry(problem) {
    this.unmountView();
    const info = await hubInfo();
    this.state("signedOut");
    this.view = mountEntry(this.main, {
      guests: Boolean(info.guests),
      problem,
      join: (name) => this.signIn({ name }),
    });
  }

  state(name) {
    this.store.state.status = { state: name };
    this.store.touch("status");
  }

  async signIn({ token, name }) {
    const hub = new Hub({ token, name, storage: sessionStorage });
    hub.on("token", ({ token: fresh }) => keepToken(fresh));
    const session = new Session(hub, this.store);
    hub.on("status", ({ state, code, reason }) => {
      if (state === "closed" && this.session === session) this.signedOutByHub(code, reason);
    });
    try {
      await hub.connect();
    } catch (error) {
      keepToken(null);
      hub.close();
      await this.showEntry(t("entry.refused", { reason: errorText(error) }));
      return false;
    }
    this.session = session;
    this.shell.setSession(session);
    session.loadReadMarks();
    session.loadConversations();
    try {
      await hub.join(LOBBY);
      session.lobby = LOBBY;
    } catch (error) {
      session.toast(errorText(error), "error");
    }
    this.unmountView();
    await session.route();
    this.render();
    return true;
  }

  /** Show the lobby or the room on screen (once per change of room). */
  render() {
    const session = this.session;
    const room = session.current;
    if (this.view && this.view.room === room) return;
    this.unmountView();
    this.view = room ? mountRoom(this.main, session, room) : mountLobby(this.main, session);
    this.view.room = room;
    this.main.focus({ preventScroll: true });
  }

  unmountView() {
    this.view?.unmount?.();
    this.view = null;
    this.main.replaceChildren();
  }

  signedOutByHub(code, reason) {
    this.session = null;
    this.shell.setSession(null);
    const banned = code === 4003;
    if (code === 4001 || banned) keepToken(null);
    this.showEntry(banned ? t("entry.banned") : t("entry.closed", { reason: reason || code }));
  }

  signOut() {
    const session = this.session;
    this.session = null;
    this.shell.setSession(null);
    keepToken(null);
    session?.hub.close();
    history.replaceState(null, "", `${location.pathname}#/`);
    location.reload();
  }
}

new App().start();
