// The status strip under the header: while a job this page sent runs, poll GET /sdapi/v1/progress (about twice a
// second, as A1111's UI does) and show its fraction, its step and the live preview; Interrupt posts
// /sdapi/v1/interrupt. Also the page's one error line.
import { get, post } from "./api.js";
import { imageUrl } from "./dom.js";

const POLL_MS = 500;

const bar = document.getElementById("progress");
const text = document.getElementById("progress-text");
const preview = document.getElementById("preview");
const interruptButton = document.getElementById("interrupt");
const errorLine = document.getElementById("error");

let running = 0; // requests of this page that are still waiting for their answer
let timer = null;
let started = 0;

export function showError(error) {
  errorLine.textContent = error instanceof Error ? error.message : String(error);
  errorLine.hidden = false;
}

export function clearError() {
  errorLine.hidden = true;
  errorLine.textContent = "";
}

function show(progress) {
  const state = progress.state || {};
  bar.value = progress.progress;
  if (!state.job_count) {
    text.textContent = "Waiting in the queue…";
    return;
  }
  const parts = [];
  if (state.job_count > 1) parts.push(`batch ${Math.min(state.job_no + 1, state.job_count)}/${state.job_count}`);
  if (state.sampling_steps) parts.push(`step ${state.sampling_step}/${state.sampling_steps}`);
  if (progress.eta_relative > 0) parts.push(`about ${Math.ceil(progress.eta_relative)} s left`);
  text.textContent = `${Math.round(progress.progress * 100)}% ${parts.join(", ")}`;
  if (progress.current_image) {
    preview.src = imageUrl(progress.current_image);
    preview.hidden = false;
  }
}

// The next poll is scheduled when the last one answered: a busy server never gets a pile of waiting polls.
async function poll() {
  timer = null;
  try {
    const progress = await get("sdapi/v1/progress");
    if (running) show(progress);
  } catch {
    // one missed poll changes nothing: the next one is due soon
  }
  if (running && timer === null) timer = setTimeout(poll, POLL_MS);
}

// Run `send` (a function returning the request's promise) with the strip showing its progress.
export async function track(send) {
  clearError();
  running += 1;
  if (running === 1) {
    started = performance.now();
    bar.value = 0;
    text.textContent = "Starting…";
    interruptButton.disabled = false;
    interruptButton.textContent = "Interrupt";
    if (timer === null) timer = setTimeout(poll, POLL_MS);
  }
  let finished = false;
  try {
    const answer = await send();
    finished = true;
    return answer;
  } finally {
    running -= 1;
    if (!running) {
      clearTimeout(timer);
      timer = null;
      bar.value = finished ? 1 : 0;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      text.textContent = finished ? `Finished in ${seconds} s` : `Failed after ${seconds} s`;
      interruptButton.disabled = true;
      preview.hidden = true;
    }
  }
}

interruptButton.addEventListener("click", async () => {
  interruptButton.disabled = true;
  interruptButton.textContent = "Interrupting…";
  try {
    await post("sdapi/v1/interrupt");
  } catch (error) {
    showError(error);
  }
});
