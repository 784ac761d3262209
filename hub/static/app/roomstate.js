/**
 * A joined room's state, built from a join reply and kept current by the room's events. Pure: no
 * DOM, no I/O. What applies something returns the topics it changed (`chat`, `notices`, `qa`,
 * `polls`, `awards`, `hands`, `stage`, `members`, `breakouts`, `room`); the session touches them
 * as store topics `topic:<room id>`.
 */

export const CHAT_KEPT = 2000; // chat messages in memory per room (the page shows a window)
const NOTICES_KEPT = 20;
const CLOSED_POLLS_KEPT = 10;
const RANK = { attendee: 0, speaker: 1, moderator: 2, organizer: 3 };
const NO_MEDIA = { audio: false, video: false, screen: false };
const NO_AWARDS = { polls: [], partnerships: [] };

/** The rank of a role label (unknown labels rank as attendees). */
export function rank(role) {
  return RANK[role] ?? 0;
}

/** A fresh room from its join reply; `me` is the hello's user, `sid` this session's. */
export function roomFromJoin(reply, me, sid) {
  const { id, kind, title, parent = null } = reply.room;
  const chat = { messages: [], ids: new Set(), reachedStart: false, memoryFull: false, loading: false, slowmode: 0, mutedUntil: 0 };
  const room = { id, kind, title, parent, me: me.id, chat, notices: [], closedPolls: [], awards: NO_AWARDS, reveal: null, voted: new Set(), rolesVersion: 0 };
  applySnapshot(room, reply, me, sid);
  return room;
}

/** Take the live state of a (re)join reply; the chat is kept, the rest is the snapshot's. */
export function applySnapshot(room, reply, me, sid) {
  const snap = reply.snapshot || {};
  Object.assign(room, { title: reply.room?.title ?? room.title, role: reply.role, members: reply.members ?? 0, epoch: reply.epoch, sid, hands: snap.hands || [], breakouts: snap.breakouts ?? null, endingAt: null });
  room.chat.slowmode = snap.slowmode || 0;
  room.chat.mutedUntil = snap.muted_until || 0;
  room.roles = new Map([
    ...(snap.moderators || []).map(({ user, name }) => [user, { role: "moderator", name }]),
    ...(snap.speakers || []).map(({ user, name }) => [user, { role: "speaker", name }]),
    [me.id, { role: reply.role, name: me.name }],
  ]);
  room.rolesVersion += 1;
  room.questions = new Map((snap.questions || []).map((q) => [q.id, { ...q }]));
  room.polls = new Map((snap.polls || []).map((view) => [view.poll.id, pollView(view)]));
  if (snap.closed_polls) room.closedPolls = snap.closed_polls.map((poll) => pollView({ poll, counts: poll.counts, voters: poll.voters }));
  if (snap.notices) room.notices = snap.notices.slice(-NOTICES_KEPT);
  if (snap.awards) room.awards = awardsFrom(snap.awards);
  // Someone who arrives after a lobby poll closed sees its result too, without the moment.
  const newest = room.closedPolls.at(-1)?.poll.id;
  if (room.kind === "lobby" && newest && room.reveal?.poll !== newest) room.reveal = { poll: newest, moment: false };
  room.peers = new Map();
  for (const peer of snap.peers || []) {
    room.peers.set(peer.sid, { ...peer, media: { ...NO_MEDIA, ...peer.media } });
    if (rank(peer.role) > 0) room.roles.set(peer.user, { role: peer.role, name: peer.name });
  }
}

/** The lobby's awards (protocol.md, "Polls"): the declared award polls `[{id, question, options,
 * profiles?, state}]` and the partnerships `[{title, members, text?, link?}]`, what is malformed
 * left out. */
function awardsFrom(awards) {
  const polls = Array.isArray(awards.polls) ? awards.polls.filter((poll) => typeof poll?.id === "string" && typeof poll.question === "string" && Array.isArray(poll.options)) : [];
  const partnerships = Array.isArray(awards.partnerships) ? awards.partnerships.filter((partnership) => typeof partnership?.title === "string") : [];
  return { polls: polls.map((poll) => ({ ...poll })), partnerships };
}

/** The ids of the award polls the lobby's Awards section shows (elsewhere none: a room's
 * declared polls, once opened, are ordinary polls of its Polls tab). */
