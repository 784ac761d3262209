/**
 * A panel's stage through the hub's SFU (`signal {to: "sfu"}`): while the person is on stage and
 * live their microphone and camera (or screen) go to the SFU on one connection, and everyone
 * watches the stage on another, which the SFU offers and offers again whenever the stage changes.
 * A `bye` from the SFU (its connection failed, the media server restarted) or a refusal it may
 * lift (`unavailable`) starts that leg again after a pause that doubles up to ten seconds.
 */
import { onStage } from "./roomstate.js";

const SFU = "sfu";
const RETRY_FIRST_MS = 500;
const RETRY_CAP_MS = 10_000;
/** The simulcast layers of a speaker's video, highest first (Janus reads rids in that order):
 * the camera's 640x360 and half of it. Chromium sends at most two layers of a 640x360 picture
 * (three from 960x540 up), so two it is: the viewer's main speaker at 360p, the others at 180p. */
export const SIMULCAST = [
  { rid: "h", maxBitrate: 500_000 },
  { rid: "l", scaleResolutionDownBy: 2, maxBitrate: 150_000 },
];

export class StageFeed {
  constructor(session, local, roomId) {
    Object.assign(this, { session, local, roomId, closed: false, sid: session.hub.sid });
    /** Publisher sid -> the MediaStream of its tracks, as the last offer placed them. */
    this.streams = new Map();
    /** Publisher sid -> `{framesDecoded}` of its video, read every two seconds. */
    this.stats = new Map();
    this.legs = { publish: null, watch: null }; // the RTCPeerConnection of each leg
    this._pauses = { publish: RETRY_FIRST_MS, watch: RETRY_FIRST_MS };
    this._timers = {};
    this._mids = new Map(); // mid -> {sid, user, kind} of the watch leg's last offer
    // Legs whose (re)starting signal is not answered yet: a `bye` before that answer is about the
    // connection it replaced (events and replies come in order on the socket).
    this._starting = new Set();
    this._stops = [session.onSignal((ev) => ev.room === roomId && ev.from === SFU && this._signal(ev)), local.onChange(() => this.sync())];
    const stats = setInterval(() => this._readStats(), 2000);
    this._stops.push(() => clearInterval(stats));
  }

  /** Publish while on stage and live, watch all along; call after the room or its role changed. */
  sync() {
    const room = this.session.room(this.roomId);
    if (!room || this.closed) return;
    const live = Boolean(this.local.camera || this.local.microphone || this.local.screen);
    if (onStage(room) && live) this.legs.publish ? this._sendTracks() : this._publish();
    else if (this.legs.publish || this._timers.publish) this._end("publish", true);
    if (!this.legs.watch && !this._timers.watch) this._watch();
  }

  /** After a rejoin: a new session has no connections with the SFU (the hub ended the old
   * session's); a rejoin of the same session keeps them. */
  rejoined() {
    if (this.session.hub.sid !== this.sid) {
      this.sid = this.session.hub.sid;
      for (const leg of ["publish", "watch"]) this._end(leg, false);
    }
    this.sync();
  }

  /** End both legs, telling the SFU. */
  close() {
    this.closed = true;
    this._stops.forEach((stop) => stop());
    for (const leg of ["publish", "watch"]) this._end(leg, true);
  }

