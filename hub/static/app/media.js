/**
 * Camera, microphone and screen between the members of a room, peer to peer over the hub's
 * signalling with perfect negotiation: `LocalMedia` holds one's own tracks, a `Mesh` one
 * `PeerLink` (an RTCPeerConnection) per member media is exchanged with.
 */
import { t } from "./strings.js";

/** What each source of one's own media captures: its slot, its kind, how to open it. */
const SOURCES = {
  camera: ["video", () => navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 } })],
  microphone: ["audio", () => navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } })],
  screen: ["video", () => navigator.mediaDevices.getDisplayMedia({ video: true })],
};

/** Why a capture of `kind` ("audio", "video") failed, in the page's language: the browser's
 * reasons people can act on by name, its own (English) message for the rest. */
function captureFailure(error, kind) {
  const name = error?.name;
  if (name === "NotAllowedError" || name === "SecurityError") return t(`media.denied.${kind}`);
  if (name === "NotFoundError" || name === "OverconstrainedError") return t(`media.missing.${kind}`);
  if (name === "NotReadableError") return t(`media.busy.${kind}`);
  return t("media.failed", { reason: error?.message || String(error) });
}

/** The person's own tracks (camera, microphone, screen), shared by the rooms they visit. */
export class LocalMedia {
  constructor(session) {
    this.session = session;
    this.camera = this.microphone = this.screen = null;
    this.stream = new MediaStream(); // the preview: camera or screen, and the microphone
    this._listeners = new Set();
    this._wanted = {};
    this._busy = {}; // source -> the capture or stop under way
  }

  /** `{audio, video, screen}` as the room's `media` command states it. */
  get state() {
    return { audio: Boolean(this.microphone), video: Boolean(this.camera), screen: Boolean(this.screen) };
  }

  /** The track the video senders carry: the screen while sharing, else the camera. */
  get videoTrack() {
    return this.screen || this.camera;
  }

  /** Call `listener()` whenever a track starts or stops. */
  onChange(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  /** Start or stop one source (`camera`, `microphone`, `screen`); resolves whether it ends as
   * asked. Calls are serialized per source: the last wish wins, once a capture under way ends. */
  set(source, on) {
    this._wanted[source] = on;
    this._busy[source] ||= this._apply(source).finally(() => delete this._busy[source]);
    return this._busy[source].then(() => Boolean(this[source]) === on);
  }

  async _apply(source) {
    while (Boolean(this[source]) !== this._wanted[source]) {
      if (!this._wanted[source]) {
        this[source].stop();
        this[source] = null;
        this._changed();
        continue;
      }
      const [kind, open] = SOURCES[source];
      let track;
      try {
        const stream = await open();
        track = stream.getTracks().find((each) => each.kind === kind);
        for (const other of stream.getTracks()) if (other !== track) other.stop();
      } catch (error) {
        this.session.toast(captureFailure(error, kind), "error");
      }
      if (!track) return (this._wanted[source] = false);
      this[source] = track;
      // The browser's own "Stop sharing" (or an unplugged camera) ends the track.
      track.addEventListener("ended", () => this[source] === track && this.set(source, false));
      this._changed();
    }
  }

  /** Stop every track, captures under way included (leaving the rooms with media). */
  stopAll() {
    for (const source of Object.keys(SOURCES)) if (this[source] || this._busy[source]) this.set(source, false);
  }

  _changed() {
    const wanted = [this.videoTrack, this.microphone].filter(Boolean);
    for (const track of this.stream.getTracks()) if (!wanted.includes(track)) this.stream.removeTrack(track);
    for (const track of wanted) if (!this.stream.getTracks().includes(track)) this.stream.addTrack(track);
    for (const listener of this._listeners) listener();
    return true;
  }
}

/** Whether the person and a peer exchange media in `room` peer to peer: everyone in workshops
 * and breakouts; nobody in panels, whose stage goes through the SFU (sfu.js). */
export function exchangesMedia(room) {
  return room.kind !== "panel";
}

/**
 * The peer links of one room. Of two members, the one with the greater session id makes the link
 * and offers, once, an audio and a video transceiver both ways; the other answers. A camera or
 * microphone going on or off then only swaps the track a sender carries: no new offer, so two
 * people who switch their cameras on at once never offer at each other. (Perfect negotiation
 * still settles any later offer, an ICE restart say.)
 */
export class Mesh {
  constructor(session, local, roomId) {
    Object.assign(this, { session, local, roomId, links: new Map(), closed: false, sid: session.hub.sid });
    this._stops = [session.onSignal((ev) => ev.room === roomId && ev.from !== "sfu" && this._signal(ev)), local.onChange(() => this._localChanged())];
    const stats = setInterval(() => this._readStats(), 2000);
    this._stops.push(() => clearInterval(stats));
  }

  /** Make and drop links to follow the room's members; call after their list changed. */
  sync() {
    const room = this.session.room(this.roomId);
    if (!room || this.closed) return;
    // Links end with `bye` (the hub sends one when a peer leaves); a peer not listed yet (its
    // offer came before its presence) keeps its link; one no longer allowed loses it.
    for (const [sid, link] of this.links) if (room.peers.has(sid) && !exchangesMedia(room)) this._hangUp(sid, link);
    for (const peer of room.peers.values()) {
      if (this.session.hub.sid > peer.sid && !this.links.has(peer.sid) && exchangesMedia(room)) this.links.set(peer.sid, new PeerLink(this, peer.sid, true));
    }
  }

  /** Tell the room the person's media state. */
  publish() {
    if (!this.closed) this.session.hub.request("media", { room: this.roomId, ...this.local.state }).catch(() => {}); // said again at the next change or join
  }

