// The network map: supernodes with their leaves, mesh links and load, from
// the bootstrap server's GET /v1/topology (or GET /v1/status where the
// server has no topology), polled every second.
//
// Layout: supernodes are laid out by a small force simulation (repulsion,
// springs along mesh links, a pull to the centre, no overlaps); each
// supernode's leaves sit on rings around it. Positions persist between
// polls, so the picture only moves where the network changed.
//
// Every drawn element the tests count carries data-kind: "supernode",
// "leaf", "link"; a supernode that just vanished is kept a few seconds as
// data-kind="expired".
import { el, plural, svg, setAttrs, text, fmtTime, shortID, api, errorOf, getJSON, poll, connection } from "./common.js";

const $ = (id) => document.getElementById(id);
const conn = connection("conn");

const W = 900, H = 520; // the viewBox at its smallest
const CORE = 18, RING = 24; // supernode core and load ring radii
const MIN_VIEW = 0.6; // the view zooms in up to W*MIN_VIEW wide on a small network
const LEAF = 4; // leaf dot radius
const HIGHLIGHT_MS = 4000; // how long new and vanished supernodes stand out
const MAX_FORCE_NODES = 300; // above this, a fixed spiral instead of forces
const LOCAL_HISTORY = 600; // ratio samples kept when the server keeps none

let mode = null; // "topology" or "status", decided by the first poll
let first = true; // no highlights for what the first poll finds
const nodes = new Map(); // peer ID → supernode on the map
const leafSeen = new Map(); // leaf peer ID → first time seen (ms)
const localEvents = []; // status mode: changes seen between polls
const localHistory = []; // status mode: ratio samples
let links = []; // [a, b] peer IDs, each pair once
let alpha = 0; // simulation heat
let frame = 0;

// ---- data -------------------------------------------------------------

// fetchNetwork returns {supernodes: [{id, addrs, load, neighbours, leaves}],
// history, events}, with leaves and neighbours empty in status mode.
async function fetchNetwork() {
  if (mode !== "status") {
    const resp = await api("/v1/topology");
    if (resp.status === 404) {
      mode = "status";
    } else if (!resp.ok) {
      throw await errorOf(resp);
    } else {
      mode = "topology";
      const t = await resp.json();
      return {
        supernodes: (t.supernodes || []).map((s) => ({
          id: s.peer_id, addrs: s.addrs || [], load: s.load || {},
          neighbours: s.neighbours || [], leaves: s.leaves || [],
        })),
        history: t.history || [],
        events: t.events || [],
      };
    }
  }
  const st = await getJSON("/v1/status");
  return {
    supernodes: (st.supernodes || []).map((s) => ({
      id: s.peer_id, addrs: s.addrs || [], load: s.load || {}, neighbours: [], leaves: [],
    })),
    history: null,
    events: null,
  };
}

