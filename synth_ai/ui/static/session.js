// One session as a transcript: each step in order with its messages, model calls (new request
// messages, the answer, tool calls with their arguments, tokens and latency), environment
// results and rewards, and how long it took.
import { api, clockUtc, duration, el, fmt, isoUtc, onSignedOut, signIn } from "./common.js";

const id = new URLSearchParams(location.search).get("id") || "";
const $ = (name) => document.getElementById(name);

function pre(text) {
  return text ? el("pre", {}, text) : null;
}

function message(m) {
  return el(
    "div",
    { class: `msg msg-${m.role}` },
    el("span", { class: "role" }, m.role + (m.name ? ` (${m.name})` : "")),
    m.tool_call_id ? el("span", { class: "muted" }, `answer to ${m.tool_call_id}`) : null,
    pre(m.content),
    m.tool_calls.map((call) =>
      el(
        "div",
        { class: "tool-call" },
        el("strong", {}, `tool call ${call.name}`),
        call.id ? el("span", { class: "muted" }, ` ${call.id}`) : null,
        pre(call.arguments),
      ),
    ),
  );
}

function rewards(item) {
  if (!item.rewards?.length) return null;
  return el(
    "p",
    {},
    item.rewards.map((r) =>
      el("span", { class: "reward" }, `reward ${fmt(r.value)}${r.key ? ` (${r.key})` : ""}${r.source ? ` from ${r.source}` : ""} `),
    ),
  );
}

function llm(item) {
  const tokens = item.tokens.total ?? (item.tokens.input ?? 0) + (item.tokens.output ?? 0);
  const head = el(
    "h4",
    {},
    `model call ${item.model ?? ""}`,
    el("span", { class: "muted" }, ` · ${fmt(tokens)} tokens · ${duration((item.latency_ms ?? 0) / 1000)}`),
  );
  return [
    head,
    item.calls.map((call) => [
      call.earlier_messages ? el("p", { class: "muted" }, `${call.earlier_messages} earlier message(s) as above`) : null,
      call.request.map(message),
      call.response.map(message),
      call.finish_reason ? el("p", { class: "muted" }, `finish: ${call.finish_reason}`) : null,
    ]),
  ];
}

function item(it) {
  let body;
  switch (it.kind) {
    case "llm":
      body = llm(it);
      break;
    case "environment":
      body = [
        el("h4", {}, "environment ", el("span", { class: "reward" }, `reward ${fmt(it.reward)}`), it.terminated ? " · terminated" : "", it.truncated ? " · truncated" : ""),
        it.state ? el("details", {}, el("summary", {}, "state after"), pre(it.state)) : null,
      ];
      break;
    case "runtime":
      body = [el("h4", {}, "runtime actions"), pre(it.actions)];
      break;
    case "message":
      body = [el("h4", {}, `message · ${it.type}`), pre(it.content)];
      break;
    default:
      body = [el("h4", {}, it.kind)];
  }
  return el("article", { class: `item item-${it.kind}` }, body, rewards(it));
}

function step(s) {
  const parts = [`Step ${s.index}`];
  if (s.turn !== null) parts.push(`turn ${s.turn}`);
  parts.push(`reward ${fmt(s.reward)}`, duration(s.duration_s));
  return el(
    "section",
    { class: "step", "aria-label": `step ${s.index}` },
    el("h3", {}, parts.join(" · "), el("span", { class: "muted" }, ` · ${clockUtc(s.started_at)}`)),
    s.items.map(item),
  );
}

function summary(t) {
  const facts = [
    ["Reward", fmt(t.reward)],
    ["Models", t.models.join(", ") || "–"],
    ["Tokens", fmt(t.tokens)],
    ["Steps", fmt(t.steps.length)],
    ["Created", isoUtc(t.created_at)],
  ];
  $("summary").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  if (t.metadata) $("summary").append(el("dt", {}, "Metadata"), el("dd", {}, el("details", {}, el("summary", {}, "show"), pre(t.metadata))));
}

await signIn();
try {
  const t = await api(`/api/traces/sessions/${encodeURIComponent(id)}`);
  $("title").textContent = `Session ${t.session_id}`;
  document.title = `${t.session_id} · synth-ai`;
  summary(t);
  const outside = t.outside_steps.length
    ? el("section", { class: "step", "aria-label": "outside any step" }, el("h3", {}, "Outside any step"), t.outside_steps.map(item))
    : null;
  $("transcript").replaceChildren(...t.steps.map(step), ...(outside ? [outside] : []));
} catch (error) {
  if (!onSignedOut(error)) $("problem").textContent = error.status === 404 ? `No session ${id}.` : error.message;
}