  /** After a rejoin: a new connection is a new session, whose peers start afresh (the hub told
   * them `bye` for the old one); links of the same session stay. */
  rejoined() {
    if (this.session.hub.sid !== this.sid) this._reset();
    this.sync();
    this.publish();
  }

  _reset() {
    this.sid = this.session.hub.sid;
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }

  /** Hang up every link, telling each peer. */
  close() {
    this.closed = true;
    this._stops.forEach((stop) => stop());
    for (const [sid, link] of this.links) this._hangUp(sid, link);
  }

  _hangUp(sid, link, tell = true) {
    link.close();
    this.links.delete(sid);
    if (tell) this._send(sid, { type: "bye" });
    this._changed();
  }

  _signal(ev) {
    if (this.closed) return;
    if (this.session.hub.sid !== this.sid) this._reset(); // a signal to the new session came first
    const link = this.links.get(ev.from);
    if (ev.type === "bye") return link && this._hangUp(ev.from, link, false);
    if (link) return link.receive(ev);
    const room = this.session.room(this.roomId);
    // A candidate or answer of a link hung up already is dropped; an offer makes a link.
    if (ev.type !== "offer" || !room || !exchangesMedia(room)) return;
    const made = new PeerLink(this, ev.from, false);
    this.links.set(ev.from, made);
    made.receive(ev);
  }

  _localChanged() {
    for (const link of this.links.values()) link.sendTracks();
    this.publish();
  }

  _send(to, fields) {
    this.session.hub.request("signal", { room: this.roomId, to, ...fields }).catch((error) => {
      // The peer left before the hub could tell us.
      if (error.code === "not_found" && this.links.has(to)) this._hangUp(to, this.links.get(to), false);
    });
  }

  _changed() {
    this.session.touchRoom(this.roomId, ["media"]);
  }

  async _readStats() {
    const changed = await Promise.all([...this.links.values()].map((link) => link.readStats()));
    if (changed.some(Boolean)) this._changed();
  }
}

/** One RTCPeerConnection to one member's session: an audio and a video transceiver. */
export class PeerLink {
  constructor(mesh, sid, initiator) {
    Object.assign(this, { mesh, sid, polite: !initiator, remote: new MediaStream(), stats: { framesDecoded: 0 } });
    this.makingOffer = this.ignoreOffer = this.settingAnswer = false;
    this.chain = Promise.resolve();
    const pc = (this.pc = new RTCPeerConnection({ iceServers: mesh.session.hub.hello?.ice_servers || [] }));
    pc.ontrack = ({ track }) => {
      if (!this.remote.getTracks().includes(track)) this.remote.addTrack(track);
      track.onunmute = () => mesh._changed();
      mesh._changed();
    };
    pc.onnegotiationneeded = () => this._offer();
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate) return;
      const { candidate: line, sdpMid = null, sdpMLineIndex = null, usernameFragment } = candidate.toJSON();
      mesh._send(sid, { type: "candidate", candidate: { candidate: line, sdpMid, sdpMLineIndex, ...(usernameFragment && { usernameFragment }) } });
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") pc.restartIce();
      mesh._changed();
    };
    if (initiator) {
      for (const kind of ["audio", "video"]) pc.addTransceiver(kind, { direction: "sendrecv" });
      this.sendTracks();
    }
  }

  /** Put the person's current tracks (or none) on this link's senders. */
  sendTracks() {
    const local = this.mesh.local;
    for (const { sender, receiver } of this.pc.getTransceivers()) {
      const track = (receiver.track.kind === "audio" ? local.microphone : local.videoTrack) || null;
      if (this.pc.signalingState !== "closed" && sender.track !== track) sender.replaceTrack(track);
    }
  }

  async _offer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.mesh._send(this.sid, { type: "offer", sdp: this.pc.localDescription.sdp });
    } catch (error) {
      console.warn("livehub: offer failed", error);
    } finally {
      this.makingOffer = false;
    }
  }

  /** Take a signal from the peer; signals are handled one at a time, in order. */
  receive(ev) {
    this.chain = this.chain.then(() => this._receive(ev));
  }

  async _receive({ type, sdp, candidate }) {
    const pc = this.pc;
    try {
      if (type === "offer" || type === "answer") {
        const ready = !this.makingOffer && (pc.signalingState === "stable" || this.settingAnswer);
        this.ignoreOffer = !this.polite && type === "offer" && !ready;
        if (this.ignoreOffer) return;
        this.settingAnswer = type === "answer";
        await pc.setRemoteDescription({ type, sdp });
        this.settingAnswer = false;
        if (type === "offer") {
          // Send both ways on what the offer brought, so tracks only need swapping later.
          for (const transceiver of pc.getTransceivers()) if (transceiver.direction === "recvonly") transceiver.direction = "sendrecv";
          this.sendTracks();
          await pc.setLocalDescription();
          this.mesh._send(this.sid, { type: "answer", sdp: pc.localDescription.sdp });
        }
      } else if (type === "candidate" && candidate?.candidate) {
        await pc.addIceCandidate(candidate).catch((error) => {
          if (!this.ignoreOffer) throw error;
        });
      }
    } catch (error) {
      console.warn("livehub: signal failed", type, error);
    }
  }

  /** Read the incoming video's decoded frames; true when they changed. */
  async readStats() {
    if (this.pc.connectionState === "closed") return false;
    let framesDecoded = 0;
    try {
      (await this.pc.getStats()).forEach((entry) => {
        if (entry.type === "inbound-rtp" && entry.kind === "video") framesDecoded += entry.framesDecoded || 0;
      });
    } catch {
      return false;
    }
    const changed = framesDecoded !== this.stats.framesDecoded;
    this.stats = { framesDecoded };
    return changed;
  }

  close() {
    for (const track of this.remote.getTracks()) this.remote.removeTrack(track);
    this.pc.close();
  }
}
