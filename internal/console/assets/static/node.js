// The node console: status, search with streamed hits, downloads, shares and
// events, all from this node's control API (same origin).
import {
  el, fill, plural, text, fmtBytes, fmtRate, fmtDuration, fmtClock, fmtTime, shortID,
  api, errorOf, getJSON, poll, connection,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const conn = connection("conn");

// ---- status -----------------------------------------------------------

let lastQueries = null; // {uptime, total}: the previous poll, for queries/s
let lastEventsKey = "";

function renderStatus(st) {
  const role = String(st.role || "unknown");
  const badge = $("role");
  badge.textContent = role;
  badge.className = "badge " + role;
  document.title = `Strata ${role} ${shortID(st.peer_id)}`;
  text("peer-id", st.peer_id);
  text("peer-id-head", shortID(st.peer_id));
  text("role-policy", `${role} (policy: ${st.role_policy || "auto"})`);
  text("uptime", fmtDuration(st.uptime_s));
  text("listen", [...(st.listen || []), st.api ? `API ${st.api}` : null].filter(Boolean).join(", "));
  const sh = st.shares || {};
  text("sharing", `${plural(sh.files ?? 0, "file")}, ${fmtBytes(sh.bytes ?? 0)}`);
  const up = st.uploads || {};
  const busy = (up.active || []).length;
  text("uploads", `${busy} of ${up.slots ?? 0} slots busy, ${up.queued ?? 0} queued, ${fmtBytes(up.bytes_total ?? 0)} sent` +
    (up.max_rate > 0 ? `, capped at ${fmtRate(up.max_rate)}` : ""));

  const sn = st.supernode;
  $("leaf-facts").hidden = !!sn;
  $("sn-facts").hidden = !sn;
  $("sn-lists").hidden = !sn;
  if (sn) {
    renderSupernode(sn, st.uptime_s);
  } else {
    lastQueries = null;
    renderAttachments(st);
  }
  renderEvents(st.events || []);
  renderPromotion(st.promotion);
}

// renderAttachments lists the supernodes a leaf is attached to (a leaf keeps
// several; st.attached alone is the one searches go to first).
function renderAttachments(st) {
  const list = st.attachments || (st.attached ? [st.attached] : []);
  const rows = list.map((a, i) =>
    el("tr", { "data-peer": a.supernode.peer_id },
      el("td", { class: "mono", title: a.supernode.peer_id }, shortID(a.supernode.peer_id), i === 0 ? " (searches)" : null),
      el("td", { class: "mono" }, (a.supernode.addrs || []).join(", ")),
      el("td", { class: "num" }, fmtDuration(a.since_s)),
      el("td", { class: "num" }, a.rtt_ms ? `${a.rtt_ms.toFixed(2)} ms` : "—"),
      el("td", {}, a.responsive === false ? "not answering" : (a.search_failures ? `${plural(a.search_failures, "failed search", "failed searches")}` : "ok"))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 5, class: "muted", id: "attached" }, "not attached")));
  $("attached-rows").replaceChildren(...rows);
  const wanted = st.supernodes_wanted;
  text("attached-note", wanted ? `keeps ${plural(wanted, "supernode")}` +
    (st.host_cache !== undefined ? `; ${plural(st.host_cache, "supernode")} in the host cache` : "") : "");
}