function update(net) {
  const now = Date.now();
  const live = new Set(net.supernodes.map((s) => s.id));
  for (const s of net.supernodes) {
    let n = nodes.get(s.id);
    if (!n) {
      n = { id: s.id, vx: 0, vy: 0, g: svg("g"), ...place(s, net) };
      if (!first) {
        n.freshUntil = now + HIGHLIGHT_MS;
        if (mode === "status") localEvents.push({ at: new Date(now).toISOString(), what: "registered", peer_id: s.id });
      }
      nodes.set(s.id, n);
      $("nodes").append(n.g);
      alpha = 1;
    }
    delete n.goneUntil;
    // Leaves: those the supernode named, plus unnamed ones up to the count
    // in its load (status mode, or a report not in yet).
    const named = s.leaves.map((id) => ({ id }));
    const extra = Math.max(0, (s.load.leaves || 0) - named.length);
    for (let i = 0; i < extra; i++) named.push({ id: null });
    if (n.leaves && n.leaves.length !== named.length) alpha = Math.max(alpha, 0.5);
    n.leaves = named;
    n.data = s;
    n.size = footprint(named.length);
    for (const l of s.leaves) if (!leafSeen.has(l)) leafSeen.set(l, first ? 0 : now);
  }
  const allLeaves = new Set(net.supernodes.flatMap((s) => s.leaves));
  for (const l of leafSeen.keys()) if (!allLeaves.has(l)) leafSeen.delete(l);
  for (const n of nodes.values()) {
    if (live.has(n.id)) continue;
    if (n.goneUntil === undefined) {
      n.goneUntil = now + HIGHLIGHT_MS;
      n.leaves = [];
      n.size = footprint(0);
      if (mode === "status") localEvents.push({ at: new Date(now).toISOString(), what: "expired", peer_id: n.id });
    } else if (now > n.goneUntil) {
      n.g.remove();
      nodes.delete(n.id);
    }
  }
  const pairs = new Map();
  for (const s of net.supernodes) {
    for (const b of s.neighbours) {
      if (b === s.id || !live.has(b)) continue;
      const k = s.id < b ? s.id + " " + b : b + " " + s.id;
      pairs.set(k, s.id < b ? [s.id, b] : [b, s.id]);
    }
  }
  const changed = pairs.size !== links.length || links.some(([a, b]) => !pairs.has(a + " " + b));
  links = [...pairs.values()];
  if (changed) alpha = Math.max(alpha, 0.5);

  const leaves = net.supernodes.reduce((a, s) => a + nodes.get(s.id).leaves.length, 0);
  const sns = net.supernodes.length;
  if (mode === "status") {
    localHistory.push({ at: new Date(now).toISOString(), supernodes: sns, leaves, ratio: sns ? leaves / sns : 0 });
    if (localHistory.length > LOCAL_HISTORY) localHistory.shift();
  }
  if (localEvents.length > 200) localEvents.splice(0, localEvents.length - 200);
  // With the topology, a leaf attached to several supernodes (--supernodes)
  // is one leaf: count peers, and say how many sessions they hold.
  const distinct = mode === "topology" ? allLeaves.size + net.supernodes.reduce((a, s) =>
    a + Math.max(0, (s.load.leaves || 0) - s.leaves.length), 0) : leaves;
  renderTotals(net, sns, distinct, leaves);
  renderNodes(now);
  settle();
  renderChart(net.history ? [...net.history, { at: new Date(now).toISOString(), ratio: sns ? leaves / sns : 0 }] : localHistory);
  renderChanges(net.events || localEvents);
  renderTable(net);
  first = false;
}

// place gives a new supernode its first position: beside a neighbour
// already on the map, else at an angle taken from its peer ID so that a
// reload draws a similar picture.
function place(s, net) {
  const a = hashAngle(s.id);
  for (const nb of s.neighbours) {
    const m = nodes.get(nb);
    if (m) return { x: m.x + 90 * Math.cos(a), y: m.y + 90 * Math.sin(a) };
  }
  if (nodes.size >= MAX_FORCE_NODES || net.supernodes.length > MAX_FORCE_NODES) return { x: W / 2, y: H / 2 };
  const r = 60 + 8 * nodes.size;
  return { x: W / 2 + r * Math.cos(a), y: H / 2 + r * Math.sin(a) };
}

function hashAngle(id) {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return ((h >>> 0) / 4294967296) * 2 * Math.PI;
}

// Leaves sit on rings around their supernode, 11 units apart.
function ringRadius(i) {
  return RING + 14 + 13 * i;
}
function ringSlots(i) {
  return Math.floor((2 * Math.PI * ringRadius(i)) / 11);
}
function leafPositions(k) {
  const out = [];
  for (let ring = 0; out.length < k; ring++) {
    const r = ringRadius(ring);
    const m = Math.min(ringSlots(ring), k - out.length);
    for (let j = 0; j < m; j++) {
      const a = -Math.PI / 2 + (2 * Math.PI * j) / m + ring * 0.3;
      out.push([r * Math.cos(a), r * Math.sin(a)]);
    }
  }
  return out;
}
function footprint(k) {
  if (k === 0) return RING + 4;
  let ring = 0;
  for (let left = k; left > ringSlots(ring); ring++) left -= ringSlots(ring);
  return ringRadius(ring) + LEAF + 2;
}

// ---- layout -----------------------------------------------------------