export function awardPollIds(room) {
  return new Set(room.kind === "lobby" ? room.awards.polls.map((poll) => poll.id) : []);
}

function pollView({ poll, counts, voters, mine = null }) {
  return { poll: { ...poll }, counts: Array.isArray(counts) ? counts : null, voters: voters ?? null, mine };
}

/** Put chat messages (live or history) in place, in seq order, once each, within memory. */
export function addMessages(room, messages, { older = false } = {}) {
  const chat = room.chat;
  const fresh = messages.filter((m) => typeof m?.id === "string" && !chat.ids.has(m.id));
  if (!fresh.length) return [];
  for (const m of fresh) chat.ids.add(m.id);
  chat.messages.push(...fresh);
  chat.messages.sort((a, b) => a.seq - b.seq);
  if (chat.messages.length > CHAT_KEPT) {
    // The oldest go first; older pages stop loading once memory is full.
    for (const m of chat.messages.splice(0, chat.messages.length - CHAT_KEPT)) chat.ids.delete(m.id);
    chat.memoryFull ||= older;
    chat.reachedStart = false;
  }
  return ["chat"];
}

/** The role of `user` in the room as the hub told it ("attendee" when it told nothing). */
export function roleOf(room, user) {
  return room.roles.get(user)?.role || "attendee";
}

/** Whether the signed-in person moderates the room. */
export function moderates(room) {
  return rank(room.role) >= RANK.moderator;
}

/** Whether the signed-in person is on the stage (speaker or more). */
export function onStage(room) {
  return rank(room.role) >= RANK.speaker;
}

/** Open questions, most votes first, then in the order asked; then the last closed ones. */
export function sortedQuestions(room) {
  const all = [...room.questions.values()];
  const open = all.filter((q) => q.state === "open").sort((a, b) => b.votes - a.votes || (a.order ?? 0) - (b.order ?? 0));
  return [...open, ...all.filter((q) => q.state !== "open").slice(-20)];
}

