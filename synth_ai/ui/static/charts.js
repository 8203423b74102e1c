// One chart per metric name: step on the x axis, one series per split (train solid, eval and
// others dashed, so the split shows without colour). Drawn with the vendored uPlot, redrawn at
// most once per animation frame however fast points arrive. Each chart has a text caption
// (points and latest value per split) for people who do not read the plot.
import { el, fmt } from "./common.js";

const COLOURS = ["#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#495057"];
const HEIGHT = 220;

class MetricChart {
  constructor(name, container) {
    this.name = name;
    this.splits = new Map(); // split -> Map(step -> value)
    this.latest = new Map(); // split -> {value, step}
    this.plot = null;
    this.canvas = el("div", { class: "plot", "aria-hidden": "true" });
    this.caption = el("figcaption", {});
    this.figure = el(
      "figure",
      { class: "chart", "data-metric": name, role: "group", "aria-label": `metric ${name}` },
      el("h3", {}, name),
      this.canvas,
      this.caption,
    );
    container.append(this.figure);
  }

  add(split, step, value) {
    if (!this.splits.has(split)) this.splits.set(split, new Map());
    this.splits.get(split).set(step, value);
    const latest = this.latest.get(split);
    if (!latest || step >= latest.step) this.latest.set(split, { value, step });
  }

  draw() {
    const splits = [...this.splits.keys()];
    const steps = [...new Set(splits.flatMap((s) => [...this.splits.get(s).keys()]))].sort((a, b) => a - b);
    const data = [steps, ...splits.map((s) => steps.map((x) => this.splits.get(s).get(x) ?? null))];
    const width = Math.max(280, this.figure.clientWidth - 16);
    if (!this.plot || this.plot.series.length !== splits.length + 1) {
      this.plot?.destroy();
      this.plot = new uPlot(
        {
          width,
          height: HEIGHT,
          scales: { x: { time: false } },
          axes: [{ label: "step" }, {}],
          series: [
            { label: "step" },
            ...splits.map((split, i) => ({
              label: split,
              stroke: COLOURS[i % COLOURS.length],
              width: 2,
              dash: split === "train" ? undefined : [6, 4],
              spanGaps: true,
              points: { show: steps.length < 60 },
            })),
          ],
        },
        data,
        this.canvas,
      );
    } else {
      this.plot.setData(data);
      if (Math.abs(this.plot.width - width) > 4) this.plot.setSize({ width, height: HEIGHT });
    }
    this.caption.textContent = splits
      .map((s) => {
        const { value, step } = this.latest.get(s);
        const count = this.splits.get(s).size;
        return `${s}: ${count} point${count === 1 ? "" : "s"}, latest ${fmt(value)} at step ${fmt(step)}`;
      })
      .join(" · ");
  }
}

export class MetricCharts {
  constructor(container, onFirst) {
    this.container = container;
    this.onFirst = onFirst;
    this.charts = new Map();
    this.dirty = new Set();
    this.scheduled = false;
    new ResizeObserver(() => this.charts.forEach((c) => this.mark(c))).observe(container);
  }

  /** A metric event's payload: `{name, value, step, split, seq}`. */
  add(metric) {
    if (typeof metric.name !== "string") return;
    let chart = this.charts.get(metric.name);
    if (!chart) {
      if (!this.charts.size) this.onFirst();
      chart = new MetricChart(metric.name, this.container);
      this.charts.set(metric.name, chart);
    }
    const value = typeof metric.value === "number" ? metric.value : null; // non-finite: a gap
    chart.add(metric.split || "train", metric.step ?? metric.seq, value);
    this.mark(chart);
  }

  mark(chart) {
    this.dirty.add(chart);
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const dirty of this.dirty) dirty.draw();
      this.dirty.clear();
    });
  }
}
