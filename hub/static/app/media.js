/**
 * Camera, microphone and screen between the members of a room, peer to peer over the hub's
 * signalling, with perfect negotiation (MDN's pattern: the polite side rolls back on offer
 * glare, the impolite side ignores the other's offer).
 *
 * `LocalMedia` owns the person's own tracks (one camera, one microphone, one screen share). A
 * `Mesh` keeps one `PeerLink` (an RTCPeerConnection) per other member it exchanges media with and
 * publishes the room's `media` state. Sharing the screen replaces the camera's picture on the
 * video sender.
 */

import { rank, roleOf } from "./roomstate.js";
import { t } from "./strings.js";

const STATS_MS = 2000;

/** The person's own tracks, shared by every room they are in (one at a time on screen). */
export class LocalMedia {
  constructor(session) {
    this.session = session;
    this.camera = null;
    this.microphone = null;
    this.screen = null;
    this.stream = new MediaStream(); // the preview: camera or screen, and the microphone
    this._listeners = new Set();
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

  async setCamera(on) {
    if (on === Boolean(this.camera)) return true;
    if (on) {
      const track = await this._capture(() => navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 } }), "video");
      if (!track) return false;
      this.camera = track;
    } else {
      this.camera.stop();
      this.camera = null;
    }
    this._changed();
    return true;
  }

  async setMicrophone(on) {
    if (on === Boolean(this.microphone)) return true;
    if (on) {
      const track = await this._capture(
        () => navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } }),
        "audio",
      );
      if (!track) return false;
      this.microphone = track;
    } else {
      this.microphone.stop();
      this.microphone = null;
    }
    this._changed();
    return true;
  }

  async setScreen(on) {
    if (on === Boolean(this.screen)) return true;
    if (on) {
      if (!navigator.mediaDevices?.getDisplayMedia) {
        this.session.toast(t("media.noScreen"), "error");
        return false;
      }
      const track = await this._capture(() => navigator.mediaDevices.getDisplayMedia({ video: true }), "video");
      if (!track) return false;
      this.screen = track;
      // The browser's own "Stop sharing" ends the track.
      track.addEventListener("ended", () => {
        if (this.screen === track) {
          this.screen = null;
          this._changed();
        }
      });
    } else {
      this.screen.stop();
      this.screen = null;
    }
    this._changed();
    return true;
  }

  /** Stop every track (leaving the rooms with media). */
  stopAll() {
    for (const track of [this.camera, this.microphone, this.screen]) track?.stop();
    const had = this.camera || this.microphone || this.screen;
    this.camera = this.microphone = this.screen = null;
    if (had) this._changed();
  }

  async _capture(open, kind) {
    try {
      const stream = await open();
      const track = kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
      for (const other of stream.getTracks()) if (other !== track) other.stop();
      return track || null;
    } catch (error) {
      const denied = error && (error.name === "NotAllowedError" || error.name === "SecurityError");
      this.session.toast(denied ? t(`media.denied.${kind}`) : t("media.failed", { reason: error?.message || error }), "error");
      return null;
    }
  }

  _changed() {
    const wanted = [this.videoTrack, this.microphone].filter(Boolean);
    for (const track of this.stream.getTracks()) if (!wanted.includes(track)) this.stream.removeTrack(track);
    for (const track of wanted) if (!this.stream.getTracks().includes(track)) this.stream.addTrack(track);
    for (const listener of this._listeners) listener();
  }
}

/** Whether the person and a peer exchange media in `room`: everyone in workshops and
 * breakouts; in panels the stage among itself (the audience watches through the SFU). */
export function exchangesMedia(room, peer) {
  if (room.kind !== "panel") return true;
  return rank(room.role) >= rank("speaker") && rank(roleOf(room, peer.user)) >= rank("speaker");
}