// renderPromotion shows what the promotion engine measured and decided:
// status.promotion.policy holds the smoothed capacity, the score, the
// hold-down and the recent decisions (oldest first) with their gates.
function renderPromotion(pr) {
  $("promo-none").hidden = !!pr;
  $("promo").hidden = !pr;
  if (!pr) return;
  const pol = pr.policy || {};
  const c = pol.capacity || {};
  const ns = (v) => (v || 0) / 1e9;
  text("promo-capacity", pol.measured ?
    `up ${fmtRate(c.up_bps || 0)}, down ${fmtRate(c.down_bps || 0)}, ${(c.cores || 0).toFixed(1)} cores, ` +
    `${Math.round(c.index_ops_per_sec || 0).toLocaleString()} index lookups/s, ${fmtBytes(c.mem_bytes || 0)} free, ` +
    `up ${fmtDuration(ns(c.uptime_ns))}` : "not measured yet");
  text("promo-reach", String(pr.reachable || c.reachable || "unknown") + (pr.bootstrap ? ` (dial-back by ${pr.bootstrap})` : ""));
  text("promo-score", pol.measured ? `${(pol.score || 0).toFixed(1)} leaves` : "—");
  const d = pr.demand || {};
  text("promo-demand", d.supernodes ? `${plural(d.supernodes, "supernode")} for ${plural(d.leaves || 0, "leaf", "leaves")}, ` +
    `the bootstrap wants ${d.need}; asks this node: ${d.ask || "nothing"}` : "no word from a bootstrap server yet");
  const hold = pol.hold_until ? new Date(pol.hold_until) : null;
  text("promo-hold", hold && hold > new Date() ? `no role change before ${fmtTime(pol.hold_until)}` :
    `${plural(pol.changes || 0, "role change")}; free to change`);
  const decisions = [...(pol.decisions || [])].reverse();
  const last = decisions[0];
  $("promo-gates").replaceChildren(...((last && last.gates) || []).map((g) =>
    el("li", { class: g.ok ? "ok" : "fail" }, `${g.ok ? "✓" : "✗"} ${g.name}: ${g.have} (needs ${g.want})`)));
  $("decision-rows").replaceChildren(...decisions.map((r) =>
    el("tr", {},
      el("td", {}, el("time", { datetime: r.at }, fmtTime(r.at)), r.repeats > 1 ? ` ×${r.repeats}` : null),
      el("td", {}, String(r.role)),
      el("td", {}, String(r.want)),
      el("td", {}, String(r.action) + (r.blocked ? ` (waits: ${r.blocked})` : "")),
      el("td", {}, r.reason || ""))));
  if (!decisions.length) {
    $("decision-rows").append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no decisions yet")));
  }
}

function renderSupernode(sn, uptime) {
  const leaves = sn.leaves || [];
  text("sn-leaves", `${leaves.length} of ${sn.capacity}`);
  const nb = sn.neighbours || [];
  const nbEl = $("sn-neighbours");
  nbEl.textContent = nb.length ? nb.map((p) => shortID(p.peer_id)).join(", ") : "none";
  nbEl.title = nb.map((p) => `${p.peer_id} ${(p.addrs || []).join(" ")}`).join("\n");
  text("sn-index", `${plural(sn.index_files, "file")}, ${fmtBytes(sn.index_bytes)}`);
  const s = sn.stats || {};
  const total = (s.queries_from_leaves || 0) + (s.queries_from_mesh || 0);
  // Queries per second between this poll and the last, timed by the
  // node's own uptime so a slow poll does not skew it.
  if (lastQueries && uptime > lastQueries.uptime && total >= lastQueries.total) {
    const qps = (total - lastQueries.total) / (uptime - lastQueries.uptime);
    text("sn-qps", qps.toFixed(qps < 10 ? 1 : 0));
  }
  lastQueries = { uptime, total };
  text("sn-hits", String(s.hits_sent || 0));
  text("sn-relayed", fmtBytes((sn.relay && sn.relay.bytes_total) || 0));
  const drops = Object.values(s.drops || {}).reduce((a, b) => a + b, 0) + (sn.queue_drops || 0);
  text("sn-drops", String(drops));
  $("leaf-rows").replaceChildren(...leaves.map((l) =>
    el("tr", { "data-peer": l.peer.peer_id },
      el("td", { class: "mono", title: l.peer.peer_id }, shortID(l.peer.peer_id)),
      el("td", { class: "mono" }, (l.peer.addrs || []).join(", ")),
      el("td", { class: "num" }, String(l.files)))));
  if (!leaves.length) {
    $("leaf-rows").append(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "no leaves attached")));
  }
}

