// The loss curve as inline SVG: each step's loss (thin) and the running average (thick), scaled to fit, with the
// step range and the loss range written on the axes. SVG rather than a canvas: it scales with the page and each
// drawn point can be read back.
const NS = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 240;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function svgEl(tag, attributes, text) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Math.min(...values) fails past a few hundred thousand arguments; a long job has that many steps.
function range(values) {
  let low = Infinity;
  let high = -Infinity;
  for (const value of values) {
    if (value < low) low = value;
    if (value > high) high = value;
  }
  return high > low ? [low, high] : [low - 0.5, high + 0.5];
}

// Draw `rows` (GET /lora/train/{id}/loss: {step, loss, avg_loss, …}, by step) into `svg`.
export function drawLoss(svg, rows) {
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.replaceChildren();
  const points = rows.filter((row) => Number.isFinite(row.loss));
  svg.dataset.points = String(points.length);
  if (!points.length) {
    svg.append(svgEl("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "label" }, "No loss yet"));
    return;
  }
  const values = points.flatMap((row) => (Number.isFinite(row.avg_loss) ? [row.loss, row.avg_loss] : [row.loss]));
  const [low, high] = range(values);
  const firstStep = points[0].step;
  const lastStep = points[points.length - 1].step;
  const right = WIDTH - PAD.right;
  const bottom = HEIGHT - PAD.bottom;
  const x = (step) => PAD.left + (lastStep > firstStep ? (step - firstStep) / (lastStep - firstStep) : 0.5) *
    (right - PAD.left);
  const y = (value) => PAD.top + ((high - value) / (high - low)) * (bottom - PAD.top);
  const line = (key) => points.filter((row) => Number.isFinite(row[key]))
    .map((row) => `${x(row.step).toFixed(1)},${y(row[key]).toFixed(1)}`).join(" ");

  svg.append(
    svgEl("polyline", { points: `${PAD.left},${PAD.top} ${PAD.left},${bottom} ${right},${bottom}`, class: "axis" }),
    svgEl("text", { x: PAD.left - 6, y: PAD.top + 10, "text-anchor": "end", class: "label" }, high.toPrecision(3)),
    svgEl("text", { x: PAD.left - 6, y: bottom, "text-anchor": "end", class: "label" }, low.toPrecision(3)),
    svgEl("text", { x: PAD.left, y: HEIGHT - 8, class: "label" }, `step ${firstStep}`),
    svgEl("text", { x: right, y: HEIGHT - 8, "text-anchor": "end", class: "label" }, `step ${lastStep}`),
    svgEl("polyline", { points: line("loss"), class: "loss" }),
    svgEl("polyline", { points: line("avg_loss"), class: "average" }),
  );
}