/**
 * The peer links of one room. Of two members, the one with the greater session id makes the
 * link and offers, once, an audio and a video transceiver both ways; the other answers. Turning
 * a camera or microphone on or off then only swaps the track a sender carries: no new offer, so
 * two people who switch their cameras on at once never make offers at each other. (Perfect
 * negotiation still settles any later offer, an ICE restart say.)
 */
export class Mesh {
  constructor(session, local, roomId) {
    this.session = session;
    this.local = local;
    this.roomId = roomId;
    this.links = new Map(); // sid -> PeerLink
    this.closed = false;
    this._stopSignals = session.onSignal((ev) => {
      if (ev.room === roomId) this._signal(ev);
    });
    this._stopLocal = local.onChange(() => this._localChanged());
    this._stats = setInterval(() => this._readStats(), STATS_MS);
  }

  /** Make and drop links to follow the room's members; call after their list changed. */
  sync() {
    const room = this.session.room(this.roomId);
    if (!room || this.closed) return;
    // Links end with `bye` (the hub sends one when a peer leaves). A peer not listed yet (its
    // offer came before its presence) keeps its link; one no longer allowed loses it.
    for (const [sid, link] of this.links) {
      const peer = room.peers.get(sid);
      if (peer && !exchangesMedia(room, peer)) this._hangUp(sid, link);
    }
    const me = this.session.hub.sid;
    for (const peer of room.peers.values()) {
      if (me > peer.sid && !this.links.has(peer.sid) && exchangesMedia(room, peer)) this._link(peer.sid, true);
    }
  }

  /** Tell the room the person's media state. */
  publish() {
    if (this.closed) return;
    this.session.hub.request("media", { room: this.roomId, ...this.local.state }).catch(() => {
      /* not in the room any more, or reconnecting: the next change or join says it again */
    });
  }

  /** Drop every link without a word (a new connection is a new session on both sides). */
  reset() {
    for (const link of this.links.values()) link.close();
    this.links.clear();
    this.sync();
    this.publish();
  }

  /** Hang up every link, telling each peer. */
  close() {
    this.closed = true;
    this._stopSignals();
    this._stopLocal();
    clearInterval(this._stats);
    for (const [sid, link] of this.links) this._hangUp(sid, link);
  }

  _link(sid, initiator) {
    const link = new PeerLink(this, sid, initiator);
    this.links.set(sid, link);
    return link;
  }

  _hangUp(sid, link) {
    link.close();
    this.links.delete(sid);
    this._send(sid, { type: "bye" });
    this._changed();
  }

  _signal(ev) {
    if (this.closed) return;
    let link = this.links.get(ev.from);
    if (ev.type === "bye") {
      link?.close();
      this.links.delete(ev.from);
      this._changed();
      return;
    }
    if (!link) {
      if (ev.type !== "offer") return; // a candidate or answer of a link hung up already
      const room = this.session.room(this.roomId);
      const peer = room?.peers.get(ev.from) || { sid: ev.from, user: ev.user };
      if (!room || !exchangesMedia(room, peer)) return;
      link = this._link(ev.from, false);
    }
    link.receive(ev);
  }

  _localChanged() {
    for (const link of this.links.values()) link.sendTracks();
    this.publish();
  }

  _send(to, fields) {
    this.session.hub.request("signal", { room: this.roomId, to, ...fields }).catch((error) => {
      const link = this.links.get(to);
      if (error.code === "not_found" && link) {
        link.close(); // the peer left before the hub could tell us
        this.links.delete(to);
        this._changed();
      }
    });
  }

  _changed() {
    this.session.touchRoom(this.roomId, ["media"]);
  }

  async _readStats() {
    let changed = false;
    for (const link of this.links.values()) changed = (await link.readStats()) || changed;
    if (changed) this._changed();
  }
}

