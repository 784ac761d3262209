/**
 * A joined room's state, built from a join reply and kept current by the room's events. Pure:
 * no DOM, no I/O. Each function that applies something returns the topics it changed (`chat`,
 * `notices`, `qa`, `polls`, `hands`, `stage`, `members`, `breakouts`, `room`), which the
 * session turns into store topics `topic:<room id>`.
 */

/** Chat messages kept in memory per room (the page shows a window of them). */
export const CHAT_KEPT = 2000;
/** Notices kept per room. */
export const NOTICES_KEPT = 20;
/** Closed polls kept per room (their results). */
export const CLOSED_POLLS_KEPT = 10;

const RANK = { attendee: 0, speaker: 1, moderator: 2, organizer: 3 };

/** The rank of a role label, for comparisons (unknown labels rank as attendees). */
export function rank(role) {
  return RANK[role] ?? 0;
}

/** A fresh room from its join reply; `me` is the hello's user. */
export function roomFromJoin(reply, me, sid) {
  const room = {
    id: reply.room.id,
    kind: reply.room.kind,
    title: reply.room.title,
    parent: reply.room.parent ?? null,
    role: reply.role,
    members: reply.members ?? 0,
    epoch: reply.epoch,
    me: me.id,
    sid,
    chat: {
      messages: [],
      ids: new Set(),
      reachedStart: false,
      memoryFull: false,
      loading: false,
      slowmode: 0,
      mutedUntil: 0,
      lastSent: 0,
    },
    notices: [],
    questions: new Map(),
    voted: new Set(),
    polls: new Map(),
    closedPolls: [],
    hands: [],
    roles: new Map(),
    peers: new Map(),
    breakouts: null,
    endingAt: null,
  };
  applySnapshot(room, reply, me, sid);
  return room;
}

/** Take the live state of a (re)join reply; chat is kept, the rest is the snapshot's. */
export function applySnapshot(room, reply, me, sid) {
  const snap = reply.snapshot || {};
  room.role = reply.role;
  room.members = reply.members ?? room.members;
  room.title = reply.room?.title ?? room.title;
  room.epoch = reply.epoch;
  room.sid = sid;
  room.chat.slowmode = snap.slowmode || 0;
  room.chat.mutedUntil = snap.muted_until || 0;
  room.roles = new Map();
  for (const entry of snap.moderators || []) {
    room.roles.set(entry.user, { role: "moderator", name: entry.name });
  }
  for (const entry of snap.speakers || []) room.roles.set(entry.user, { role: "speaker", name: entry.name });
  room.roles.set(me.id, { role: reply.role, name: me.name });
  room.rolesVersion = (room.rolesVersion || 0) + 1;
  room.questions = new Map();
  for (const question of snap.questions || []) room.questions.set(question.id, { ...question });
  room.polls = new Map();
  for (const view of snap.polls || []) room.polls.set(view.poll.id, pollView(view));
  if (Array.isArray(snap.closed_polls)) {
    room.closedPolls = snap.closed_polls.map((poll) => pollView({ poll, counts: poll.counts, voters: poll.voters }));
  }
  room.hands = Array.isArray(snap.hands) ? snap.hands : [];
  room.peers = new Map();
  for (const peer of snap.peers || []) {
    room.peers.set(peer.sid, { ...peer, media: { ...(peer.media || {}) } });
    if (rank(peer.role) > 0) room.roles.set(peer.user, { role: peer.role, name: peer.name });
  }
  room.breakouts = snap.breakouts ?? null;
  if (Array.isArray(snap.notices)) room.notices = snap.notices.slice(-NOTICES_KEPT);
  return ["room", "chat", "notices", "qa", "polls", "hands", "stage", "members", "breakouts"];
}

function pollView(view) {
  return {
    poll: { ...view.poll },
    counts: Array.isArray(view.counts) ? view.counts : null,
    voters: typeof view.voters === "number" ? view.voters : null,
    mine: view.mine ?? null,
  };
}

