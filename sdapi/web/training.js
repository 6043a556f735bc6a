// The training monitor: the jobs of GET /lora/train; for the chosen one its view, its loss curve (rows fetched
// incrementally with since_step) and its per-epoch samples; Cancel posts /lora/train/{id}/cancel. Refreshed every
// few seconds, only while the tab is shown.
import { get, post } from "./api.js";
import { drawLoss } from "./chart.js";
import { el } from "./dom.js";
import { showError } from "./status.js";

const REFRESH_MS = 2000;
const FINAL = new Set(["done", "failed", "cancelled"]);

const jobsBody = document.querySelector("#jobs tbody");
const noJobs = document.getElementById("no-jobs");
const panel = document.getElementById("job");
const title = document.getElementById("job-title");
const statusLine = document.getElementById("job-status");
const jobProgress = document.getElementById("job-progress");
const errorBox = document.getElementById("job-error");
const chart = document.getElementById("loss-chart");
const samples = document.getElementById("job-samples");
const noSamples = document.getElementById("no-samples");
const cancelButton = document.getElementById("job-cancel");

let shown = false;
let timer = null;
let selected = null; // {id, rows: loss rows so far, samples: how many sample images are drawn}

const outputName = (view) => view.effective_config.output_name;

function renderJobs(jobs) {
  noJobs.hidden = jobs.length > 0;
  jobsBody.replaceChildren(...jobs.slice().reverse().map((view) => {
    const row = el("tr", { "data-job": view.job_id, class: selected && selected.id === view.job_id ? "chosen" : null },
      el("td", {}, outputName(view)),
      el("td", {}, view.phase),
      el("td", {}, `${view.progress.step}/${view.progress.total_steps ?? "?"}`),
      el("td", {}, view.loss.average == null ? "" : view.loss.average.toFixed(4)),
      el("td", {}, new Date(view.created_at * 1000).toLocaleString()));
    row.addEventListener("click", () => choose(view.job_id));
    return row;
  }));
}

function describe(view) {
  const p = view.progress;
  const parts = [view.phase];
  if (p.total_epochs) parts.push(`epoch ${p.epoch ?? 0}/${p.total_epochs}`);
  parts.push(`step ${p.step}/${p.total_steps ?? "?"}`);
  if (view.loss.current != null) parts.push(`loss ${view.loss.current.toFixed(4)}`);
  if (p.it_per_s) parts.push(`${p.it_per_s.toFixed(2)} it/s`);
  if (p.eta_s != null && !FINAL.has(view.status)) parts.push(`about ${Math.ceil(p.eta_s)} s left`);
  return parts.join(" · ");
}

// GET /lora/train/{id}/samples/{file}, relative to the page like every other call.
const sampleUrl = (id, file) => `lora/train/${encodeURIComponent(id)}/samples/${encodeURIComponent(file)}`;

function renderJob(view) {
  panel.hidden = false;
  title.textContent = `${outputName(view)} (${view.job_id.slice(0, 8)})`;
  statusLine.textContent = describe(view);
  jobProgress.value = view.status === "done" ? 1 : view.progress.fraction;
  cancelButton.disabled = FINAL.has(view.status);
  errorBox.hidden = !view.error;
  errorBox.textContent = view.error ? `${view.error.type}: ${view.error.message}\n${view.error.log_tail || ""}` : "";
  // Samples are only ever appended; redrawing all of them each refresh would make the images flicker.
  for (const sample of view.samples.slice(selected.samples)) {
    samples.append(el("figure", { class: "card sample" },
      el("img", { src: sampleUrl(selected.id, sample.file), alt: `Epoch ${sample.epoch} sample`, loading: "lazy" }),
      el("figcaption", {}, `epoch ${sample.epoch} · step ${sample.step} · seed ${sample.seed}`,
        el("br"), sample.prompt)));
  }
  selected.samples = view.samples.length;
  noSamples.hidden = view.samples.length > 0;
}

async function refreshJob() {
  const job = selected;
  const view = await get(`lora/train/${job.id}`);
  const since = job.rows.length ? job.rows[job.rows.length - 1].step : 0;
  const rows = await get(`lora/train/${job.id}/loss?since_step=${since}`);
  if (selected !== job) return; // another job was chosen meanwhile
  job.rows = job.rows.concat(rows); // not push(...rows): a long job's first answer has too many for arguments
  drawLoss(chart, job.rows);
  renderJob(view);
}

// One refresh at a time: a refresh asked for while one runs (a click, a cancel) runs right after it.
let busy = false;
let again = false;

async function refresh() {
  clearTimeout(timer);
  timer = null;
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  try {
    const { jobs } = await get("lora/train");
    if (!selected && jobs.length) selected = { id: jobs[jobs.length - 1].job_id, rows: [], samples: 0 }; // newest
    renderJobs(jobs);
    if (selected) await refreshJob();
  } catch (error) {
    showError(error);
  } finally {
    busy = false;
  }
  if (again) {
    again = false;
    refresh();
  } else if (shown) {
    timer = setTimeout(refresh, REFRESH_MS);
  }
}

function choose(id) {
  if (selected && selected.id === id) return;
  selected = { id, rows: [], samples: 0 };
  samples.replaceChildren();
  drawLoss(chart, []);
  refresh();
}

cancelButton.addEventListener("click", async () => {
  cancelButton.disabled = true;
  try {
    await post(`lora/train/${selected.id}/cancel`);
  } catch (error) {
    showError(error);
  }
  refresh();
});

// Called by the tabs: poll only while someone looks.
export function setShown(visible) {
  shown = visible;
  if (shown) refresh();
  else clearTimeout(timer);
}
