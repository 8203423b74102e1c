// Shared by every page: signing in, calling the server's JSON API, and small DOM helpers.
//
// The page never holds an API key: a login token from the printed URL (in the fragment, which
// browsers never send to a server) or a key typed into the form is traded at once for an
// HttpOnly session cookie, and only the session's CSRF token is kept, in memory.

export class NotSignedIn extends Error {}

let csrf = null;

/** An element with attributes and children (strings become text, never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Call the JSON API; a state-changing call carries the session's CSRF token. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (response.status === 401 && !path.startsWith("/ui/api/signin")) throw new NotSignedIn();
  const payload = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(payload?.detail?.error?.message || `HTTP ${response.status}`);
    error.status = response.status;
    error.code = payload?.detail?.error?.code;
    throw error;
  }
  return payload;
}

function signedIn(session) {
  csrf = session.csrf;
  const who = session.operator ? "operator" : `tenant ${session.tenant}`;
  const bar = document.getElementById("session");
  if (bar) {
    const out = el("button", { type: "button", class: "link" }, "Sign out");
    out.addEventListener("click", async () => {
      await api("/ui/api/signout", { method: "POST" }).catch(() => null);
      location.reload();
    });
    bar.replaceChildren(el("span", {}, `Signed in as ${who}`), " ", out);
  }
  document.getElementById("content").hidden = false;
  return session;
}

/** Sign in (from the printed URL's token, an existing session, or the key form); resolves
 * with `{tenant, operator, csrf}` once the page may call the API. */
export async function signIn() {
  let notice = "";
  const login = /(?:^#|&)login=([^&]+)/.exec(location.hash);
  if (login) {
    history.replaceState(null, "", location.pathname + location.search);
    try {
      const token = decodeURIComponent(login[1]);
      return signedIn(await api("/ui/api/signin", { method: "POST", body: { login_token: token } }));
    } catch (error) {
      notice = error.message;
    }
  }
  try {
    return signedIn(await api("/ui/api/session"));
  } catch (error) {
    if (!(error instanceof NotSignedIn)) throw error;
  }
  return signedIn(await keyForm(notice));
}

function keyForm(notice) {
  return new Promise((resolve) => {
    const input = el("input", {
      id: "signin-key",
      type: "password",
      autocomplete: "off",
      required: true,
      "aria-describedby": "signin-help",
    });
    const problem = el("p", { class: "problem", role: "alert" }, notice);
    const form = el(
      "form",
      { id: "signin", class: "panel", "aria-labelledby": "signin-title" },
      el("h2", { id: "signin-title" }, "Sign in"),
      el(
        "p",
        { id: "signin-help" },
        "Open the sign-in URL the server printed when it started, or enter an API key. " +
          "The key is traded for a session cookie; this page does not keep it.",
      ),
      el("label", { for: "signin-key" }, "API key"),
      " ",
      input,
      " ",
      el("button", { type: "submit" }, "Sign in"),
      problem,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = input.value;
      input.value = "";
      try {
        const session = await api("/ui/api/signin", { method: "POST", body: { key } });
        form.remove();
        resolve(session);
      } catch (error) {
        problem.textContent = error.message;
        input.focus();
      }
    });
    document.getElementById("content").before(form);
    input.focus();
  });
}

/** Numbers as people read them: 4 significant digits, integers whole, null as a dash. */
export function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  const magnitude = Math.abs(value);
  return magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)
    ? value.toExponential(3)
    : String(Number(value.toPrecision(4)));
}

/** A time (unix seconds, or ISO text) as the CLI shows it: ISO 8601 in UTC, to the second. */
export function isoUtc(value) {
  const when = new Date(typeof value === "number" ? value * 1000 : value);
  return Number.isNaN(when.getTime()) ? "–" : when.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A time's hour, minute and second in UTC, for log lines: `15:40:50Z`. */
export function clockUtc(value) {
  return isoUtc(value).slice(11);
}

/** How long ago a unix time (seconds) was, briefly. */
export function ago(seconds) {
  const elapsed = Math.max(0, Date.now() / 1000 - seconds);
  if (elapsed < 60) return `${Math.floor(elapsed)} s ago`;
  if (elapsed < 3600) return `${Math.floor(elapsed / 60)} min ago`;
  if (elapsed < 86400) return `${Math.floor(elapsed / 3600)} h ago`;
  return `${Math.floor(elapsed / 86400)} d ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${fmt(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

const STATE_MARKS = { queued: "○", running: "▶", succeeded: "✓", failed: "✗", canceled: "⊘" };
export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

/** A job state as a mark and a word (never colour alone). */
export function stateBadge(state) {
  return el("span", { class: `state state-${state}` }, `${STATE_MARKS[state] || "•"} ${state}`);
}

/** Where a page goes when its session ends: back through sign-in. */
export function onSignedOut(error) {
  if (error instanceof NotSignedIn) {
    location.reload();
    return true;
  }
  return false;
}
