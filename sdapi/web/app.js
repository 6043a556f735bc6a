// The page's entry point: the tabs (one per URL fragment, so a tab can be linked to) and the lists the forms choose
// from, filled from the API. Each tab's behaviour lives in its own module.
import { get, post } from "./api.js";
import { fillSelect } from "./dom.js";
import "./generate.js";
import { showError } from "./status.js";
import { setShown as showTraining } from "./training.js";
import "./xyz.js";

const TABS = ["generate", "xyz", "training"];

function showTab() {
  const wanted = location.hash.slice(1);
  const tab = TABS.includes(wanted) ? wanted : "generate";
  for (const name of TABS) document.getElementById(`tab-${name}`).hidden = name !== tab;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.tab === tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  showTraining(tab === "training");
}

const generateFields = document.getElementById("generate-form").elements;
const xyzFields = document.getElementById("xyz-form").elements;

// Each list on its own: one route failing leaves the others filled.
async function fill(path, apply) {
  try {
    apply(await get(path));
  } catch (error) {
    showError(`${path}: ${error.message}`);
  }
}

async function loadLists() {
  let current;
  await fill("sdapi/v1/options", (options) => { current = options.sd_model_checkpoint; });
  await Promise.all([
    fill("sdapi/v1/samplers", (samplers) => fillSelect(generateFields.sampler_name, samplers.map((s) => s.name), "Euler a")),
    fill("sdapi/v1/sd-models", (models) => fillSelect(generateFields.sd_model_checkpoint, models.map((m) => m.title), current)),
    fill("sdapi/v1/loras", (loras) => {
      const picker = document.getElementById("lora");
      fillSelect(picker, loras.map((l) => l.name));
      picker.disabled = document.getElementById("add-lora").disabled = !loras.length; // nothing to add
    }),
    fill("sdapi/v1/script-info", (scripts) => {
      const plot = scripts.find((s) => s.name === "x/y/z plot" && !s.is_img2img);
      const types = plot ? plot.args[0].choices : ["Nothing"];
      const initial = { x: "Seed", y: "Nothing", z: "Nothing" };
      for (const axis of ["x", "y", "z"]) fillSelect(xyzFields[`${axis}_type`], types, initial[axis]);
    }),
  ]);
}

// New files in the model folders show up once the server looked again (as A1111's refresh buttons do).
document.getElementById("refresh-lists").addEventListener("click", async () => {
  try {
    await Promise.all([post("sdapi/v1/refresh-checkpoints"), post("sdapi/v1/refresh-loras")]);
  } catch (error) {
    showError(error);
  }
  await loadLists();
});

window.addEventListener("hashchange", showTab);
showTab();
loadLists().then(() => { document.body.dataset.ready = "true"; });