function step() {
  const list = [...nodes.values()];
  if (list.length > MAX_FORCE_NODES) {
    // Too many for pairwise forces: a sunflower spiral, biggest first.
    list.sort((a, b) => b.size - a.size || (a.id < b.id ? -1 : 1));
    const spacing = 2 * Math.max(...list.map((n) => n.size)) + 12;
    list.forEach((n, i) => {
      const r = spacing * 0.55 * Math.sqrt(i), a = i * 2.39996;
      n.x = W / 2 + r * Math.cos(a);
      n.y = H / 2 + r * Math.sin(a);
    });
    alpha = 0;
    return;
  }
  for (let i = 0; i < list.length; i++) {
    const a = list[i];
    for (let j = i + 1; j < list.length; j++) {
      const b = list[j];
      let dx = b.x - a.x, dy = b.y - a.y;
      if (dx === 0 && dy === 0) {
        dx = Math.random() - 0.5;
        dy = Math.random() - 0.5;
      }
      const d2 = dx * dx + dy * dy, d = Math.sqrt(d2);
      let f = (3000 * alpha) / d2; // repulsion, fading as the layout cools
      const min = a.size + b.size + 26;
      if (d < min) f += (min - d) / d / 2; // no overlaps, ever
      a.vx -= dx * f;
      a.vy -= dy * f;
      b.vx += dx * f;
      b.vy += dy * f;
    }
  }
  for (const [ia, ib] of links) {
    const a = nodes.get(ia), b = nodes.get(ib);
    if (!a || !b) continue;
    const dx = b.x - a.x, dy = b.y - a.y, d = Math.hypot(dx, dy) || 1;
    const f = ((d - (a.size + b.size + 70)) / d) * 0.06 * alpha;
    a.vx += dx * f;
    a.vy += dy * f;
    b.vx -= dx * f;
    b.vy -= dy * f;
  }
  for (const n of list) {
    n.vx += (W / 2 - n.x) * 0.015 * alpha;
    n.vy += (H / 2 - n.y) * 0.015 * alpha;
    n.vx *= 0.6;
    n.vy *= 0.6;
    n.x += n.vx;
    n.y += n.vy;
  }
  alpha *= 0.97;
}

// settle runs the simulation most of the way at once (so a change does not
// make the map dance for long) and animates the rest.
function settle() {
  for (let i = 0; i < 150 && alpha > 0.05; i++) step();
  draw();
  if (alpha > 0.005 && !frame) frame = requestAnimationFrame(animate);
}

function animate() {
  frame = 0;
  step();
  draw();
  if (alpha > 0.005) frame = requestAnimationFrame(animate);
}

// ---- drawing ----------------------------------------------------------

// renderNodes rebuilds each supernode's group: leaves, load ring, core,
// labels. Positions are set by draw.
function renderNodes(now) {
  for (const n of nodes.values()) {
    const gone = n.goneUntil !== undefined;
    const load = (n.data && n.data.load) || {};
    const cap = load.capacity || 0;
    const used = n.leaves.length;
    const frac = cap > 0 ? Math.min(1, used / cap) : 0;
    setAttrs(n.g, {
      class: gone ? "sn gone" : n.freshUntil > now ? "sn fresh" : "sn",
      "data-kind": gone ? "expired" : "supernode",
      "data-peer": n.id,
      "data-leaves": used,
      "data-capacity": cap,
    });
    const parts = [];
    const tip = gone ? `${n.id}\nexpired or demoted` :
      `${n.id}\n${(n.data.addrs || []).join(" ")}\n${used} of ${cap} leaf slots, ${load.index_files || 0} files indexed, ${load.neighbours || 0} neighbours`;
    parts.push(svg("title", {}, tip));
    const pos = leafPositions(n.leaves.length);
    n.leaves.forEach((l, i) => {
      const [x, y] = pos[i];
      const k = Math.hypot(x, y);
      parts.push(svg("line", { class: "leaf-link", x1: (x / k) * RING, y1: (y / k) * RING, x2: x, y2: y }));
    });
    n.leaves.forEach((l, i) => {
      const [x, y] = pos[i];
      const fresh = l.id && leafSeen.get(l.id) + HIGHLIGHT_MS > now;
      parts.push(svg("circle", {
        class: "leaf" + (l.id ? "" : " anonymous") + (fresh ? " fresh" : ""),
        "data-kind": "leaf", "data-peer": l.id || false, "data-parent": n.id, cx: x.toFixed(1), cy: y.toFixed(1), r: LEAF,
      }, svg("title", {}, l.id ? `leaf ${l.id}` : "leaf (not named by this server)")));
    });
    const circ = 2 * Math.PI * RING;
    parts.push(svg("circle", { class: "load-track", r: RING }));
    if (!gone && frac > 0) {
      parts.push(svg("circle", {
        class: "load-arc" + (frac >= 0.9 ? " full" : frac >= 0.7 ? " busy" : ""), r: RING,
        "stroke-dasharray": `${(circ * frac).toFixed(1)} ${circ.toFixed(1)}`, transform: "rotate(-90)",
      }));
    }
    parts.push(svg("circle", { class: "sn-core", r: CORE }));
    parts.push(svg("text", { y: 4 }, gone ? "×" : `${used}/${cap}`));
    parts.push(svg("text", { class: "label", y: n.size + 12 }, shortID(n.id)));
    n.g.replaceChildren(...parts);
  }
}

