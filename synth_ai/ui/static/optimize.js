// A `prompt_learning` job's own panels, fed by the job page's stream (the `prompt.learning.*`
// events, see synth_ai/optimize/events.py): the score chart, spend, the candidates (table and
// tree), the Pareto front per validation instance, the best prompt against the seed as a word
// diff, and once the job ends, seed against best on the test pool at the top.
// Redrawn at most once per animation frame however fast events come.
import { CandidateTable, candidateTree } from "./candidates.js";
import { el, fmt } from "./common.js";
import { ScoreChart } from "./scorechart.js";
import { diffNodes } from "./worddiff.js";

const list = (value) => (Array.isArray(value) ? value : []);
const num = (value) => (typeof value === "number" && Number.isFinite(value) ? value : null);

function promptText(sections) {
  return (sections || []).map((s) => `${s?.role}:\n${s?.content}`).join("\n\n");
}

export class OptimizeView {
  /** The result goes after `top`, the panels before `place`; `job`: the job's snapshot. */
  constructor(top, place, job) {
    this.jobId = job.job_id;
    this.rows = [];
    this.byId = new Map(); // candidate id -> its accepted (validated) row
    this.seedId = null;
    this.seedSections = null;
    this.bestId = null;
    this.bestPrompt = null; // from `best.prompt`, at the end
    this.budget = null;
    this.progress = {};
    this.final = null;
    this.complete = null;
    this.scheduled = false;
    this.parts = "all";
    this.build(top, place, job);
  }

  build(top, place, job) {
    this.headline = el("section", { id: "pl-headline", class: "panel headline", "aria-labelledby": "pl-headline-title", hidden: true });
    top.after(this.headline);
    const viewer = job.metadata?.trace_viewer_url;
    const transcripts =
      typeof viewer === "string" && /^https?:\/\//.test(viewer)
        ? (id) => `${viewer.replace(/\/+$/, "")}/ui/?${new URLSearchParams({ job: this.jobId, candidate: id })}`
        : null;
    this.spend = el("dl", { class: "facts", id: "pl-spend" });
    this.diff = el("div", { id: "pl-diff", class: "diff" });
    this.diffNote = el("p", { class: "muted" });
    this.copied = el("span", { id: "pl-copied", class: "muted", "aria-live": "polite" });
    this.pareto = el("div", { id: "pl-pareto", class: "scroll" });
    this.tree = el("div", { id: "pl-tree" });
    const charts = el("div", { class: "score-charts" });
    const section = el(
      "section",
      { id: "optimization", "aria-labelledby": "pl-title" },
      el("h2", { id: "pl-title" }, "Optimization"),
      charts,
      el("section", { class: "panel", "aria-labelledby": "pl-spend-title" }, el("h3", { id: "pl-spend-title" }, "Spend"), this.spend),
      el(
        "section",
        { class: "panel", "aria-labelledby": "pl-diff-title" },
        el("h3", { id: "pl-diff-title" }, "Best prompt against the seed prompt"),
        this.diffNote,
        el("p", { class: "legend muted" }, "Added words are underlined and marked +; removed words are struck through and marked −."),
        this.diff,
        el(
          "p",
          {},
          el("button", { type: "button", id: "pl-copy", onclick: () => this.copy() }, "Copy the best prompt"),
          " ",
          el("button", { type: "button", id: "pl-download", onclick: () => this.download() }, "Download best_prompt.json"),
          " ",
          this.copied,
        ),
      ),
      el(
        "section",
        { "aria-labelledby": "pl-pareto-title" },
        el("h3", { id: "pl-pareto-title" }, "Best candidate per validation instance (the Pareto front)"),
        this.pareto,
      ),
      el("section", { "aria-labelledby": "pl-candidates-title" }, el("h3", { id: "pl-candidates-title" }, "Candidates")),
    );
    const candidates = section.lastElementChild;
    this.table = new CandidateTable(candidates, transcripts);
    this.table.onChange = () => this.schedule("table");
    candidates.append(el("h3", {}, "Tree of parents"), this.tree);
    place.before(section);
    this.chart = new ScoreChart(charts);
    this.schedule();
  }

