// The candidates of an optimization: a table sortable from its column headers (buttons, so
// the keyboard sorts too; `aria-sort` says the order) and the tree of parents. Every text a
// candidate carries goes in as text, never as HTML. Verdicts are a mark and a word.
import { el, fmt } from "./common.js";

export function verdict(row, bestId) {
  if (row.accepted === null) return "… validating";
  const best = row.id === bestId && row.accepted ? " ★ best" : "";
  if (row.baseline) return `■ seed${best}`;
  if (row.accepted) return `✓ accepted${best}`;
  return `✗ rejected${row.reason ? ` (${row.reason})` : ""}`;
}

function minibatch(row) {
  if (row.mbAfter === null || row.mbAfter === undefined) return "–";
  return `${fmt(row.mbBefore)} → ${fmt(row.mbAfter)}`;
}

const COLUMNS = [
  { key: "order", label: "#", num: true, value: (r) => r.order },
  { key: "id", label: "Candidate", value: (r) => r.id },
  { key: "parent", label: "Parent", value: (r) => r.parent },
  { key: "changed", label: "Changed", value: (r) => r.components.join(", ") || null },
  { key: "minibatch", label: "Minibatch (parent → it)", num: true, value: (r) => r.mbAfter },
  { key: "validation", label: "Validation", num: true, value: (r) => r.validation },
  { key: "verdict", label: "Verdict", value: (r) => (r.accepted === null ? 1 : r.accepted ? 0 : 2) },
  { key: "rollouts", label: "Rollouts spent", num: true, value: (r) => r.rollouts },
];

function compare(column, descending) {
  return (a, b) => {
    const x = column.value(a);
    const y = column.value(b);
    if (x === y) return a.order - b.order;
    if (x === null || x === undefined) return 1; // unknown values last, either way
    if (y === null || y === undefined) return -1;
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return descending ? -order : order;
  };
}

export class CandidateTable {
  constructor(container, transcriptsUrl) {
    this.transcriptsUrl = transcriptsUrl;
    this.sort = { key: "order", descending: false };
    this.headers = COLUMNS.map((column) => {
      const button = el("button", { type: "button", class: "sort", "data-sort": column.key }, column.label);
      button.addEventListener("click", () => this.sortBy(column.key));
      return el("th", { scope: "col", class: column.num ? "num" : null, "data-key": column.key }, button);
    });
    this.body = el("tbody", {});
    this.table = el(
      "table",
      { id: "candidates", class: "candidates" },
      el("caption", {}, "Candidates ", el("span", { class: "muted" }, "(sort by a column's button)")),
      el("thead", {}, el("tr", {}, ...this.headers, el("th", { scope: "col" }, "Rollouts' transcripts"))),
      this.body,
    );
    container.append(el("div", { class: "scroll" }, this.table));
    this.drawn = new Map(); // row -> {version, best, tr}: a row is made again only when it changed
    this.onChange = () => {};
  }

  sortBy(key) {
    this.sort = { key, descending: this.sort.key === key ? !this.sort.descending : key !== "order" && key !== "id" };
    this.onChange();
  }

  draw(rows, bestId) {
    const column = COLUMNS.find((c) => c.key === this.sort.key);
    const sorted = [...rows].sort(compare(column, this.sort.descending));
    for (const th of this.headers) {
      const active = th.dataset.key === this.sort.key;
      if (active) th.setAttribute("aria-sort", this.sort.descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    }
    this.body.replaceChildren(
      ...sorted.map((row) => {
        const best = row.id === bestId && row.accepted;
        let drawn = this.drawn.get(row);
        if (!drawn || drawn.version !== row.version || drawn.best !== best) {
          drawn = { version: row.version, best, tr: this.row(row, bestId) };
          this.drawn.set(row, drawn);
        }
        return drawn.tr;
      }),
    );
  }

  row(r, bestId) {
    const state = r.accepted === null ? "pending" : r.baseline ? "seed" : r.accepted ? "accepted" : "rejected";
    const link = this.transcriptsUrl
      ? el("a", { href: this.transcriptsUrl(r.id) }, "transcripts")
      : el("span", { class: "muted" }, "–");
    return el(
      "tr",
      { "data-candidate": r.id, "data-state": state, class: r.id === bestId && r.accepted ? "best" : null },
      el("td", { class: "num" }, fmt(r.order)),
      el("th", { scope: "row" }, el("code", {}, r.id)),
      el("td", {}, r.parent ? el("code", {}, r.parent) : "–"),
      el("td", {}, r.components.join(", ") || "–"),
      el("td", { class: "num" }, minibatch(r)),
      el("td", { class: "num" }, fmt(r.validation)),
      el("td", { class: `verdict verdict-${state}` }, verdict(r, bestId)),
      el("td", { class: "num" }, fmt(r.rollouts)),
      el("td", {}, link),
    );
  }
}

/** The tree of parents: each candidate under the accepted candidate it was proposed from. */
export function candidateTree(rows, bestId) {
  const children = new Map();
  const known = new Set(rows.filter((r) => r.accepted).map((r) => r.id));
  const roots = [];
  for (const row of rows) {
    if (row.parent && known.has(row.parent) && !(row.accepted && row.parent === row.id)) {
      if (!children.has(row.parent)) children.set(row.parent, []);
      children.get(row.parent).push(row);
    } else roots.push(row);
  }
  const drawn = new Set();
  const node = (row) => {
    const label = el(
      "span",
      {},
      el("code", {}, row.id),
      ` ${verdict(row, bestId)}`,
      row.validation !== null ? `, validation ${fmt(row.validation)}` : "",
    );
    const kids = row.accepted && !drawn.has(row.id) ? children.get(row.id) || [] : [];
    if (row.accepted) drawn.add(row.id); // an id is expanded once, whatever repeats it
    return el("li", { "data-candidate": row.id }, label, kids.length ? el("ul", {}, kids.map(node)) : null);
  };
  return el("ul", { class: "tree", "aria-label": "Candidates by parent" }, roots.map(node));
}