// draw moves groups and links to the current positions and fits the view.
function draw() {
  const mesh = $("mesh");
  while (mesh.childElementCount < links.length) mesh.append(svg("line", { class: "mesh-link", "data-kind": "link" }));
  while (mesh.childElementCount > links.length) mesh.lastElementChild.remove();
  links.forEach(([ia, ib], i) => {
    const a = nodes.get(ia), b = nodes.get(ib);
    setAttrs(mesh.children[i], {
      x1: a.x.toFixed(1), y1: a.y.toFixed(1), x2: b.x.toFixed(1), y2: b.y.toFixed(1), "data-a": ia, "data-b": ib,
    });
  });
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of nodes.values()) {
    n.g.setAttribute("transform", `translate(${n.x.toFixed(1)} ${n.y.toFixed(1)})`);
    x0 = Math.min(x0, n.x - n.size);
    y0 = Math.min(y0, n.y - n.size);
    x1 = Math.max(x1, n.x + n.size);
    y1 = Math.max(y1, n.y + n.size + 16);
  }
  if (!nodes.size) return;
  // Fit everything, zooming in no further than MIN_VIEW, keeping W:H.
  let w = Math.max(W * MIN_VIEW, x1 - x0 + 40), h = Math.max(H * MIN_VIEW, y1 - y0 + 40);
  if (w / h > W / H) h = (w * H) / W;
  else w = (h * W) / H;
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  $("map").setAttribute("viewBox", `${(cx - w / 2).toFixed(0)} ${(cy - h / 2).toFixed(0)} ${w.toFixed(0)} ${h.toFixed(0)}`);
}

function renderTotals(net, sns, leaves, sessions) {
  const cap = net.supernodes.reduce((a, s) => a + (s.load.capacity || 0), 0);
  text("total-supernodes", sns);
  text("total-leaves", leaves);
  text("total-sessions", sessions !== leaves ? ` (${plural(sessions, "session")}: a leaf keeps several supernodes)` : "");
  text("total-links", mode === "topology" ? links.length : "—");
  text("total-capacity", cap);
  text("total-ratio", sns ? (leaves / sns).toFixed(1) : "—");
  text("map-desc", `${plural(sns, "supernode")}, ${plural(leaves, "leaf", "leaves")}, ${plural(links.length, "mesh link")}.`);
  if (mode === "topology") {
    text("source", "live topology");
    text("source-note", "");
  } else {
    text("source", "status only");
    text("source-note", "This bootstrap server has no /v1/topology, so mesh links and leaf identities are not known: " +
      "each supernode's leaves are drawn from the count in its load (dashed).");
  }
}