// Role changes among status.events ("became a supernode: ...", "stepped
// down: ..."), beside the engine's decisions.
const roleEvent = /became|promot|demot|\brole\b/i;

function renderEvents(events) {
  const key = events.length + "|" + (events.length ? events[events.length - 1].at : "");
  if (key === lastEventsKey) return;
  lastEventsKey = key;
  const item = (e) => el("li", {}, el("time", { datetime: e.at }, fmtTime(e.at)), e.what);
  const newest = [...events].reverse();
  $("events").replaceChildren(...newest.map(item));
  if (!events.length) $("events").append(el("li", { class: "muted" }, "nothing yet"));
  const changes = newest.filter((e) => roleEvent.test(e.what));
  $("decisions").replaceChildren(...changes.map(item));
  if (!changes.length) $("decisions").append(el("li", { class: "muted" }, "no role changes since start"));
}

// ---- search -----------------------------------------------------------

let searching = null; // AbortController of the running search
const results = new Map(); // content ID → {row, holders: Map}

// buildQuery adds the filter controls to the words, in the query language
// (README "Searching"): bitrate>=128 size>=10MB size<=50MB type:audio.
function buildQuery() {
  const parts = [$("q").value.trim()];
  const br = $("f-bitrate").value;
  if (br) parts.push(`bitrate>=${br}`);
  const mb = (v) => {
    const n = Number(v);
    return v.trim() !== "" && Number.isFinite(n) && n >= 0 && n < 1e9 ? String(parseFloat(n.toFixed(6))) : null;
  };
  const lo = mb($("f-size-min").value), hi = mb($("f-size-max").value);
  if (lo !== null) parts.push(`size>=${lo}MB`);
  if (hi !== null) parts.push(`size<=${hi}MB`);
  const ty = $("f-type").value;
  if (ty) parts.push(`type:${ty}`);
  return parts.filter(Boolean).join(" ");
}

function searchStatus(msg, isError = false) {
  const p = $("search-status");
  p.textContent = msg;
  p.classList.toggle("error", isError);
}

