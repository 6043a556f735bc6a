// Small DOM helpers. Text always goes in as text nodes, never as HTML: prompts, infotexts and file names are
// whatever a user typed, and as markup they could run script in this page.

// An element with attributes ("on…" ones become event listeners) and children (strings become text).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((child) => child !== undefined && child !== null && child !== false));
  return node;
}

// Replace the options of a <select>, keeping the current choice if still offered, else choosing `preferred`
// (else the first).
export function fillSelect(select, values, preferred) {
  const keep = values.includes(select.value) ? select.value : preferred;
  select.replaceChildren(...values.map((value) => el("option", { value }, value)));
  if (values.includes(keep)) select.value = keep;
}

// An image of an API answer (bare base64, PNG unless the server's samples_format says JPEG or WebP) as a URL
// an <img> shows.
export function imageUrl(base64) {
  const type = base64.startsWith("/9j/") ? "jpeg" : base64.startsWith("UklGR") ? "webp" : "png";
  return `data:image/${type};base64,${base64}`;
}
