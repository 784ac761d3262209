/**
 * What a room shows of its people on camera: the panel's stage (speaker tiles with their media
 * state), the workshop's video grid, the media controls ("Camera", "Microphone", "Share screen",
 * and for speakers "Go live" and "Leave stage"), and the hand queue ("Raise hand" /
 * "Lower hand", the person's place, and the moderators' view of it).
 */

import { h, initials, replace, setAttr, setText } from "./dom.js";
import { moderates, onStage, roleOf, stageMembers } from "./roomstate.js";
import { roleBadge } from "./shell.js";
import { t } from "./strings.js";
import { watchAll } from "./store.js";

/** One tile: a video (when there is one to show), else the person's initials. */
function tile(key) {
  const video = h("video", { autoplay: true, playsinline: true, hidden: true });
  const avatar = h("div", { class: "avatar", "aria-hidden": "true" });
  const name = h("span", { class: "tile-name" });
  const badge = h("span");
  const state = h("span", { class: "tile-state" });
  const node = h("figure", { class: "tile", dataset: { sid: key } }, video, avatar, h("figcaption", {}, name, badge, state));
  let stream = null;
  return {
    node,
    video,
    update({ label, person, role, media, source, mine, stats }) {
      setText(name, label);
      setText(avatar, initials(person));
      const badgeNode = roleBadge(role);
      if (badge.textContent !== (badgeNode?.textContent || "")) replace(badge, badgeNode);
      const parts = [];
      parts.push(media.audio ? t("media.micOn") : t("media.micOff"));
      parts.push(media.screen ? t("media.screenOn") : media.video ? t("media.camOn") : t("media.camOff"));
      setText(state, parts.join(" · "));
      node.classList.toggle("live", Boolean(media.audio || media.video || media.screen));
      node.classList.toggle("screen", Boolean(media.screen));
      const showVideo = Boolean(source && (media.video || media.screen) && source.getVideoTracks().length);
      if (source !== stream) {
        stream = source;
        video.srcObject = source;
      }
      video.muted = Boolean(mine); // never play one's own microphone back
      video.hidden = !showVideo;
      avatar.hidden = showVideo;
      if (stats) {
        video.dataset.framesDecoded = String(stats.framesDecoded);
        video.dataset.frameWidth = String(stats.width);
      }
      // Audio without video still plays through the (hidden) element.
      if (source && video.paused) video.play().catch(() => {});
    },
  };
}

/** Tiles of the given people, keyed by session id, in the given order. */
function syncTiles(grid, tiles, people) {
  const wanted = new Set(people.map((p) => p.key));
  for (const [key, item] of tiles) {
    if (!wanted.has(key)) {
      item.node.remove();
      tiles.delete(key);
    }
  }
  let cursor = grid.firstElementChild;
  for (const person of people) {
    let item = tiles.get(person.key);
    if (!item) {
      item = tile(person.key);
      tiles.set(person.key, item);
    }
    item.update(person);
    if (item.node !== cursor) grid.insertBefore(item.node, cursor);
    else cursor = cursor.nextElementSibling;
  }
}

function me(session, room, local) {
  return {
    key: session.hub.sid,
    label: t("media.you", { name: session.hub.user.name }),
    person: session.hub.user.name,
    role: room.role,
    media: local.state,
    source: local.stream,
    mine: true,
  };
}

function remote(room, peer, mesh) {
  const link = mesh.links.get(peer.sid);
  return {
    key: peer.sid,
    label: peer.name,
    person: peer.name,
    role: roleOf(room, peer.user),
    media: peer.media || {},
    source: link ? link.remote : null,
    stats: link ? link.stats : null,
  };
}

/** A workshop's or breakout's grid: everyone in the room, oneself first. */
export function mountVideoGrid(container, session, roomId, mesh) {
  const grid = h("div", { class: "grid", role: "region", "aria-label": t("media.grid") });
  container.append(grid);
  const tiles = new Map();
  const render = () => {
    const room = session.room(roomId);
    if (!room) return;
    const people = [me(session, room, session.localMedia)];
    for (const peer of room.peers.values()) people.push(remote(room, peer, mesh));
    syncTiles(grid, tiles, people);
    grid.dataset.count = String(Math.min(people.length, 9));
  };
  return watchAll(session.store, [`stage:${roomId}`, `media:${roomId}`, `room:${roomId}`, "local-media"], render);
}

/** A panel's stage: the speakers (and moderators while live), oneself while on stage. */
export function mountStage(container, session, roomId, mesh) {
  const grid = h("div", { class: "grid stage-grid" });
  const empty = h("div", { class: "stage-empty" }, h("p", { text: t("stage.empty") }));
  const note = h("p", { class: "hint", text: t("stage.videoSoon") });
  container.append(h("section", { class: "stage", "aria-label": t("stage.title") }, empty, grid, note));
  const tiles = new Map();
  const render = () => {
    const room = session.room(roomId);
    if (!room) return;
    const people = [];
    const local = session.localMedia;
    const live = Boolean(local.camera || local.microphone || local.screen);
    if (room.role === "speaker" || (onStage(room) && live)) people.push(me(session, room, local));
    for (const peer of stageMembers(room)) people.push(remote(room, peer, mesh));
    syncTiles(grid, tiles, people);
    grid.dataset.count = String(Math.min(people.length, 9));
    empty.hidden = people.length > 0;
    note.hidden = onStage(room);
  };
  return watchAll(session.store, [`stage:${roomId}`, `media:${roomId}`, `room:${roomId}`, "local-media"], render);
}

