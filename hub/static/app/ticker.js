/**
 * One clock for every countdown on the page: each second it rewrites the nodes registered
 * with a deadline, and forgets those no longer in the document.
 */

import { setText } from "./dom.js";

const entries = new Set();
let timer = null;

function tick() {
  const now = Date.now() / 1000;
  for (const entry of entries) {
    if (!entry.node.isConnected) {
      entries.delete(entry);
      continue;
    }
    setText(entry.node, entry.format(Math.max(0, entry.deadline - now)));
  }
  if (!entries.size) {
    clearInterval(timer);
    timer = null;
  }
}

/** Show `format(seconds left)` in `node` until `deadline` (unix seconds), updated each second. */
export function countdownIn(node, deadline, format) {
  for (const entry of entries) if (entry.node === node) entries.delete(entry);
  const entry = { node, deadline, format };
  entries.add(entry);
  setText(node, format(Math.max(0, deadline - Date.now() / 1000)));
  if (!timer) timer = setInterval(tick, 1000);
}
