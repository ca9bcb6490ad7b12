// Shared helpers for the Strata console pages. Everything the pages show
// comes from the network (file names, peer IDs, addresses), so text is only
// ever set with textContent, never parsed as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

// el builds an element: attrs are set as attributes (false/null/undefined
// are skipped), children are nodes or strings (added as text).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== false).map(toNode));
  return e;
}

// fill replaces e's children, skipping null, undefined and false.
export function fill(e, ...children) {
  e.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false).map(toNode));
  return e;
}

// plural: "1 file", "2 files"; "1 leaf", "2 leaves" with the plural given.
export function plural(n, word, many = word + "s") {
  return `${n} ${n === 1 ? word : many}`;
}

function toNode(c) {
  return c instanceof Node ? c : document.createTextNode(String(c));
}

// svg builds an SVG element in the SVG namespace.
export function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  setAttrs(e, attrs);
  e.append(...children.map(toNode));
  return e;
}

export function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) e.removeAttribute(k);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  return e;
}

// text replaces the content of the element with id with plain text.
export function text(id, s) {
  const e = document.getElementById(id);
  if (e && e.textContent !== String(s)) e.textContent = s;
}

// Sizes use powers of 1000, as the query language's MB does.
export function fmtBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + " " + units[i];
}

export function fmtRate(bps) {
  return bps > 0 ? fmtBytes(bps) + "/s" : "—";
}

// fmtDuration: 59s, 4m 05s, 3h 02m, 2d 04h.
export function fmtDuration(s) {
  if (!Number.isFinite(s) || s < 0) return "—";
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60, sec = s % 60;
  const two = (v) => String(v).padStart(2, "0");
  if (d > 0) return `${d}d ${two(h)}h`;
  if (h > 0) return `${h}h ${two(m)}m`;
  if (m > 0) return `${m}m ${two(sec)}s`;
  return `${sec}s`;
}

// fmtClock: a track length as m:ss.
export function fmtClock(s) {
  if (!s) return "";
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export function fmtTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour12: false });
}

// shortID: the first 8 characters of a peer ID, as tables show it.
export function shortID(id) {
  return id ? String(id).slice(0, 8) : "";
}

// APIError carries the API's {"error": "..."} message.
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// errorOf turns a failed response into an APIError with the server's words.
export async function errorOf(resp) {
  let msg = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body && body.error) msg = body.error;
  } catch {
    // not JSON: keep the status line
  }
  return new APIError(resp.status, msg);
}

// ---- the API token ------------------------------------------------------
// An API bound to a non-loopback address wants "Authorization: Bearer
// <token>" on every call (the page itself is served without one). The token
// is kept for this tab only (sessionStorage); a link can carry it in its
// fragment, which browsers never send to the server:
// <api address>/#token=<token>.

const TOKEN_KEY = "strata-api-token";

function readFragmentToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
}
readFragmentToken();

// The token form is in each page's header, hidden until a call gets 401.
function askForToken(message) {
  const form = document.getElementById("token-form");
  if (!form || !form.hidden) return;
  document.getElementById("token-hint").textContent = message;
  form.hidden = false;
  document.getElementById("token").focus();
}

// Module scripts run once the document is parsed: the form is there.
document.getElementById("token-form")?.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const v = document.getElementById("token").value.trim();
  if (!v) return;
  sessionStorage.setItem(TOKEN_KEY, v);
  document.getElementById("token").value = "";
  ev.target.hidden = true; // the next poll uses it
});

// api is fetch for the control API: it adds the token, if there is one,
// and asks for it when the API answers 401.
export async function api(url, opts = {}) {
  const headers = new Headers(opts.headers || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.set("Authorization", "Bearer " + token);
  const resp = await fetch(url, { cache: "no-store", ...opts, headers });
  if (resp.status === 401) {
    const err = await errorOf(resp);
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken(err.message);
    throw err;
  }
  return resp;
}

export async function getJSON(url, opts = {}) {
  const resp = await api(url, opts);
  if (!resp.ok) throw await errorOf(resp);
  return resp.json();
}

// poll calls fn every interval ms, never two at once. While the tab is
// hidden it waits. onError gets failures; the first success after one
// calls onOK. Returns a function that stops it.
export function poll(interval, fn, { onError = () => {}, onOK = () => {} } = {}) {
  let stopped = false;
  let timer = 0;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
        onOK();
      } catch (err) {
        onError(err);
      }
    }
    if (!stopped) timer = setTimeout(tick, interval);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// connection shows whether the API answers, in the header's status line.
export function connection(id) {
  const e = document.getElementById(id);
  return {
    ok(msg = "live") {
      e.textContent = msg;
      e.classList.remove("down");
    },
    down(err) {
      e.textContent = `no answer from the API: ${err.message}`;
      e.classList.add("down");
    },
  };
}
