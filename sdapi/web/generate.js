// The Generate form: its fields as A1111's txt2img request, posted to /sdapi/v1/txt2img, the answer added to the
// gallery. The X/Y/Z plot sends the same request with its script on top.
import { post } from "./api.js";
import { addResult } from "./gallery.js";
import { showError, track } from "./status.js";

const NUMBERS = ["steps", "cfg_scale", "width", "height", "batch_size", "seed"];

const form = document.getElementById("generate-form");
const fields = form.elements;
const button = document.getElementById("generate-button");

// The request the form describes; null (with the browser pointing at the bad field) when a field is invalid.
export function txt2imgPayload() {
  if (!form.reportValidity()) return null;
  const payload = {
    prompt: fields.prompt.value,
    negative_prompt: fields.negative_prompt.value,
    sampler_name: fields.sampler_name.value,
  };
  for (const name of NUMBERS) payload[name] = Number(fields[name].value);
  // The override picks the model for this request only; A1111 restores the server's choice afterwards.
  if (fields.sd_model_checkpoint.value) {
    payload.override_settings = { sd_model_checkpoint: fields.sd_model_checkpoint.value };
  }
  return payload;
}

// `<lora:name:1>` where the prompt's cursor is (at its end unless the user placed it), spaced from its words.
function insertLora(name) {
  const prompt = fields.prompt;
  const { selectionStart: start, selectionEnd: end, value } = prompt;
  const before = start > 0 && !/\s$/.test(value.slice(0, start)) ? " " : "";
  const after = end < value.length && !/^\s/.test(value.slice(end)) ? " " : "";
  prompt.setRangeText(`${before}<lora:${name}:1>${after}`, start, end, "end");
  prompt.focus();
}

document.getElementById("add-lora").addEventListener("click", () => {
  const name = document.getElementById("lora").value;
  if (name) insertLora(name);
});

document.getElementById("random-seed").addEventListener("click", () => {
  fields.seed.value = "-1";
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const payload = txt2imgPayload();
  if (payload === null) return;
  button.disabled = true;
  try {
    addResult(payload, await track(() => post("sdapi/v1/txt2img", payload)));
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
});
