// One job, live: status, a chart per metric, the log tail, artifacts, and a cancel button; a
// prompt-learning job's own panels come from optimize.js.
//
// It follows the job's stream the way a browser must: a job-scoped stream token in the query
// (EventSource cannot send headers), `EventSource`'s own reconnect with Last-Event-ID after a
// drop or a server restart (the token outlives both), and when the browser gives up (an
// expired token, an HTTP error) a fresh token and a new stream from the last event id seen. It
// stops on the `end` event, and on 204 (the job is over and everything was seen).
import { MetricCharts } from "./charts.js";
import { TERMINAL, api, clockUtc, el, fmt, isoUtc, onSignedOut, signIn, stateBadge } from "./common.js";

const MAX_LOG_LINES = 500;
const jobId = new URLSearchParams(location.search).get("id") || "";
const base = `/api/jobs/${encodeURIComponent(jobId)}`;
const $ = (id) => document.getElementById(id);

// Live delivery is in seq order except for metrics, which the server may hold back to
// coalesce them (a held metric arrives after events with higher seqs). So what was seen is a
// set (of the most recent seqs, bounded), and a resume starts from the browser's last event
// id, as its own reconnect does: what comes twice is dropped here, what was held comes once.
const SEEN_KEPT = 50000;
const CATCH_UP_TRIES = 20;
const seen = new Set();
let maxSeq = 0;
let lastId = 0;
let token = null;
let source = null;
let finished = false;
let retryMs = 1000;
let state = null;
const progress = { step: null, total: null, epoch: null };

const charts = new MetricCharts($("charts"), () => ($("no-metrics").hidden = true));

// A prompt-learning job's own panels live in optimize.js, loaded only for such a job (or a
// job whose producer sends `prompt.learning.*` events); events that come while it loads wait.
let job = null;
let kindView = null;
let waiting = null;

function optimizeView(data) {
  if (kindView) return data && kindView.add(data);
  if (waiting) return data && waiting.push(data);
  waiting = data ? [data] : [];
  import("./optimize.js").then(({ OptimizeView }) => {
    kindView = new OptimizeView($("problem"), $("metrics-title").parentElement, job);
    for (const early of waiting) kindView.add(early);
    waiting = null;
  });
}

function problem(text) {
  $("problem").textContent = text;
}

function setStream(text) {
  $("stream").textContent = text;
}

function showState(next) {
  if (!next || next === state) return;
  state = next;
  $("state").replaceChildren(stateBadge(state));
  $("cancel").disabled = TERMINAL.has(state);
}

function showProgress() {
  const { step, total, epoch } = progress;
  const parts = [];
  if (step !== null || total !== null) parts.push(total !== null ? `step ${fmt(step)} of ${fmt(total)}` : `step ${fmt(step)}`);
  if (epoch !== null) parts.push(`epoch ${fmt(epoch)}`);
  $("progress").replaceChildren(parts.join(", ") || "–");
  if (total) {
    $("progress").append(" ", el("progress", { max: total, value: Math.min(step ?? 0, total), "aria-hidden": "true" }));
  }
}

function showSnapshot(snapshot) {
  job = snapshot;
  $("title").textContent = `Job ${job.job_id}`;
  document.title = `${job.job_id} · synth-ai`;
  $("kind").textContent = job.kind;
  $("created").textContent = isoUtc(job.created_at);
  showState(job.state);
}