/** Put chat messages (events or history) in place, in seq order, without duplicates. */
export function addMessages(room, messages, { older = false } = {}) {
  const chat = room.chat;
  let added = 0;
  for (const message of messages) {
    if (!message || typeof message.id !== "string" || chat.ids.has(message.id)) continue;
    chat.ids.add(message.id);
    chat.messages.push(message);
    added += 1;
  }
  if (!added) return [];
  chat.messages.sort((a, b) => a.seq - b.seq);
  // Bounded: the oldest go first. Older pages stop loading once memory is full.
  if (chat.messages.length > CHAT_KEPT) {
    const dropped = chat.messages.splice(0, chat.messages.length - CHAT_KEPT);
    for (const message of dropped) chat.ids.delete(message.id);
    if (older) chat.memoryFull = true;
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

/** The open questions, most votes first, then in the order they were asked. */
export function sortedQuestions(room) {
  const open = [];
  const done = [];
  for (const question of room.questions.values()) (question.state === "open" ? open : done).push(question);
  open.sort((a, b) => b.votes - a.votes || (a.order ?? 0) - (b.order ?? 0));
  return [...open, ...done.slice(-20)];
}

/** The speaker tiles of a panel: members on stage (speakers; moderators while live). */
export function stageMembers(room) {
  const tiles = [];
  for (const peer of room.peers.values()) {
    const role = roleOf(room, peer.user);
    const live = peer.media && (peer.media.audio || peer.media.video || peer.media.screen);
    if (role === "speaker" || (rank(role) >= RANK.moderator && live)) tiles.push({ ...peer, role });
  }
  return tiles.sort((a, b) => a.name.localeCompare(b.name));
}

/** Apply one event of this room; returns the topics it changed. */
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
      if (ev.user !== room.me) return [];
      room.chat.mutedUntil = ev.until || 0;
      return ["room"];
    case "room.slowmode":
      room.chat.slowmode = ev.seconds || 0;
      return ["room"];
    case "notice":
      room.notices.push(ev);
      if (room.notices.length > NOTICES_KEPT) room.notices.splice(0, room.notices.length - NOTICES_KEPT);
      return ["notices"];
    case "qa": {
      const question = ev.question;
      const known = room.questions.get(question.id);
      const votes = Math.max(question.votes || 0, known?.votes || 0);
      room.questions.set(question.id, { ...known, ...question, votes, order: known?.order ?? ev.seq });
      return ["qa"];
    }
    case "qa.votes": {
      const question = room.questions.get(ev.question);
      // Counts never go down: a batch queued before a join may be older than its snapshot.
      if (!question || ev.votes <= question.votes) return [];
      question.votes = ev.votes;
      return ["qa"];
    }
    case "poll":
      return applyPoll(room, ev.poll);
    case "poll.tally": {
      const view = room.polls.get(ev.poll);
      if (!view) return [];
      view.counts = ev.counts;
      view.voters = ev.voters;
      return ["polls"];
    }
    case "hands":
      room.hands = ev.queue || [];
      return ["hands"];
    case "role": {
      const known = room.roles.get(ev.user);
      room.roles.set(ev.user, { role: ev.role, name: known?.name || nameOf(room, ev.user) });
      if (ev.user === room.me) room.role = ev.role;
      room.rolesVersion += 1;
      for (const peer of room.peers.values()) if (peer.user === ev.user) peer.role = ev.role;
      return ["room", "stage", "hands", "chat", "members"];
    }
    case "presence":
      return applyPresence(room, ev);
    case "media": {
      const peer = room.peers.get(ev.sid);
      const media = { audio: ev.audio, video: ev.video, screen: ev.screen };
      if (peer) peer.media = media;
      else if (ev.sid !== room.sid) {
        room.peers.set(ev.sid, { sid: ev.sid, user: ev.user, name: nameOf(room, ev.user), role: roleOf(room, ev.user), media });
      }
      return ["stage"];
    }
    case "breakouts":
      room.breakouts = ev.rooms && ev.rooms.length ? { ...ev, parent: room.id } : null;
      return ["breakouts"];
    case "breakout.ending":
      room.endingAt = ev.ends_at;
      return ["breakouts"];
    default:
      return [];
  }
}

function applyPoll(room, poll) {
  if (poll.state === "closed") {
    const open = room.polls.get(poll.id);
    room.polls.delete(poll.id);
    const closed = {
      poll: { ...poll },
      counts: Array.isArray(poll.counts) ? poll.counts : (open?.counts ?? null),
      voters: typeof poll.voters === "number" ? poll.voters : (open?.voters ?? null),
      mine: open?.mine ?? null,
    };
    // Where results are hidden from everyone, a moderator still sees the last tally they had.
    if (!Array.isArray(poll.counts) && !moderates(room)) {
      closed.counts = null;
      closed.voters = null;
    }
    room.closedPolls = room.closedPolls.filter((view) => view.poll.id !== poll.id);
    room.closedPolls.push(closed);
    if (room.closedPolls.length > CLOSED_POLLS_KEPT) room.closedPolls.shift();
  } else {
    const known = room.polls.get(poll.id);
    room.polls.set(poll.id, known ? { ...known, poll: { ...poll } } : pollView({ poll, mine: null }));
  }
  return ["polls"];
}

function applyPresence(room, ev) {
  room.members = ev.count ?? room.members;
  const changed = ["members"];
  for (const entry of ev.left || []) {
    if (room.peers.delete(entry.sid)) changed.push("stage");
  }
  for (const entry of ev.joined || []) {
    const known = room.peers.get(entry.sid);
    if (known) {
      // Known first from a media event, which carries no name.
      if (known.name !== entry.name) {
        known.name = entry.name;
        changed.push("stage");
      }
      continue;
    }
    if (entry.sid === room.sid) continue;
    if (room.kind === "panel" && rank(roleOf(room, entry.user)) < RANK.speaker) continue;
    room.peers.set(entry.sid, {
      sid: entry.sid,
      user: entry.user,
      name: entry.name,
      role: roleOf(room, entry.user),
      media: { audio: false, video: false, screen: false },
    });
    changed.push("stage");
  }
  return changed;
}

function nameOf(room, user) {
  for (const peer of room.peers.values()) if (peer.user === user) return peer.name;
  return room.roles.get(user)?.name || user;
}

/** A poll's results as rows: `[{option, count, share}]` (share in 0..1), or null when hidden. */
export function results(view) {
  if (!Array.isArray(view.counts)) return null;
  const total = view.counts.reduce((sum, count) => sum + count, 0);
  return view.poll.options.map((option, index) => {
    const count = view.counts[index] || 0;
    return { option, count, share: total ? count / total : 0 };
  });
}