/** A panel's stage: speakers, and moderators while live. */
export function stageMembers(room) {
  return [...room.peers.values()]
    .map((peer) => ({ ...peer, role: roleOf(room, peer.user) }))
    .filter(({ role, media }) => role === "speaker" || (rank(role) >= RANK.moderator && (media.audio || media.video || media.screen)))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Apply one event of the room; returns the topics it changed. */
export function applyEvent(room, ev) {
  switch (ev.ev) {
    case "chat":
      return addMessages(room, [ev]);
    case "chat.deleted": {
      const index = room.chat.messages.findIndex((m) => m.id === ev.msg);
      if (index < 0) return [];
      room.chat.ids.delete(ev.msg);
      room.chat.messages.splice(index, 1);
      return ["chat"];
    }
    case "chat.muted":
      if (ev.user === room.me) room.chat.mutedUntil = ev.until || 0;
      return ["room"];
    case "room.slowmode":
      room.chat.slowmode = ev.seconds || 0;
      return ["room"];
    case "notice":
      // A recovered join's snapshot holds the notices its missed events bring again.
      if (room.notices.some((notice) => notice.seq === ev.seq)) return [];
      room.notices = [...room.notices, ev].slice(-NOTICES_KEPT);
      return ["notices"];
    case "qa": {
      const known = room.questions.get(ev.question.id);
      // Counts never go down: a batch queued before a join may be older than its snapshot.
      room.questions.set(ev.question.id, { ...known, ...ev.question, votes: Math.max(ev.question.votes || 0, known?.votes || 0), order: known?.order ?? ev.seq });
      return ["qa"];
    }
    case "qa.votes": {
      const question = room.questions.get(ev.question);
      if (!question || ev.votes <= question.votes) return [];
      question.votes = ev.votes;
      return ["qa"];
    }
    case "poll":
      return applyPoll(room, ev.poll);
    case "poll.tally": {
      const view = room.polls.get(ev.poll);
      if (view) Object.assign(view, { counts: ev.counts, voters: ev.voters });
      return ["polls"];
    }
    case "hands":
      room.hands = ev.queue || [];
      return ["hands"];
    case "role":
      room.roles.set(ev.user, { role: ev.role, name: room.roles.get(ev.user)?.name || nameOf(room, ev.user) });
      if (ev.user === room.me) room.role = ev.role;
      for (const peer of room.peers.values()) if (peer.user === ev.user) peer.role = ev.role;
      room.rolesVersion += 1;
      return ["room", "stage", "hands", "chat", "members"];
    case "presence":
      return applyPresence(room, ev);
    case "media": {
      const media = { audio: ev.audio, video: ev.video, screen: ev.screen };
      const name = ev.name || nameOf(room, ev.user);
      if (room.peers.has(ev.sid)) Object.assign(room.peers.get(ev.sid), { media, name });
      else if (ev.sid !== room.sid && (room.kind !== "panel" || rank(roleOf(room, ev.user)) >= RANK.speaker)) {
        // In a panel (whose join and leave lists stop at 200 members) a new session of someone on
        // stage replaces their old one: one tile each.
        if (room.kind === "panel") for (const [sid, peer] of room.peers) if (peer.user === ev.user) room.peers.delete(sid);
        room.peers.set(ev.sid, { sid: ev.sid, user: ev.user, name, role: roleOf(room, ev.user), media });
      }
      return ["stage"];
    }
    case "breakouts": {
      // One's own room comes apart from the round's event: kept while the round is the same.
      const assigned = room.breakouts?.assigned;
      room.breakouts = ev.rooms?.length ? { ...ev, parent: room.id } : null;
      if (assigned && room.breakouts?.rooms.some((child) => child.id === assigned)) room.breakouts.assigned = assigned;
      return ["breakouts"];
    }
    case "breakout.ending":
      room.endingAt = ev.ends_at;
      return ["breakouts"];
    default:
      return [];
  }
}

function applyPoll(room, poll) {
  const open = room.polls.get(poll.id);
  const award = room.awards.polls.find((declared) => declared.id === poll.id);
  if (award) award.state = poll.state;
  const changed = award ? ["polls", "awards"] : ["polls"];
  if (poll.state !== "closed") {
    room.polls.set(poll.id, open ? { ...open, poll: { ...poll } } : pollView({ poll }));
    return changed;
  }
  // The results moment: a lobby poll closing while the person is there (once, even when a
  // recovered join brings its event again).
  if (room.kind === "lobby" && !room.closedPolls.some((view) => view.poll.id === poll.id)) room.reveal = { poll: poll.id, moment: true };
  room.polls.delete(poll.id);
  // Results hidden from everyone: a moderator keeps the last tally they had.
  const shown = Array.isArray(poll.counts) || !moderates(room) ? poll : open || {};
  const closed = pollView({ poll, counts: shown.counts, voters: shown.voters, mine: open?.mine });
  room.closedPolls = [...room.closedPolls.filter((view) => view.poll.id !== poll.id), closed].slice(-CLOSED_POLLS_KEPT);
  return changed;
}

function applyPresence(room, ev) {
  room.members = ev.count ?? room.members;
  const changed = ["members"];
  for (const { sid } of ev.left || []) if (room.peers.delete(sid)) changed.push("stage");
  for (const { sid, user, name } of ev.joined || []) {
    const known = room.peers.get(sid);
    if (known) {
      if (known.name !== name) changed.push("stage"); // known first from a media event: no name
      known.name = name;
    } else if (sid !== room.sid && (room.kind !== "panel" || rank(roleOf(room, user)) >= RANK.speaker)) {
      room.peers.set(sid, { sid, user, name, role: roleOf(room, user), media: NO_MEDIA });
      changed.push("stage");
    }
  }
  return changed;
}

function nameOf(room, user) {
  return [...room.peers.values()].find((peer) => peer.user === user)?.name || room.roles.get(user)?.name || user;
}

/** A poll's results as rows `[{option, index, count, share}]` in option order (share in 0..1),
 * or null when hidden. */
export function results(view) {
  if (!Array.isArray(view.counts)) return null;
  const total = view.counts.reduce((sum, count) => sum + count, 0);
  return view.poll.options.map((option, index) => ({ option, index, count: view.counts[index] || 0, share: total ? (view.counts[index] || 0) / total : 0 }));
}

/** The options of a closed poll's view with the most votes, as `results` rows (several on a
 * tie); [] when nobody voted; null when the counts are hidden. */
export function winners(view) {
  const rows = results(view);
  if (!rows) return null;
  const most = Math.max(0, ...rows.map((row) => row.count));
  return most ? rows.filter((row) => row.count === most) : [];
}