function toggle(label, pressed, onclick) {
  return h("button", { type: "button", class: "toggle", "aria-pressed": pressed ? "true" : "false", text: label, onclick });
}

/** The media controls of a room: toggles for everyone who may send media here. */
export function mountMediaControls(container, session, roomId) {
  const bar = h("div", { class: "controls", role: "toolbar", "aria-label": t("media.controls") });
  container.append(bar);
  const local = session.localMedia;
  const camera = toggle(t("media.camera"), false, () => local.setCamera(!local.camera));
  const microphone = toggle(t("media.microphone"), false, () => local.setMicrophone(!local.microphone));
  const screen = toggle(t("media.shareScreen"), false, () => local.setScreen(!local.screen));
  const goLive = h("button", {
    type: "button",
    class: "primary",
    text: t("stage.goLive"),
    onclick: async () => {
      await local.setMicrophone(true);
      await local.setCamera(true);
    },
  });
  const endLive = h("button", { type: "button", text: t("stage.endLive"), onclick: () => local.stopAll() });
  const leaveStage = h("button", {
    type: "button",
    text: t("stage.leave"),
    onclick: () => {
      local.stopAll();
      session.act("role.set", { room: roomId, user: session.hub.user.id, role: "attendee" });
    },
  });
  let layout = null;
  const render = () => {
    const room = session.room(roomId);
    if (!room) return;
    const sending = room.kind !== "panel" || onStage(room);
    const live = Boolean(local.camera || local.microphone || local.screen);
    const key = `${sending}:${room.kind}:${room.role}:${live}`;
    if (key !== layout) {
      layout = key;
      const items = [];
      if (sending) {
        if (room.kind === "panel") items.push(live ? endLive : goLive);
        items.push(microphone, camera, screen);
        if (room.kind === "panel" && room.role === "speaker") items.push(leaveStage);
      }
      replace(bar, items);
      bar.hidden = items.length === 0;
    }
    setAttr(camera, "aria-pressed", local.camera ? "true" : "false");
    setAttr(microphone, "aria-pressed", local.microphone ? "true" : "false");
    setAttr(screen, "aria-pressed", local.screen ? "true" : "false");
  };
  return watchAll(session.store, [`room:${roomId}`, "local-media"], render);
}

/** The hand queue: the person's own hand, and for moderators everyone's. */
export function mountHands(container, session, roomId) {
  const own = h("div", { class: "hand" });
  const raise = h("button", { type: "button", text: t("hand.raise"), onclick: () => session.act("hand.raise", { room: roomId }) });
  const lower = h("button", { type: "button", text: t("hand.lower"), onclick: () => session.act("hand.lower", { room: roomId }) });
  const place = h("span", { class: "hint", "aria-live": "polite" });
  const queue = h("ol", { class: "hand-queue", "aria-label": t("hand.queue") });
  const queueSection = h("section", { class: "hands card", hidden: true }, h("h3", { text: t("hand.queue") }), queue);
  own.append(raise, lower, place);
  container.append(own, queueSection);
  const render = () => {
    const room = session.room(roomId);
    if (!room) return;
    const index = room.hands.findIndex((hand) => hand.user === room.me);
    const raised = index >= 0;
    const canRaise = !onStage(room) || raised;
    own.hidden = !canRaise;
    raise.hidden = raised;
    lower.hidden = !raised;
    setText(place, raised ? t("hand.place", { count: index + 1 }) : "");
    const manage = moderates(room);
    queueSection.hidden = !manage || room.hands.length === 0;
    if (!manage) return;
    replace(
      queue,
      room.hands.map((hand) =>
        h(
          "li",
          {},
          h("span", { text: hand.name }),
          room.kind === "panel" &&
            h("button", {
              type: "button",
              class: "small",
              text: t("stage.invite"),
              "aria-label": t("stage.inviteName", { name: hand.name }),
              onclick: () => session.act("role.set", { room: roomId, user: hand.user, role: "speaker" }, t("stage.invited", { name: hand.name })),
            }),
          h("button", {
            type: "button",
            class: "small",
            text: t("hand.lowerOther"),
            "aria-label": t("hand.lowerName", { name: hand.name }),
            onclick: () => session.act("hand.lower", { room: roomId, user: hand.user }),
          }),
        ),
      ),
    );
  };
  return watchAll(session.store, [`hands:${roomId}`, `room:${roomId}`], render);
}
