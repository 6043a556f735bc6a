// The gallery: each txt2img answer's images, newest first, with their infotexts and the request body that makes
// each image again.
import { el, imageUrl } from "./dom.js";

const gallery = document.getElementById("gallery");
const empty = document.getElementById("gallery-empty");

// The body that reproduces image `index` of an answer to `request`: a batch image alone with the seed it was
// actually drawn with (a batch image equals a single run with its own seed), a grid as the whole request. The
// variation seed matters only with a variation strength, which the form does not send.
export function reproducingPayload(request, info, index) {
  const first = info.index_of_first_image || 0;
  const variation = (seed) => (request.subseed_strength ? { subseed: seed } : {});
  if (index < first) return { ...request, seed: info.seed, ...variation(info.subseed) };
  const k = index - first;
  return { ...request, seed: info.all_seeds[k], ...variation(info.all_subseeds[k]), batch_size: 1, n_iter: 1 };
}

// navigator.clipboard exists only on https and localhost pages; elsewhere the JSON stays selected in its box
// for Ctrl+C. The box is shown either way, so the body can always be read.
async function copyPayload(box, button, payload) {
  box.value = JSON.stringify(payload, null, 2);
  box.hidden = false;
  try {
    await navigator.clipboard.writeText(box.value);
    button.textContent = "Copied";
  } catch {
    box.select();
    button.textContent = "Selected: press Ctrl+C";
  }
}

// One image with its infotext and a "Copy as API payload" button.
export function imageCard(image, infotext, payload, alt) {
  const box = el("textarea", { class: "payload", rows: 10, readonly: true, hidden: true, "aria-label": "API payload" });
  const button = el("button", { type: "button", class: "copy" }, "Copy as API payload");
  button.addEventListener("click", () => copyPayload(box, button, payload));
  return el("figure", { class: "card" },
    el("img", { src: imageUrl(image), alt }),
    el("figcaption", {}, el("pre", { class: "infotext" }, infotext || ""), button, box));
}

// Add a txt2img answer (its `info` is a JSON string, as A1111 sends it) to the top of the gallery.
export function addResult(request, answer) {
  const info = JSON.parse(answer.info);
  const cards = answer.images.map((image, i) => {
    const payload = reproducingPayload(request, info, i);
    return imageCard(image, info.infotexts[i], payload, `Seed ${payload.seed}`);
  });
  gallery.prepend(el("div", { class: "batch" }, cards));
  empty.hidden = true;
}