  row(id) {
    const row = {
      order: this.rows.length + 1,
      id,
      parent: null,
      components: [],
      mbBefore: null,
      mbAfter: null,
      validation: null,
      instances: new Map(),
      accepted: null,
      reason: null,
      rollouts: null,
      sections: null,
      baseline: false,
      version: 0, // what the table compares to redraw only the rows that changed
    };
    this.rows.push(row);
    return row;
  }

  /** A candidate a resumed run carried over from the stopped job (see `Recorder.restored`). */
  restore(c) {
    if (typeof c?.candidate_id !== "string") return;
    const row = this.row(c.candidate_id);
    row.parent = c.parent_id ?? null;
    row.accepted = Boolean(c.accepted);
    row.baseline = Boolean(c.is_baseline);
    row.validation = num(c.validation_score);
    row.mbBefore = num(c.minibatch_score_before);
    row.mbAfter = num(c.minibatch_score);
    row.components = list(c.components_changed).map(String);
    row.rollouts = num(c.rollouts_spent);
    row.reason = typeof c.reason === "string" ? c.reason : null;
    row.sections = Array.isArray(c.sections) ? c.sections : null;
    const seeds = list(c.seeds);
    list(c.instance_scores).forEach((score, i) => row.instances.set(String(seeds[i] ?? i), num(score)));
    if (!row.accepted) return;
    this.byId.set(row.id, row);
    if (row.baseline) this.seedId = row.id;
    const best = this.byId.get(this.bestId);
    if (row.validation !== null && (!best || row.validation > (best.validation ?? -Infinity))) this.bestId = row.id;
  }

  /** One `prompt.learning.*` event's payload (already deduplicated by the page). */
  add(data) {
    const id = typeof data.candidate_id === "string" ? data.candidate_id : null;
    switch (data.type) {
      case "prompt.learning.gepa.start":
        this.budget = num(data.budget);
        if (Array.isArray(data.seed_prompt?.sections)) this.seedSections = data.seed_prompt.sections;
        list(data.restored_candidates).forEach((c) => this.restore(c));
        break;
      case "prompt.learning.validation.scored": {
        if (!id) break;
        const row = this.byId.get(id) || this.row(id);
        this.byId.set(id, row);
        row.validation = num(data.accuracy);
        row.accepted = true;
        row.baseline = Boolean(data.is_baseline);
        row.rollouts = num(data.rollouts_spent) ?? row.rollouts;
        row.parent = data.parent_id ?? row.parent;
        const seeds = list(data.seeds);
        list(data.instance_scores).forEach((score, i) => row.instances.set(String(seeds[i] ?? i), num(score)));
        if (row.baseline) this.seedId = id;
        row.version++;
        break;
      }
      case "prompt.learning.proposal.scored": {
        if (!id) break;
        // an accepted proposal comes just before its validation, which fills in the same row
        const row = this.row(id);
        if (data.accepted) {
          this.byId.set(id, row);
          row.rollouts = num(data.rollouts_spent);
        }
        row.parent = data.parent_id ?? null;
        row.components = list(data.components_changed).map(String);
        row.mbBefore = num(data.minibatch_score_before);
        row.mbAfter = num(data.minibatch_score);
        row.sections = Array.isArray(data.sections) ? data.sections : null;
        if (!data.accepted) {
          row.accepted = false;
          row.reason = typeof data.reason === "string" ? data.reason : null;
          row.rollouts = num(data.rollouts_spent);
        }
        row.version++;
        break;
      }
      case "prompt.learning.gepa.new_best":
        this.bestId = id;
        break;
      case "prompt.learning.progress":
        this.progress = data;
        this.budget = num(data.rollouts_total) ?? this.budget;
        break;
      case "prompt.learning.best.prompt":
        this.bestPrompt = { candidate_id: id, best_prompt: data.best_prompt, best_score: data.best_score };
        this.bestId = id || this.bestId;
        break;
      case "prompt.learning.final.results":
        this.final = data;
        break;
      case "prompt.learning.gepa.complete":
        this.complete = data;
        break;
      default:
        return;
    }
    this.schedule();
  }

