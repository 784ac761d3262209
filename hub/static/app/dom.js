/**
 * Building the page: elements made from properties and text nodes only, never from HTML strings,
 * so whatever people typed is always shown as text.
 */

const PROPERTIES = new Set(["text", "hidden", "value", "checked", "disabled", "htmlFor", "className"]);

/**
 * An element: `h("button", {class: "x", onclick: fn, "aria-pressed": "false"}, "Text", child)`.
 * `on…` keys add listeners; `class`, `text`, `dataset` and a few form states are properties;
 * every other key is an attribute. null, undefined and false values and children are skipped.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (PROPERTIES.has(key)) node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return append(node, children);
}

/** A `<button type="button">` with its text and click handler. */
export function button(text, onclick, props = {}) {
  return h("button", { type: "button", text, onclick, ...props });
}

/** Append children (nodes, strings, nested arrays; null and false skipped) to `node`. */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** Replace `node`'s children. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** Set text only when it changed (no layout work for equal text). */
export function setText(node, text) {
  const value = String(text ?? "");
  if (node.textContent !== value) node.textContent = value;
}

/** An attribute set to `value`, or removed when `value` is null or false. */
export function setAttr(node, name, value) {
  if (value === null || value === undefined || value === false) node.removeAttribute(name);
  else if (node.getAttribute(name) !== String(value)) node.setAttribute(name, String(value));
}

/**
 * Keep one node per item in `container`, in the items' order, reusing them by key: `make(item)`
 * builds `{node, update(item, ...extra)}` for a new key; every kept one is updated.
 */
export function keyed(container, cache, items, key, make, ...extra) {
  const wanted = new Set(items.map(key));
  for (const [k, entry] of cache) {
    if (!wanted.has(k)) {
      entry.node.remove();
      cache.delete(k);
    }
  }
  let cursor = container.firstElementChild;
  for (const item of items) {
    let entry = cache.get(key(item));
    if (!entry) cache.set(key(item), (entry = make(item)));
    entry.update?.(item, ...extra);
    if (entry.node !== cursor) container.insertBefore(entry.node, cursor);
    else cursor = cursor.nextElementSibling;
  }
}

/** Text with its http(s) addresses as links (new tab, no referrer, no opener); anything else,
 * other schemes included, stays plain text. */
export function linkedText(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(/\bhttps?:\/\/[^\s<>"']+/gi)) {
    const raw = match[0].replace(/[).,;:!?]+$/, ""); // trailing punctuation is the sentence's
    let url;
    try {
      url = new URL(raw);
    } catch {
      continue;
    }
    fragment.append(text.slice(last, match.index), h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow ugc" }, raw));
    last = match.index + raw.length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

let counter = 0;

/** A labelled control: `<div class=field><label>…</label>control</div>`, with an optional hint. */
export function field(label, control, hint) {
  control.id ||= `f-${++counter}`;
  const hintNode = hint && h("span", { class: "hint", id: `${control.id}-hint`, text: hint });
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  return h("div", { class: "field" }, h("label", { htmlFor: control.id, text: label }), control, hintNode);
}

/** A fresh id for a radio group's name. */
export function uniqueId(prefix) {
  return `${prefix}-${++counter}`;
}

/** Two letters for an avatar. */
export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/);
  return (words.length > 1 ? words[0][0] + words.at(-1)[0] : words[0].slice(0, 2)).toUpperCase();
}
