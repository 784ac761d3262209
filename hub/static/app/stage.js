/**
 * What a room shows of its people on camera: the panel's stage (speaker tiles with their media
 * state), the workshop's video grid, the media controls ("Camera", "Microphone", "Share screen";
 * for speakers "Go live" and "Leave stage"), and the hand queue ("Raise hand" / "Lower hand",
 * one's place, and the moderators' view of it).
 */

import { button, h, initials, keyed, replace, setAttr, setText } from "./dom.js";
import { moderates, onStage, roleOf, stageMembers } from "./roomstate.js";
import { roleBadge } from "./shell.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

/** One tile: the video when there is one to show, else the person's initials. */
function tile() {
  const video = h("video", { autoplay: true, playsinline: true, hidden: true });
  const avatar = h("div", { class: "avatar", "aria-hidden": "true" });
  const [name, badge, state] = [h("span", { class: "tile-name", dir: "auto" }), h("span"), h("span", { class: "tile-state" })];
  const node = h("figure", { class: "tile" }, video, avatar, h("figcaption", {}, name, badge, state));
  return {
    node,
    update({ label, person, role, media, source, mine, stats }) {
      setText(name, label);
      setText(avatar, initials(person));
      if (badge.textContent !== (role === "attendee" ? "" : t(`role.${role}`))) replace(badge, roleBadge(role));
      const camera = media.screen ? "media.screenOn" : media.video ? "media.camOn" : "media.camOff";
      setText(state, `${t(media.audio ? "media.micOn" : "media.micOff")} · ${t(camera)}`);
      node.classList.toggle("live", Boolean(media.audio || media.video || media.screen));
      node.classList.toggle("screen", Boolean(media.screen));
      const showVideo = Boolean((media.video || media.screen) && source?.getVideoTracks().length);
      if (video.srcObject !== source) video.srcObject = source;
      video.muted = Boolean(mine); // one's own microphone is never played back
      video.hidden = !showVideo;
      avatar.hidden = showVideo;
      if (stats) video.dataset.framesDecoded = String(stats.framesDecoded);
      if (source && video.paused) video.play().catch(() => {}); // audio plays without video too
    },
  };
}

function me(session, room) {
  const { name } = session.hub.user;
  const local = session.localMedia;
  return { key: session.hub.sid, label: t("media.you", { name }), person: name, role: room.role, media: local.state, source: local.stream, mine: true };
}

function remote(room, peer, mesh, feed) {
  const role = roleOf(room, peer.user);
  const base = { key: peer.sid, label: peer.name, person: peer.name, role, media: peer.media || {} };
  if (feed) return { ...base, source: feed.streams.get(peer.sid) ?? null, stats: feed.stats.get(peer.sid) };
  const link = mesh.links.get(peer.sid);
  return { ...base, source: link?.remote ?? null, stats: link?.stats };
}

/** A grid of tiles: a workshop's or breakout's everyone (oneself first), or a panel's stage
 * (its speakers, moderators while live, oneself while on it), whose media comes through the SFU
 * (`feed`). */
export function mountTiles(container, session, roomId, mesh, feed) {
  const panel = session.room(roomId).kind === "panel";
  const grid = h("div", { class: "grid", role: "region", "aria-label": t(panel ? "stage.title" : "media.grid") });
  const empty = h("div", { class: "stage-empty", hidden: true }, h("p", { text: t("stage.empty") }));
  container.append(empty, grid);
  const tiles = new Map();
  return watchAll(session.store, [`stage:${roomId}`, `media:${roomId}`, `room:${roomId}`, "local-media"], () => {
    const room = session.room(roomId);
    if (!room) return;
    const local = session.localMedia;
    const live = Boolean(local.camera || local.microphone || local.screen);
    const showMe = !panel || room.role === "speaker" || (onStage(room) && live);
    const people = [...(showMe ? [me(session, room)] : []), ...(panel ? stageMembers(room) : room.peers.values())].map((p) => (p.key ? p : remote(room, p, mesh, feed)));
    keyed(grid, tiles, people, (p) => p.key, tile);
    grid.dataset.count = String(Math.min(people.length, 9));
    empty.hidden = !panel || people.length > 0;
  });
}

/** The media controls: toggles for whoever may send media in the room. */
export function mountMediaControls(container, session, roomId) {
  const bar = h("div", { class: "controls", role: "toolbar", "aria-label": t("media.controls") });
  container.append(bar);
  const local = session.localMedia;
  const toggles = ["microphone", "camera", "screen"].map((source) => {
    const node = button(t(`media.${source}`), () => local.set(source, !local[source]), { class: "toggle" });
    return [source, node];
  });
  const goLive = button(t("stage.goLive"), () => local.set("microphone", true).then(() => local.set("camera", true)), { class: "primary" });
  const endLive = button(t("stage.endLive"), () => local.stopAll());
  const leaveStage = button(t("stage.leave"), () => {
    local.stopAll();
    session.act("role.set", { room: roomId, user: session.hub.user.id, role: "attendee" });
  });
  let layout = null;
  return watchAll(session.store, [`room:${roomId}`, "local-media"], () => {
    const room = session.room(roomId);
    if (!room) return;
    const panel = room.kind === "panel";
    const live = Boolean(local.camera || local.microphone || local.screen);
    const key = `${panel}:${room.role}:${live}`;
    if (key !== layout) {
      layout = key;
      const items = !panel || onStage(room) ? [panel && (live ? endLive : goLive), toggles.map(([, node]) => node), panel && room.role === "speaker" && leaveStage] : [];
      replace(bar, items);
      bar.hidden = !items.length;
    }
    for (const [source, node] of toggles) setAttr(node, "aria-pressed", String(Boolean(local[source])));
  });
}

/** The hand queue: one's own hand, and for moderators everyone's. */
export function mountHands(container, session, roomId) {
  const act = (op, fields = {}, done) => session.act(op, { room: roomId, ...fields }, done);
  const raise = button(t("hand.raise"), () => act("hand.raise"));
  const lower = button(t("hand.lower"), () => act("hand.lower"));
  const place = h("span", { class: "hint", "aria-live": "polite" });
  const own = h("div", { class: "hand" }, raise, lower, place);
  const queue = h("ol", { class: "hand-queue", "aria-label": t("hand.queue") });
  const section = h("section", { class: "hands card", hidden: true }, h("h3", { text: t("hand.queue") }), queue);
  const entries = new Map();
  container.append(own, section);
  return watchAll(session.store, [`hands:${roomId}`, `room:${roomId}`], () => {
    const room = session.room(roomId);
    if (!room) return;
    const index = room.hands.findIndex((hand) => hand.user === room.me);
    own.hidden = onStage(room) && index < 0;
    raise.hidden = index >= 0;
    lower.hidden = index < 0;
    setText(place, index >= 0 ? t("hand.place", { count: index + 1 }) : "");
    section.hidden = !moderates(room) || !room.hands.length;
    if (section.hidden) return;
    keyed(queue, entries, room.hands, (hand) => hand.user, ({ user, name }) => ({
      node: h(
        "li",
        {},
        h("span", { dir: "auto", text: name }),
        room.kind === "panel" && button(t("stage.invite"), () => act("role.set", { user, role: "speaker" }, t("stage.invited", { name })), { class: "small", "aria-label": t("stage.inviteName", { name }) }),
        button(t("hand.lowerOther"), () => act("hand.lower", { user }), { class: "small", "aria-label": t("hand.lowerName", { name }) }),
      ),
    }));
  });
}
