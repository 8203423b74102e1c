// The job list: every job the signed-in principal may see, refreshed every two seconds.
// Rows are updated in place (never rebuilt), so keyboard focus stays where it is.
import { ago, api, clockUtc, el, fmt, isoUtc, onSignedOut, signIn, stateBadge } from "./common.js";

const REFRESH_MS = 2000;
const body = document.querySelector("#jobs tbody");
const rows = new Map();

function progress(job) {
  if (job.step === null && job.total === null) return "–";
  const text = job.total !== null ? `step ${fmt(job.step)} of ${fmt(job.total)}` : `step ${fmt(job.step)}`;
  const parts = [text];
  if (job.total) {
    parts.push(" ", el("progress", { max: job.total, value: Math.min(job.step ?? 0, job.total), "aria-hidden": "true" }));
  }
  if (job.phase) parts.push(el("div", { class: "muted" }, job.phase));
  return parts;
}

function metrics(job) {
  const entries = Object.entries(job.metrics);
  if (!entries.length) return "–";
  return el(
    "ul",
    { class: "metrics" },
    entries.map(([name, m]) =>
      el("li", {}, `${name} `, el("strong", {}, fmt(m.value)), m.split ? el("span", { class: "muted" }, ` (${m.split})`) : null),
    ),
  );
}

/** Replace a cell's content only when what it shows changed. */
function show(cell, key, content) {
  if (cell.dataset.key === key) return;
  cell.dataset.key = key;
  cell.replaceChildren(...[content].flat().map((c) => (c instanceof Node ? c : document.createTextNode(c))));
}

function render(jobs) {
  const seen = new Set();
  let previous = null;
  for (const job of jobs) {
    seen.add(job.job_id);
    let row = rows.get(job.job_id);
    if (!row) {
      const link = el("a", { href: `job.html?id=${encodeURIComponent(job.job_id)}` }, el("code", {}, job.job_id));
      row = el("tr", { "data-job-id": job.job_id }, el("th", { scope: "row" }, link), el("td"), el("td"), el("td"), el("td"), el("td"));
      rows.set(job.job_id, row);
    }
    const [, kind, state, steps, values, age] = row.children;
    show(kind, job.kind, job.kind);
    show(state, job.state, stateBadge(job.state));
    show(steps, JSON.stringify([job.step, job.total, job.phase]), progress(job));
    show(values, JSON.stringify(job.metrics), metrics(job));
    show(age, ago(job.created_at), el("time", { datetime: new Date(job.created_at * 1000).toISOString(), title: isoUtc(job.created_at) }, ago(job.created_at)));
    // keep newest-first order without moving rows that are already in place
    const expected = previous ? previous.nextSibling : body.firstChild;
    if (expected !== row) body.insertBefore(row, expected);
    previous = row;
  }
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
  document.getElementById("empty").hidden = jobs.length > 0;
}

async function refresh() {
  const problem = document.getElementById("problem");
  try {
    const { jobs } = await api("/ui/api/jobs");
    render(jobs);
    problem.textContent = "";
    document.getElementById("refreshed").textContent = `· updated ${clockUtc(Date.now() / 1000)}`;
  } catch (error) {
    if (!onSignedOut(error)) problem.textContent = `Cannot load jobs: ${error.message}`;
  }
  setTimeout(refresh, REFRESH_MS);
}

await signIn();
refresh();
