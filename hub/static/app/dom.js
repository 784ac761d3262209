/**
 * Building the page: elements made with properties and text nodes only, never from HTML
 * strings, so text that people typed is always shown as text.
 */

/**
 * An element: `h("button", {class: "x", onclick: fn, "aria-pressed": "false"}, "Text", child)`.
 * Keys starting with `on` add listeners; `class`, `text`, `hidden`, `value`, `checked`,
 * `disabled` and `dataset` are set as properties; every other key is an attribute (null or
 * false leaves it out). Children are nodes or strings (text nodes); null and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "text") {
      node.textContent = value;
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (["hidden", "value", "checked", "disabled", "htmlFor"].includes(key)) {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

/** Append children (nodes, strings, arrays of them; null skipped) to `node`. */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
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

/** Toggle an attribute: present with `value` when `on`, absent otherwise. */
export function setAttr(node, name, value) {
  if (value === null || value === undefined || value === false) node.removeAttribute(name);
  else if (node.getAttribute(name) !== String(value)) node.setAttribute(name, String(value));
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/gi;

/**
 * Text with its http(s) addresses as links (opened in a new tab, no referrer, no opener);
 * anything else, other schemes included, stays plain text.
 */
export function linkedText(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    // Trailing punctuation belongs to the sentence, not the address.
    const raw = match[0].replace(/[).,;:!?]+$/, "");
    let url = null;
    try {
      url = new URL(raw);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) continue;
    fragment.append(text.slice(last, match.index));
    fragment.append(
      h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow ugc" }, raw),
    );
    last = match.index + raw.length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

let uniqueCounter = 0;

/** A document-unique id for label and aria references. */
export function uniqueId(prefix = "id") {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/** A labelled field: `<label>` + control, returning `{wrap, input}`. */
export function field(label, control, hint) {
  const id = control.id || uniqueId("f");
  control.id = id;
  const hintNode = hint ? h("span", { class: "hint", id: `${id}-hint`, text: hint }) : null;
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  const wrap = h("div", { class: "field" }, h("label", { htmlFor: id, text: label }), control, hintNode);
  return { wrap, input: control };
}

/** Two letters for an avatar. */
export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}
