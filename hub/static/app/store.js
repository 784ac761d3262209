/**
 * The app's state in one place, and frame-batched updates: handlers of hub events change the
 * state and `touch` the topics they changed; views watching a topic render once per animation
 * frame however many events arrived (a busy chat costs one render per frame, not one per
 * message).
 */

export class Store {
  constructor(state) {
    this.state = state;
    this._dirty = new Set();
    this._watchers = new Map();
    this._scheduled = false;
    this._flush = () => this.flush();
  }

  /** Mark topics changed; their watchers run in the next frame. */
  touch(...topics) {
    for (const topic of topics) this._dirty.add(topic);
    if (this._scheduled) return;
    this._scheduled = true;
    // Hidden tabs get no animation frames: a timer keeps the state's views current there.
    if (document.hidden) setTimeout(this._flush, 250);
    else requestAnimationFrame(this._flush);
  }

  /** Run `render` whenever `topic` changed; returns a function that stops it. */
  watch(topic, render) {
    let set = this._watchers.get(topic);
    if (!set) this._watchers.set(topic, (set = new Set()));
    set.add(render);
    return () => {
      set.delete(render);
      if (!set.size) this._watchers.delete(topic);
    };
  }

  /** Render every changed topic now (tests and the first paint call it directly). */
  flush() {
    this._scheduled = false;
    const dirty = this._dirty;
    this._dirty = new Set();
    const ran = new Set();
    for (const topic of dirty) {
      for (const render of this._watchers.get(topic) || []) {
        if (ran.has(render)) continue; // one render per frame, even when watching several topics
        ran.add(render);
        try {
          render();
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    }
  }
}

/** Render now and whenever one of `topics` changed; returns the function that stops it. */
export function watchAll(store, topics, render) {
  const stops = topics.map((topic) => store.watch(topic, render));
  render();
  return () => stops.forEach((stop) => stop());
}