function logLine(level, message, ts) {
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
  const when = new Date((ts || Date.now() / 1000) * 1000);
  const lvl = (level || "info").toLowerCase();
  log.append(
    el(
      "li",
      { class: `lvl-${lvl}` },
      el("time", { datetime: when.toISOString() }, clockUtc(when.getTime() / 1000)),
      el("span", { class: "level" }, lvl.toUpperCase()),
      " ",
      message ?? "",
    ),
  );
  while (log.children.length > MAX_LOG_LINES) log.firstChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

async function loadArtifacts() {
  try {
    const { artifacts } = await api(`${base}/artifacts`);
    const list = $("artifacts");
    list.replaceChildren(
      ...artifacts.map((a) =>
        el(
          "li",
          {},
          el("a", { href: `${a.url}?token=${encodeURIComponent(token)}`, download: a.name }, a.name),
          el("span", { class: "muted" }, ` ${fmt(a.size)} bytes`),
        ),
      ),
    );
    $("no-artifacts").hidden = artifacts.length > 0;
  } catch (error) {
    if (!onSignedOut(error)) problem(`Cannot list artifacts: ${error.message}`);
  }
}

/** True the first time a seq is seen (a replay after a reconnect repeats some). */
function firstTime(seq) {
  if (seq <= maxSeq - SEEN_KEPT || seen.has(seq)) return false;
  seen.add(seq);
  maxSeq = Math.max(maxSeq, seq);
  if (seen.size > SEEN_KEPT * 1.2) for (const old of seen) if (old <= maxSeq - SEEN_KEPT) seen.delete(old);
  return true;
}

function onEvent(event) {
  const data = JSON.parse(event.data);
  if (typeof data.seq === "number") {
    lastId = Number(event.lastEventId) || lastId;
    if (!firstTime(data.seq)) return;
    $("events").textContent = fmt(maxSeq);
  }
  if (typeof data.total === "number") progress.total = data.total;
  if (typeof data.type === "string" && data.type.startsWith("prompt.learning.")) optimizeView(data);
  switch (event.type) {
    case "metric":
      charts.add(data);
      break;
    case "status":
      showState(data.state);
      for (const key of ["step", "epoch"]) if (typeof data[key] === "number") progress[key] = data[key];
      if (data.phase) $("phase").textContent = data.phase;
      logLine(data.level, `status ${data.state ?? ""}${data.message ? `: ${data.message}` : ""}`, data.ts);
      break;
    case "log":
      logLine(data.level, data.message, data.ts);
      break;
    case "artifact":
      logLine("info", `artifact ${data.name ?? data.url ?? ""} (${data.kind ?? "file"})`, data.ts);
      loadArtifacts();
      break;
  }
  showProgress();
}

function finish(text) {
  finished = true;
  source?.close();
  setStream(text);
  if (kindView && !kindView.complete && state === "canceled") catchUp(CATCH_UP_TRIES);
}

/** A canceled optimization ends its job first and stops at its next batch, so its last events
 * (best prompt, final results) come after the stream's end: read them from the log, a few
 * times, until they are there. */
async function catchUp(tries) {
  await new Promise((resolve) => setTimeout(resolve, 1500));
  try {
    const { events } = await api(`${base}/events?since_seq=${maxSeq}&limit=200`);
    for (const event of events) {
      if (!firstTime(event.seq)) continue;
      const data = { ...event.data, type: event.type, seq: event.seq, ts: event.ts };
      if (event.type.startsWith("prompt.learning.")) optimizeView(data);
      if (event.type.startsWith("artifact.")) loadArtifacts();
      if (event.message) logLine(event.level, event.message, event.ts);
    }
    $("events").textContent = fmt(maxSeq);
  } catch (error) {
    if (onSignedOut(error)) return;
  }
  if (!kindView.complete && tries > 1) catchUp(tries - 1);
}

/** A new stream token; the artifact links carry it too, so they are made again. */
async function freshToken() {
  token = (await api(`${base}/stream-token`, { method: "POST" })).token;
  await loadArtifacts();
}

function open() {
  const query = new URLSearchParams({ token });
  if (lastId) query.set("since_id", String(lastId));
  source = new EventSource(`${base}/stream?${query}`);
  for (const name of ["status", "metric", "log", "artifact"]) source.addEventListener(name, onEvent);
  source.addEventListener("end", () => finish("ended (the job is over)"));
  source.addEventListener("reset", () => {
    source.close();
    recover();
  });
  source.onopen = () => {
    retryMs = 1000;
    setStream("live");
  };
  source.onerror = () => {
    if (finished) return;
    if (source.readyState === EventSource.CONNECTING) setStream("reconnecting…");
    else recover(); // the browser gave up: 204, an expired token, an HTTP error
  };
}

/** After the browser stopped retrying: done if the job is over and all was seen; else a new
 * stream, with a fresh token, from the last seq seen. */
async function recover() {
  source?.close();
  if (finished) return;
  setStream("reconnecting…");
  try {
    showSnapshot(await api(base));
    if (TERMINAL.has(job.state) && maxSeq >= job.last_seq) return finish("ended (the job is over)");
    await new Promise((resolve) => setTimeout(resolve, retryMs));
    retryMs = Math.min(retryMs * 2, 15000);
    await freshToken();
    open();
  } catch (error) {
    if (onSignedOut(error)) return;
    setTimeout(recover, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  }
}

function armCancel() {
  const button = $("cancel");
  let timer = null;
  const disarm = () => {
    clearTimeout(timer);
    timer = null;
    button.classList.remove("armed");
    button.textContent = "Cancel job";
  };
  button.addEventListener("click", async () => {
    if (timer === null) {
      button.classList.add("armed");
      button.textContent = "Press again to cancel the job";
      timer = setTimeout(disarm, 5000);
      return;
    }
    disarm();
    button.disabled = true;
    try {
      showSnapshot(await api(`${base}/cancel`, { method: "POST" }));
    } catch (error) {
      if (!onSignedOut(error)) problem(`Cannot cancel: ${error.message}`);
      button.disabled = TERMINAL.has(state);
    }
  });
}

await signIn();
try {
  showSnapshot(await api(base));
  if (job.kind === "prompt_learning") optimizeView(null);
  armCancel();
  await freshToken();
  open();
} catch (error) {
  if (!onSignedOut(error)) {
    problem(error.status === 404 ? `No job ${jobId} (or it is not yours).` : error.message);
    setStream("not following");
  }
}