  _newPc(leg) {
    const pc = new RTCPeerConnection({ iceServers: this.session.hub.hello?.ice_servers || [] });
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate || this.legs[leg] !== pc) return;
      const { candidate: line, sdpMid = null, sdpMLineIndex = null, usernameFragment } = candidate.toJSON();
      this._send({ type: "candidate", leg, candidate: { candidate: line, sdpMid, sdpMLineIndex, ...(usernameFragment && { usernameFragment }) } });
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" && this.legs[leg] === pc) this._again(leg);
    };
    this.legs[leg] = pc;
    return pc;
  }

  async _publish() {
    const pc = this._newPc("publish");
    pc.addTransceiver("audio", { direction: "sendonly" });
    // Where the SFU takes simulcast (the hello's `sfu`), the video goes in layers it picks from
    // for each viewer; the camera or screen is swapped on the same sender either way.
    const simulcast = Boolean(this.session.hub.hello?.sfu?.simulcast);
    pc.addTransceiver("video", { direction: "sendonly", ...(simulcast && { sendEncodings: SIMULCAST }) });
    this._sendTracks();
    try {
      await pc.setLocalDescription();
      await this._start("publish", { type: "offer", sdp: pc.localDescription.sdp });
    } catch (error) {
      this._refused("publish", pc, error);
    }
  }

  /** Put the person's current tracks (or none) on the publishing senders: no new offer. */
  _sendTracks() {
    const pc = this.legs.publish;
    if (!pc || pc.signalingState === "closed") return;
    for (const { sender, receiver } of pc.getTransceivers()) {
      const track = (receiver.track.kind === "audio" ? this.local.microphone : this.local.videoTrack) || null;
      if (sender.track !== track) sender.replaceTrack(track);
    }
  }

  async _watch() {
    const pc = this._newPc("watch");
    pc.ontrack = () => this._place();
    try {
      await this._start("watch", { type: "subscribe" });
    } catch (error) {
      this._refused("watch", pc, error);
    }
  }

  async _start(leg, fields) {
    this._starting.add(leg);
    try {
      await this._send(fields, leg);
    } finally {
      this._starting.delete(leg);
    }
  }

  async _signal(ev) {
    const pc = this.legs[ev.leg];
    if (this.closed || !pc) return;
    try {
      if (ev.type === "bye") return this._starting.has(ev.leg) || this._again(ev.leg);
      if (ev.leg === "publish" && ev.type === "answer") {
        await pc.setRemoteDescription({ type: "answer", sdp: ev.sdp });
        this._pauses.publish = RETRY_FIRST_MS;
      } else if (ev.leg === "watch" && ev.type === "offer") {
        this._mids = new Map((ev.tracks || []).map((track) => [track.mid, track]));
        await pc.setRemoteDescription({ type: "offer", sdp: ev.sdp });
        await pc.setLocalDescription();
        await this._send({ type: "answer", sdp: pc.localDescription.sdp });
        this._pauses.watch = RETRY_FIRST_MS;
        this._place();
      }
    } catch (error) {
      console.warn("livehub: stage signal failed", ev.type, error);
    }
  }

  /** Sort the watching connection's tracks into one stream per publisher, as the offer says. */
  _place() {
    const pc = this.legs.watch;
    const wanted = new Map();
    for (const transceiver of pc?.getTransceivers() || []) {
      const track = this._mids.get(transceiver.mid);
      if (track && transceiver.currentDirection !== "inactive") wanted.set(transceiver.receiver.track, track.sid);
    }
    for (const [sid, stream] of this.streams) {
      for (const track of stream.getTracks()) if (wanted.get(track) !== sid) stream.removeTrack(track);
      if (!stream.getTracks().length) this.streams.delete(sid);
    }
    for (const [track, sid] of wanted) {
      if (!this.streams.has(sid)) this.streams.set(sid, new MediaStream());
      const stream = this.streams.get(sid);
      if (!stream.getTracks().includes(track)) stream.addTrack(track);
    }
    this._changed();
  }

  /** A leg the SFU refused: try again later when the refusal may lift. */
  _refused(leg, pc, error) {
    if (this.legs[leg] !== pc) return;
    if (error?.code === "unavailable" || error?.code === "rate_limited" || error?.code === "timeout") this._again(leg);
    else this._end(leg, false);
  }

  /** Drop the leg and start it again after the next pause. */
  _again(leg) {
    this._end(leg, false);
    if (this.closed) return;
    const pause = this._pauses[leg];
    this._pauses[leg] = Math.min(RETRY_CAP_MS, pause * 2);
    this._timers[leg] = setTimeout(() => {
      delete this._timers[leg];
      this.sync();
    }, pause);
  }

  _end(leg, tell) {
    clearTimeout(this._timers[leg]);
    delete this._timers[leg];
    const pc = this.legs[leg];
    this.legs[leg] = null;
    if (!pc) return;
    pc.close();
    if (tell) this._send({ type: "bye", leg });
    if (leg === "watch") {
      this.streams.clear();
      this._changed();
    }
  }

  _send(fields, leg) {
    const sent = this.session.hub.request("signal", { room: this.roomId, to: SFU, ...fields });
    return leg ? sent : sent.catch(() => {}); // a failed answer or candidate shows as a failed connection
  }

  _changed() {
    this.session.touchRoom(this.roomId, ["media"]);
  }

  async _readStats() {
    const pc = this.legs.watch;
    if (!pc || pc.connectionState === "closed") return;
    const frames = new Map();
    try {
      const bySsrcMid = new Map(pc.getTransceivers().map((t) => [t.mid, this._mids.get(t.mid)?.sid]));
      (await pc.getStats()).forEach((entry) => {
        if (entry.type !== "inbound-rtp" || entry.kind !== "video") return;
        const sid = bySsrcMid.get(entry.mid);
        if (sid) frames.set(sid, (frames.get(sid) || 0) + (entry.framesDecoded || 0));
      });
    } catch {
      return;
    }
    let changed = false;
    for (const [sid, framesDecoded] of frames) {
      if (this.stats.get(sid)?.framesDecoded !== framesDecoded) changed = true;
      this.stats.set(sid, { framesDecoded });
    }
    if (changed) this._changed();
  }
}