  /** Redraw on the next frame: only the table after a sort, everything after an event. */
  schedule(part = "all") {
    if (part === "all" || !this.scheduled) this.parts = part;
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      if (this.parts === "table") this.table.draw(this.rows, this.bestId);
      else this.draw();
    });
  }

  draw() {
    const validated = this.rows.filter((r) => r.accepted && r.validation !== null && r.rollouts !== null);
    this.chart.draw(
      validated.map((r) => ({ id: r.id, x: r.rollouts, y: r.validation, seed: r.baseline })),
      this.budget,
    );
    this.table.draw(this.rows, this.bestId);
    this.tree.replaceChildren(candidateTree(this.rows, this.bestId));
    this.drawSpend();
    this.drawDiff();
    this.drawPareto(validated);
    this.drawHeadline();
  }

  drawSpend() {
    const p = this.progress;
    const done = this.complete?.rollouts;
    const tokens = this.complete?.tokens || p.tokens || {};
    const sum = (t) => (t ? (t.prompt || 0) + (t.completion || 0) : null);
    const spent = done ? done.search : num(p.rollouts_completed);
    const facts = [
      ["Rollouts", [`${fmt(spent)} of ${fmt(this.budget)} budget`, this.budget ? el("progress", { max: this.budget, value: Math.min(spent ?? 0, this.budget) }) : null]],
      ["Test-pool rollouts", done ? fmt(done.test) : "after the search"],
      ["Policy tokens", tokens.policy ? `${fmt(sum(tokens.policy))} (${fmt(tokens.policy.prompt)} in, ${fmt(tokens.policy.completion)} out)` : fmt(null)],
      ["Reflection tokens", tokens.reflection ? `${fmt(sum(tokens.reflection))} (${fmt(tokens.reflection.prompt)} in, ${fmt(tokens.reflection.completion)} out)` : fmt(null)],
      ["Token limit", tokens.max_limit ? `${fmt(tokens.total ?? p.tokens_used)} of ${fmt(tokens.max_limit)}` : "none"],
    ];
    const unpriced = list(tokens.unpriced_models);
    const dollars = num(tokens.spend_usd ?? p.spend_usd);
    let cost = dollars !== null ? `$${dollars.toFixed(4)}` : "–";
    if (unpriced.length) cost += ` (not priced: ${unpriced.join(", ")}; their tokens are counted only)`;
    if (num(tokens.max_spend_usd) !== null) cost += ` of $${tokens.max_spend_usd} limit`;
    facts.push(["Dollars", cost]);
    if (this.complete) facts.push(["Stopped", this.complete.stop_reason || "the search ended"]);
    this.spend.replaceChildren(...facts.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  }

  best() {
    if (Array.isArray(this.bestPrompt?.best_prompt?.sections)) return this.bestPrompt;
    const row = this.byId.get(this.bestId);
    const sections = row?.sections || (row?.baseline ? this.seedSections : null);
    return sections ? { candidate_id: row.id, best_prompt: { sections }, best_score: row.validation } : null;
  }

  drawDiff() {
    const best = this.best();
    const seed = this.seedSections || [];
    if (!best) {
      this.diffNote.textContent = "No best candidate yet.";
      this.diff.replaceChildren();
      return;
    }
    const same = best.candidate_id === this.seedId;
    this.diffNote.textContent = same
      ? "The seed prompt is still the best."
      : `Best: ${best.candidate_id} (validation ${fmt(best.best_score)}), against the seed prompt.`;
    this.diff.replaceChildren(
      ...best.best_prompt.sections.map((section, i) =>
        el(
          "div",
          { class: "diff-section" },
          el("h4", {}, String(section?.role ?? "")),
          el("p", { class: "diff-text" }, diffNodes(String(seed[i]?.content ?? ""), String(section?.content ?? ""))),
        ),
      ),
    );
  }

  drawPareto(validated) {
    const seeds = [...new Set(validated.flatMap((r) => [...r.instances.keys()]))].sort((a, b) => Number(a) - Number(b));
    if (!seeds.length) {
      this.pareto.replaceChildren(el("p", { class: "muted" }, "No validation scores yet."));
      return;
    }
    const top = new Map(seeds.map((s) => [s, Math.max(...validated.map((r) => r.instances.get(s) ?? -Infinity))]));
    const front = validated.filter((r) => seeds.some((s) => r.instances.get(s) === top.get(s)));
    const head = el("tr", {}, el("th", { scope: "col" }, "Candidate"), ...seeds.map((s) => el("th", { scope: "col", class: "num" }, `seed ${s}`)));
    const rows = front.map((r) =>
      el(
        "tr",
        { "data-candidate": r.id },
        el("th", { scope: "row" }, el("code", {}, r.id), r.baseline ? " (seed)" : ""),
        ...seeds.map((s) => {
          const score = r.instances.get(s);
          const isTop = score !== undefined && score === top.get(s);
          return el("td", { class: `num${isTop ? " top" : ""}` }, isTop ? `★ ${fmt(score)}` : fmt(score ?? null));
        }),
      ),
    );
    this.pareto.replaceChildren(
      el(
        "table",
        { class: "pareto" },
        el("caption", {}, `${front.length} candidate${front.length === 1 ? "" : "s"} best on some instance; ★ marks the best score on each`),
        el("thead", {}, head),
        el("tbody", {}, rows),
      ),
    );
  }

  drawHeadline() {
    if (!this.final) return;
    const seed = this.final.seed_score || {};
    const best = this.final.best_score || {};
    const delta = (a, b) => (num(a) !== null && num(b) !== null ? `${b - a >= 0 ? "+" : ""}${fmt(b - a)}` : "–");
    this.headline.hidden = false;
    this.headline.replaceChildren(
      el("h2", { id: "pl-headline-title" }, "Result: seed prompt against the best candidate"),
      el(
        "table",
        { id: "pl-result" },
        el("thead", {}, el("tr", {}, ...["", "Seed prompt", "Best candidate", "Change"].map((t) => el("th", { scope: "col" }, t)))),
        el(
          "tbody",
          {},
          ...[
            ["Test pool (never seen by the search)", "test"],
            ["Validation", "validation"],
          ].map(([label, key]) =>
            el(
              "tr",
              { "data-split": key },
              el("th", { scope: "row" }, label),
              el("td", { class: "num" }, fmt(num(seed[key]))),
              el("td", { class: "num" }, fmt(num(best[key]))),
              el("td", { class: "num" }, delta(seed[key], best[key])),
            ),
          ),
        ),
      ),
    );
  }

  async copy() {
    const best = this.best();
    if (!best) return;
    try {
      await navigator.clipboard.writeText(promptText(best.best_prompt.sections));
      this.copied.textContent = "Copied.";
    } catch {
      this.copied.textContent = "The browser refused the clipboard; select the text instead.";
    }
  }

  /** The best prompt as the run's own `best_prompt.json` has it (scores as far as known). */
  download() {
    const best = this.best();
    if (!best) return;
    const seed = this.byId.get(this.seedId);
    const document_ = {
      candidate_id: best.candidate_id,
      best_prompt: best.best_prompt,
      best_score: this.final?.best_score || { validation: num(best.best_score), test: null },
      seed_score: this.final?.seed_score || { validation: seed?.validation ?? null, test: null },
    };
    const blob = new Blob([JSON.stringify(document_, null, 2)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: "best_prompt.json", hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