async function runSearch() {
  if (searching) searching.abort();
  const ctrl = new AbortController();
  searching = ctrl;
  const query = buildQuery();
  text("search-query", query);
  results.clear();
  $("result-rows").replaceChildren();
  $("search-stop").disabled = false;
  searchStatus("Searching…");
  let hits = 0;
  const handle = (line) => {
    if (!line.trim()) return;
    const ev = JSON.parse(line);
    if (ev.type === "hit" && ev.hit) {
      hits++;
      addHit(ev.hit);
      searchStatus(`Searching… ${plural(hits, "hit")} so far`);
    } else if (ev.type === "done") {
      const secs = ((ev.elapsed_ms || 0) / 1000).toFixed(1);
      const n = ev.hits || 0;
      if (ev.error) searchStatus(`${plural(n, "hit")} in ${secs} s; the search ended early: ${ev.error}`, true);
      else searchStatus(n ? `${plural(n, "hit")} (${plural(results.size, "distinct file")}) in ${secs} s` : `No hits in ${secs} s.`);
    }
  };
  try {
    const params = new URLSearchParams({ q: query, max: "200", timeout: $("timeout").value });
    const resp = await api("/v1/search?" + params, { signal: ctrl.signal });
    if (!resp.ok) throw await errorOf(resp);
    // Hits arrive as JSON lines while the search runs: read the body as a
    // stream and show each line as soon as it is complete.
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        handle(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    handle(buf);
  } catch (err) {
    if (err.name === "AbortError") {
      if (searching === ctrl || searching === null) searchStatus(`Stopped after ${plural(hits, "hit")}.`);
    } else {
      searchStatus(`Search failed: ${err.message}`, true);
    }
  } finally {
    if (searching === ctrl) {
      searching = null;
      $("search-stop").disabled = true;
    }
  }
}

function addHit(hit) {
  const f = hit.file || {};
  const cid = f.content_id;
  const holder = hit.holder || {};
  let r = results.get(cid);
  if (!r) {
    const button = el("button", { type: "button", "aria-label": `Download ${f.name}` }, "Download");
    button.addEventListener("click", () => startDownload(cid, f.name, button));
    const tags = [f.artist, f.title, f.album].filter(Boolean).join(" – ");
    r = {
      holders: new Map(),
      hops: hit.hops,
      button,
      holderCell: el("td", { class: "mono" }),
      hopsCell: el("td", { class: "num" }),
    };
    r.row = el("tr", { class: "fresh", "data-cid": cid },
      el("td", {}, f.name, tags ? el("div", { class: "note" }, tags) : null),
      el("td", {}, f.media || ""),
      el("td", { class: "num" }, fmtBytes(f.size)),
      el("td", { class: "num" }, f.bitrate ? `${f.bitrate} kbit/s` : ""),
      el("td", { class: "num" }, fmtClock(f.duration)),
      r.holderCell, r.hopsCell,
      el("td", {}, button));
    results.set(cid, r);
    $("result-rows").append(r.row);
  }
  r.holders.set(holder.peer_id, holder);
  r.hops = Math.min(r.hops, hit.hops);
  r.holderCell.textContent = r.holders.size === 1 ? shortID(holder.peer_id) : `${r.holders.size} peers`;
  r.holderCell.title = [...r.holders.values()].map((h) => `${h.peer_id} ${(h.addrs || []).join(" ")}`).join("\n");
  r.hopsCell.textContent = String(r.hops);
  syncButton(cid);
}

// ---- downloads --------------------------------------------------------

const downloads = new Map(); // ID (content ID hex) → {status, row, cells}
const active = new Set(["finding", "downloading", "verifying"]);

async function startDownload(cid, name, button) {
  button.disabled = true;
  button.textContent = "Starting…";
  try {
    const resp = await api("/v1/downloads", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ content_id: cid, name }),
    });
    if (!resp.ok) throw await errorOf(resp);
    upsertDownload(await resp.json());
  } catch (err) {
    button.disabled = false;
    button.textContent = "Download";
    searchStatus(`Could not start the download of ${name}: ${err.message}`, true);
  }
}

// syncButton shows a result's download state on its button.
function syncButton(cid) {
  const r = results.get(cid);
  if (!r) return;
  const d = downloads.get(cid);
  const state = d && d.status.state;
  if (!state || state === "failed" || state === "cancelled") {
    r.button.disabled = false;
    r.button.textContent = state ? "Retry" : "Download";
  } else {
    r.button.disabled = true;
    r.button.textContent = state === "done" ? "Downloaded" : state;
  }
}

