// Validation score against rollouts spent, as SVG: each validated candidate a circle, the best
// so far a solid stepped line, the seed prompt a square and a dashed line across. Shapes and
// line styles tell them apart without colour; the caption says the same in words.
import { el, fmt } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 640;
const H = 240;
const PAD = { left: 44, right: 12, top: 12, bottom: 34 };

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

export class ScoreChart {
  constructor(container) {
    this.plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "score-plot", "aria-hidden": "true" });
    this.caption = el("figcaption", {});
    this.figure = el(
      "figure",
      { class: "chart score-chart", role: "group", "aria-label": "validation score against rollouts spent" },
      el("h3", {}, "Validation score by rollouts spent"),
      this.plot,
      el(
        "p",
        { class: "legend muted" },
        "● a candidate  ■ the seed prompt  ─ best so far  ╌ seed prompt's score",
      ),
      this.caption,
    );
    container.append(this.figure);
  }

  /** `points`: [{id, x (rollouts), y (score), seed}], in the order they were validated. */
  draw(points, budget) {
    const xs = points.map((p) => p.x);
    const xMax = Math.max(1, budget || 0, ...xs);
    const x = (v) => PAD.left + (v / xMax) * (W - PAD.left - PAD.right);
    const y = (v) => H - PAD.bottom - v * (H - PAD.top - PAD.bottom);
    const nodes = [];
    for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
      nodes.push(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(tick), y2: y(tick), class: "grid" }));
      nodes.push(svg("text", { x: PAD.left - 6, y: y(tick) + 4, "text-anchor": "end" }, String(tick)));
    }
    for (const tick of [0, Math.round(xMax / 2), xMax]) {
      nodes.push(svg("text", { x: x(tick), y: H - PAD.bottom + 16, "text-anchor": "middle" }, fmt(tick)));
    }
    nodes.push(svg("text", { x: (W + PAD.left) / 2, y: H - 4, "text-anchor": "middle" }, "rollouts spent"));
    const seed = points.find((p) => p.seed);
    if (seed) {
      nodes.push(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(seed.y), y2: y(seed.y), class: "seed-line" }));
    }
    const ordered = [...points].sort((p, q) => p.x - q.x);
    let best = null;
    let bestX = 0;
    const steps = [];
    for (const p of ordered) {
      if (best === null || p.y > best) {
        if (best !== null) steps.push(`${x(p.x)},${y(best)}`);
        best = p.y;
        bestX = p.x;
        steps.push(`${x(p.x)},${y(best)}`);
      }
    }
    if (steps.length) {
      steps.push(`${x(ordered[ordered.length - 1].x)},${y(best)}`);
      nodes.push(svg("polyline", { points: steps.join(" "), class: "best-line", "data-best": best }));
    }
    for (const p of points) {
      const title = svg("title", {}, `${p.id}: ${fmt(p.y)} after ${fmt(p.x)} rollouts`);
      nodes.push(
        p.seed
          ? svg("rect", { x: x(p.x) - 5, y: y(p.y) - 5, width: 10, height: 10, class: "seed-point" }, title)
          : svg("circle", { cx: x(p.x), cy: y(p.y), r: 4, class: "candidate-point", "data-id": p.id }, title),
      );
    }
    this.plot.replaceChildren(...nodes);
    this.figure.dataset.best = best === null ? "" : String(best);
    this.caption.textContent = points.length
      ? `${points.length} validated candidate${points.length === 1 ? "" : "s"}; best ${fmt(best)}` +
        ` reached after ${fmt(bestX)} rollouts` +
        (seed ? `; seed prompt ${fmt(seed.y)}` : "")
      : "No candidate validated yet.";
  }
}
