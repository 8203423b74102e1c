// The trace viewer's list: sessions newest first, filtered by reward, model, and an
// optimization's job and candidate (the filter is the page's query, so a filtered view can be
// bookmarked, and a candidate's row on the job page links here), and the SFT export of the
// reward and model filter.
import { api, duration, el, fmt, isoUtc, onSignedOut, signIn } from "./common.js";

const PAGE = 50;
const params = new URLSearchParams(location.search);
const filter = new URLSearchParams();
for (const name of ["min_reward", "model", "job", "candidate"]) if (params.get(name)) filter.set(name, params.get(name));
const exported = new URLSearchParams([...filter].filter(([name]) => name === "min_reward" || name === "model"));
const $ = (id) => document.getElementById(id);
let offset = 0;

function row(s) {
  const link = el("a", { href: `session.html?id=${encodeURIComponent(s.session_id)}` }, el("code", {}, s.session_id));
  return el(
    "tr",
    { "data-session-id": s.session_id },
    el("th", { scope: "row" }, link),
    el("td", { class: "num reward" }, fmt(s.reward)),
    el("td", {}, s.models.join(", ") || "–"),
    el("td", { class: "num" }, fmt(s.tokens)),
    el("td", { class: "num" }, duration(s.duration_s)),
    el("td", { class: "num" }, fmt(s.steps)),
    el("td", {}, el("time", { datetime: s.created_at }, isoUtc(s.created_at))),
  );
}

async function load() {
  try {
    const query = new URLSearchParams(filter);
    query.set("limit", String(PAGE));
    query.set("offset", String(offset));
    const { sessions } = await api(`/api/traces/sessions?${query}`);
    document.querySelector("#sessions tbody").append(...sessions.map(row));
    offset += sessions.length;
    $("count").textContent = `· ${offset} shown${filter.size ? " (filtered)" : ""}`;
    $("more").hidden = sessions.length < PAGE;
  } catch (error) {
    if (!onSignedOut(error)) $("problem").textContent = `Cannot list sessions: ${error.message}`;
  }
}

async function models() {
  const { models } = await api("/api/traces/models");
  const select = $("model");
  select.append(...models.map((m) => el("option", { value: m }, m)));
  select.value = filter.get("model") || "";
}

await signIn();
$("min-reward").value = filter.get("min_reward") || "";
$("job").value = filter.get("job") || "";
$("candidate").value = filter.get("candidate") || "";
$("export").href = `/api/traces/export.jsonl${exported.size ? `?${exported}` : ""}`;
if (filter.has("job") || filter.has("candidate")) $("export").textContent = "Export SFT JSONL for the reward and model filter";
$("more").addEventListener("click", load);
await models().catch((error) => onSignedOut(error));
load();