function upsertDownload(d) {
  let e = downloads.get(d.id);
  if (!e) {
    const cancel = el("button", { type: "button", class: "secondary", "aria-label": `Cancel ${d.name}` }, "Cancel");
    cancel.addEventListener("click", () => cancelDownload(d.id, cancel));
    e = {
      name: el("td", {}),
      progress: el("progress", { max: 1, "aria-label": `Progress of ${d.name}` }),
      pct: el("div", { class: "note" }),
      state: el("td", {}),
      rate: el("td", { class: "num" }),
      sources: el("td", { class: "num" }),
      cancel,
    };
    e.row = el("tr", { "data-id": d.id }, e.name, el("td", {}, e.progress, e.pct), e.state, e.rate, e.sources, el("td", {}, cancel));
    downloads.set(d.id, e);
    $("download-rows").prepend(e.row);
    $("downloads").hidden = false;
    $("downloads-empty").hidden = true;
  }
  const was = e.status && e.status.state;
  e.status = d;
  e.row.dataset.state = d.state;
  fill(e.name, d.name || d.id.slice(0, 12),
    d.error ? el("div", { class: "note error" }, d.error) : null,
    d.path ? el("div", { class: "note mono" }, d.path) : null);
  if (d.size > 0) {
    e.progress.max = d.size;
    e.progress.value = d.state === "done" ? d.size : d.done;
    const pct = Math.floor((100 * (d.state === "done" ? d.size : d.done)) / d.size);
    e.pct.textContent = `${pct}% · ${fmtBytes(d.done)} of ${fmtBytes(d.size)}` +
      (d.eta_seconds > 0 && active.has(d.state) ? ` · ${fmtDuration(d.eta_seconds)} left` : "");
    e.row.dataset.percent = String(pct);
  } else {
    e.progress.removeAttribute("value"); // indeterminate until the size is known
    e.pct.textContent = "size not known yet";
  }
  fill(e.state, d.state, d.relayed && " ", d.relayed && el("span", { class: "badge relayed" }, "relayed"));
  e.rate.textContent = active.has(d.state) ? fmtRate(d.rate_bps) : "—";
  const srcs = d.sources || [];
  e.sources.textContent = `${srcs.filter((s) => s.state === "active").length}/${srcs.length}`;
  e.sources.title = srcs.map((s) => `${s.peer.peer_id}: ${s.state}${s.queue_position ? " #" + s.queue_position : ""}` +
    ` ${fmtBytes(s.bytes)}${s.reason ? " (" + s.reason + ")" : ""}`).join("\n");
  e.cancel.hidden = !active.has(d.state);
  syncButton(d.id);
  if (d.state === "done" && was && was !== "done") loadShares();
}

async function cancelDownload(id, button) {
  button.disabled = true;
  try {
    // The API takes writes only as JSON, even without a body.
    const resp = await api(`/v1/downloads/${encodeURIComponent(id)}`, {
      method: "DELETE",
      headers: { "Content-Type": "application/json" },
    });
    if (!resp.ok) throw await errorOf(resp);
  } catch (err) {
    searchStatus(`Could not cancel: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
}

async function loadDownloads() {
  const list = await getJSON("/v1/downloads");
  const seen = new Set();
  for (const d of list || []) {
    seen.add(d.id);
    upsertDownload(d);
  }
  for (const [id, e] of downloads) {
    if (!seen.has(id)) {
      e.row.remove();
      downloads.delete(id);
      syncButton(id);
    }
  }
  $("downloads").hidden = downloads.size === 0;
  $("downloads-empty").hidden = downloads.size !== 0;
}

// ---- shares -----------------------------------------------------------

const maxShareRows = 300;
let shares = [];

async function loadShares() {
  shares = (await getJSON("/v1/shares")) || [];
  shares.sort((a, b) => a.name.localeCompare(b.name));
  renderShares();
}

function renderShares() {
  const f = $("share-filter").value.trim().toLowerCase();
  const match = f ? shares.filter((s) => s.name.toLowerCase().includes(f)) : shares;
  const shown = match.slice(0, maxShareRows);
  $("share-rows").replaceChildren(...shown.map((s) =>
    el("tr", { "data-cid": s.content_id },
      el("td", {}, s.name), el("td", {}, s.media || ""), el("td", { class: "num" }, fmtBytes(s.size)))));
  text("shares-count", (f ? `${match.length} of ${plural(shares.length, "file")} match` : plural(shares.length, "file")) +
    (shown.length < match.length ? `, the first ${shown.length} shown` : ""));
}

// ---- start ------------------------------------------------------------

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  runSearch();
});
$("search-stop").addEventListener("click", () => {
  if (searching) {
    const c = searching;
    searching = null;
    $("search-stop").disabled = true;
    c.abort();
  }
});
$("share-filter").addEventListener("input", renderShares);

const report = { onError: (err) => conn.down(err), onOK: () => conn.ok() };
poll(1000, async () => renderStatus(await getJSON("/v1/status")), report);
poll(500, loadDownloads, report);
poll(5000, loadShares, report);