/** One RTCPeerConnection to one member's session: an audio and a video transceiver. */
export class PeerLink {
  constructor(mesh, sid, initiator) {
    this.mesh = mesh;
    this.sid = sid;
    // The initiator is the impolite side of perfect negotiation.
    this.polite = !initiator;
    this.remote = new MediaStream();
    this.stats = { framesDecoded: 0, width: 0, height: 0 };
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingAnswer = false;
    this.chain = Promise.resolve();
    this.pc = new RTCPeerConnection({ iceServers: mesh.session.hub.hello?.ice_servers || [] });
    this.pc.addEventListener("track", ({ track }) => {
      if (!this.remote.getTracks().includes(track)) this.remote.addTrack(track);
      track.addEventListener("unmute", () => mesh._changed());
      mesh._changed();
    });
    this.pc.addEventListener("negotiationneeded", () => this._offer());
    this.pc.addEventListener("icecandidate", ({ candidate }) => {
      if (!candidate) return;
      const init = candidate.toJSON();
      const clean = { candidate: init.candidate ?? "", sdpMid: init.sdpMid ?? null, sdpMLineIndex: init.sdpMLineIndex ?? null };
      if (init.usernameFragment) clean.usernameFragment = init.usernameFragment;
      mesh._send(sid, { type: "candidate", candidate: clean });
    });
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc.connectionState === "failed") this.pc.restartIce();
      mesh._changed();
    });
    if (initiator) {
      for (const kind of ["audio", "video"]) this.pc.addTransceiver(kind, { direction: "sendrecv" });
      this.sendTracks();
    }
  }

  /** Put the person's current tracks (or none) on this link's senders. */
  sendTracks() {
    if (this.pc.signalingState === "closed") return;
    const local = this.mesh.local;
    for (const transceiver of this.pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      const track = kind === "audio" ? local.microphone : local.videoTrack;
      if (transceiver.sender.track !== (track || null)) transceiver.sender.replaceTrack(track || null);
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

  async _receive(ev) {
    const pc = this.pc;
    try {
      if (ev.type === "offer" || ev.type === "answer") {
        const ready = !this.makingOffer && (pc.signalingState === "stable" || this.settingAnswer);
        this.ignoreOffer = !this.polite && ev.type === "offer" && !ready;
        if (this.ignoreOffer) return;
        this.settingAnswer = ev.type === "answer";
        await pc.setRemoteDescription({ type: ev.type, sdp: ev.sdp });
        this.settingAnswer = false;
        if (ev.type === "offer") {
          // Send both ways on what the offer brought, so tracks only need swapping later.
          for (const transceiver of pc.getTransceivers()) {
            if (transceiver.direction === "recvonly") transceiver.direction = "sendrecv";
          }
          this.sendTracks();
          await pc.setLocalDescription();
          this.mesh._send(this.sid, { type: "answer", sdp: pc.localDescription.sdp });
        }
      } else if (ev.type === "candidate" && ev.candidate?.candidate) {
        try {
          await pc.addIceCandidate(ev.candidate);
        } catch (error) {
          if (!this.ignoreOffer) throw error;
        }
      }
    } catch (error) {
      console.warn("livehub: signal failed", ev.type, error);
    }
  }

  /** Read the incoming video's figures; true when they changed. */
  async readStats() {
    if (this.pc.connectionState === "closed") return false;
    let framesDecoded = 0;
    let width = 0;
    let height = 0;
    try {
      const report = await this.pc.getStats();
      report.forEach((entry) => {
        if (entry.type === "inbound-rtp" && entry.kind === "video") {
          framesDecoded += entry.framesDecoded || 0;
          width = Math.max(width, entry.frameWidth || 0);
          height = Math.max(height, entry.frameHeight || 0);
        }
      });
    } catch {
      return false;
    }
    const changed = framesDecoded !== this.stats.framesDecoded || width !== this.stats.width;
    this.stats = { framesDecoded, width, height };
    return changed;
  }

  close() {
    for (const track of this.remote.getTracks()) this.remote.removeTrack(track);
    this.pc.close();
  }
}
