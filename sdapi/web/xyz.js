// The X/Y/Z viewer: the Generate tab's request with `script_name: "x/y/z plot"` and the axes as sdapi's named
// `script_args` object; shows the grid (the answer's first image) and then every cell with its infotext.
import { post } from "./api.js";
import { el, imageUrl } from "./dom.js";
import { txt2imgPayload } from "./generate.js";
import { imageCard } from "./gallery.js";
import { showError, track } from "./status.js";

const AXES = ["x", "y", "z"];

const form = document.getElementById("xyz-form");
const fields = form.elements;
const button = document.getElementById("xyz-button");
const result = document.getElementById("xyz-result");

export function plotPayload(base) {
  const args = {
    draw_legend: fields.draw_legend.checked,
    no_fixed_seeds: fields.no_fixed_seeds.checked,
    include_lone_images: true, // the cells come back as images too, for the viewer to show one by one
  };
  for (const axis of AXES) {
    args[`${axis}_type`] = fields[`${axis}_type`].value;
    args[`${axis}_values`] = fields[`${axis}_values`].value;
  }
  return { ...base, script_name: "x/y/z plot", script_args: args };
}

// The answer's images are the grid, then the cells in grid order (x fastest); infotexts likewise.
function showPlot(request, answer) {
  const info = JSON.parse(answer.info);
  const first = info.index_of_first_image;
  // The plot fixes a random seed before it runs the cells; the first cell's seed makes it again.
  const grid = imageCard(answer.images[0], info.infotexts[0], { ...request, seed: info.seed }, "X/Y/Z grid");
  grid.classList.add("grid");
  const cells = answer.images.slice(first).map((image, i) => el("figure", { class: "card cell" },
    el("img", { src: imageUrl(image), alt: `Cell ${i + 1}` }),
    el("figcaption", {}, el("pre", { class: "infotext" }, info.infotexts[first + i] || ""))));
  result.replaceChildren(grid, el("h3", {}, `${cells.length} cells`), el("div", { class: "gallery" }, cells));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const base = txt2imgPayload();
  if (base === null) {
    showError("The Generate tab has an invalid field");
    return;
  }
  const payload = plotPayload(base);
  button.disabled = true;
  try {
    showPlot(payload, await track(() => post("sdapi/v1/txt2img", payload)));
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
});