function renderChart(samples) {
  const chart = $("chart");
  const L = 40, R = 550, T = 10, B = 144; // plot area in the viewBox
  const pts = samples.map((s) => ({ t: Date.parse(s.at), v: s.ratio || 0 })).filter((p) => Number.isFinite(p.t));
  const parts = [];
  if (!pts.length) {
    chart.replaceChildren(svg("desc", { id: "chart-desc" }, "No samples yet."));
    return;
  }
  const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 1000);
  const top = niceCeil(Math.max(1, ...pts.map((p) => p.v)) * 1.1);
  const px = (t) => L + ((t - t0) / (t1 - t0)) * (R - L);
  const py = (v) => B - (v / top) * (B - T);
  parts.push(svg("line", { class: "axis", x1: L, y1: B, x2: R, y2: B }));
  parts.push(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: B }));
  parts.push(svg("line", { class: "axis", x1: L, y1: py(top / 2), x2: R, y2: py(top / 2), "stroke-dasharray": "2 3" }));
  parts.push(svg("text", { x: L - 4, y: T + 4, "text-anchor": "end" }, fmtNum(top)));
  parts.push(svg("text", { x: L - 4, y: py(top / 2) + 3, "text-anchor": "end" }, fmtNum(top / 2)));
  parts.push(svg("text", { x: L - 4, y: B + 3, "text-anchor": "end" }, "0"));
  parts.push(svg("text", { x: L, y: B + 16 }, fmtTime(new Date(t0).toISOString())));
  parts.push(svg("text", { x: R, y: B + 16, "text-anchor": "end" }, fmtTime(new Date(t1).toISOString())));
  parts.push(svg("polyline", { points: pts.map((p) => `${px(p.t).toFixed(1)},${py(p.v).toFixed(1)}`).join(" ") }));
  const last = pts[pts.length - 1];
  parts.push(svg("circle", { cx: px(last.t), cy: py(last.v), r: 3, fill: "currentColor", class: "last" }));
  const lo = Math.min(...pts.map((p) => p.v)), hi = Math.max(...pts.map((p) => p.v));
  parts.push(svg("desc", { id: "chart-desc" },
    `Leaves per supernode, ${pts.length} samples from ${fmtTime(new Date(t0).toISOString())} to ${fmtTime(new Date(t1).toISOString())}: ` +
    `now ${fmtNum(last.v)}, lowest ${fmtNum(lo)}, highest ${fmtNum(hi)}.`));
  chart.replaceChildren(...parts);
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtNum(v) {
  return String(Math.round(v * 100) / 100);
}

let lastChangesKey = "";
function renderChanges(events) {
  const key = events.length + "|" + (events.length ? events[events.length - 1].at : "");
  if (key === lastChangesKey) return;
  lastChangesKey = key;
  const label = { registered: "promoted/registered", expired: "expired/demoted" };
  const items = [...events].reverse().map((e) =>
    el("li", { class: e.what },
      el("time", { datetime: e.at }, fmtTime(e.at)),
      el("span", { class: "what" }, label[e.what] || e.what), " ",
      el("span", { class: "mono", title: e.peer_id }, shortID(e.peer_id))));
  $("changes").replaceChildren(...items);
  if (!items.length) $("changes").append(el("li", { class: "muted" }, "no changes seen yet"));
}

function renderTable(net) {
  const rows = [...net.supernodes].sort((a, b) => (a.id < b.id ? -1 : 1)).map((s) => {
    const used = nodes.get(s.id).leaves.length, cap = s.load.capacity || 0;
    return el("tr", { "data-peer": s.id },
      el("td", { class: "mono" }, s.id),
      el("td", { class: "mono" }, s.addrs.join(", ")),
      el("td", {}, el("meter", { min: 0, max: Math.max(cap, 1), value: used, "aria-label": `${used} of ${cap} leaf slots used` }),
        ` ${used} of ${cap}`),
      el("td", { class: "num" }, String(s.load.index_files || 0)),
      el("td", { class: "num" }, String(mode === "topology" ? s.neighbours.length : s.load.neighbours || 0)));
  });
  $("sn-rows").replaceChildren(...rows);
  if (!rows.length) $("sn-rows").append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no supernodes registered")));
}

poll(1000, async () => update(await fetchNetwork()), { onError: (err) => conn.down(err), onOK: () => conn.ok() });
