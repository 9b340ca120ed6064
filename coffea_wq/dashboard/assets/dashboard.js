// coffea-wq dashboard: polls /api/snapshot every second and redraws in place (no reload).
// Plots are SVG drawn here; every value from the server goes through textContent, never HTML.
"use strict";

const REFRESH_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";
let refreshes = 0;
let timer = null;

const $ = (id) => document.getElementById(id);

function fmt(n, digits = 0) {
  if (n === null || n === undefined) return "-";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.round(seconds);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function clock(epoch) {
  if (!epoch) return "-";
  return new Date(epoch * 1000).toLocaleTimeString("en-GB");
}

function ago(epoch, now) {
  if (!epoch) return "-";
  return duration(Math.max(0, now - epoch)) + " ago";
}

function megabytes(mb) {
  if (mb === null || mb === undefined) return "-";
  return mb >= 1024 ? fmt(mb / 1024, 1) + " GB" : fmt(mb) + " MB";
}

function bytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return fmt(n, i ? 1 : 0) + " " + units[i];
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fillTable(id, items, makeRow) {
  const body = $(id).tBodies[0];
  const rows = items.map((item) => {
    const tr = document.createElement("tr");
    makeRow(tr, item);
    return tr;
  });
  body.replaceChildren(...rows);
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// ---------------------------------------------------------------- plots
function linePlot(container, points, key, label) {
  const W = 1100, H = 200, L = 56, B = 24, T = 8, R = 10;
  // drawn in its own units and scaled to the card's width
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": label });
  const values = points.map((p) => p[key] || 0);
  const tmax = points.length ? points[points.length - 1].t : 1;
  const tmin = points.length ? Math.min(points[0].t, tmax) : 0;
  const vmax = Math.max(1e-9, ...values) * 1.1;
  const x = (t) => L + ((t - tmin) / Math.max(1e-9, tmax - tmin)) * (W - L - R);
  const y = (v) => H - B - (v / vmax) * (H - B - T);
  for (let i = 0; i <= 4; i++) {
    const v = (vmax * i) / 4;
    svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    svg.appendChild(svgEl("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" }, fmt(v, v < 10 ? 1 : 0)));
  }
  svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  svg.appendChild(svgEl("text", { x: L, y: H - 6 }, duration(tmin)));
  svg.appendChild(svgEl("text", { x: W - R, y: H - 6, "text-anchor": "end" }, duration(tmax)));
  if (points.length > 1) {
    const path = points.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + "," + y(p[key] || 0).toFixed(1)).join(" ");
    svg.appendChild(svgEl("path", { d: path + ` L${x(tmax)},${H - B} L${x(tmin)},${H - B} Z`, class: "area" }));
    svg.appendChild(svgEl("path", { d: path, class: "line" }));
  } else {
    svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "waiting for results"));
  }
  container.replaceChildren(svg);
}

function histogramPlot(title, hist, unit) {
  const W = 340, H = 140, L = 34, B = 30, T = 6;
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  const n = hist.counts.reduce((a, b) => a + b, 0);
  caption.textContent = `${title} (${n} tasks)`;
  const svg = svgEl("svg", { width: W, height: H, role: "img", "aria-label": title });
  const labels = hist.bounds.map((b) => "≤" + fmt(b, 2)).concat([">" + fmt(hist.bounds[hist.bounds.length - 1], 2)]);
  const cmax = Math.max(1, ...hist.counts);
  const bw = (W - L - 4) / hist.counts.length;
  hist.counts.forEach((c, i) => {
    const h = (c / cmax) * (H - B - T);
    const bar = svgEl("rect", { x: L + i * bw + 1, y: H - B - h, width: Math.max(1, bw - 2), height: h, class: "barfill" });
    bar.appendChild(svgEl("title", {}, `${labels[i]} ${unit}: ${c}`));
    svg.appendChild(bar);
    if (i % 3 === 0) {
      svg.appendChild(svgEl("text", { x: L + i * bw + bw / 2, y: H - B + 12, "text-anchor": "middle" }, labels[i]));
    }
  });
  svg.appendChild(svgEl("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, fmt(cmax)));
  svg.appendChild(svgEl("text", { x: W / 2, y: H - 4, "text-anchor": "middle" }, unit));
  svg.appendChild(svgEl("line", { x1: L, x2: W, y1: H - B, y2: H - B, class: "axis" }));
  figure.append(caption, svg);
  return figure;
}

// ---------------------------------------------------------------- sections
function showProgress(p) {
  $("phase").textContent = p.phase ? "(" + p.phase + ")" : "";
  $("chunks-done").textContent = fmt(p.chunks_done);
  $("chunks-total").textContent = fmt(p.chunks_total);
  $("unit").textContent = p.unit === "task" ? "tasks" : p.unit + "s";
  const hasEvents = p.events_total !== null;
  $("events-line").hidden = !hasEvents;
  $("events-done").textContent = fmt(p.events_done);
  $("events-total").textContent = fmt(p.events_total);
  const fraction = hasEvents && p.events_total ? p.events_done / p.events_total
    : p.chunks_total ? p.chunks_done / p.chunks_total : 0;
  $("progress-bar").style.width = (100 * Math.min(1, fraction)).toFixed(1) + "%";
  $("rate").textContent = p.rate_events_s !== null ? fmt(p.rate_events_s) + " events/s"
    : p.rate_chunks_s !== null ? fmt(p.rate_chunks_s, 2) + " " + $("unit").textContent + "/s" : "-";
  $("eta").textContent = duration(p.eta_s);
  $("elapsed").textContent = duration(p.elapsed_s);
  fillTable("datasets", p.datasets, (tr, d) => {
    cell(tr, d.name || "(none)");
    cell(tr, `${fmt(d.chunks_done)} / ${fmt(d.chunks_total)}`, "num");
    cell(tr, d.events_total ? `${fmt(d.events_done)} / ${fmt(d.events_total)}` : "-", "num");
    const td = cell(tr, "");
    const bar = document.createElement("span");
    bar.className = "minibar";
    const fill = document.createElement("span");
    const frac = d.events_total ? d.events_done / d.events_total : d.chunks_total ? d.chunks_done / d.chunks_total : 0;
    fill.style.width = (100 * frac).toFixed(1) + "%";
    bar.appendChild(fill);
    td.appendChild(bar);
  });
}

function showTasks(t) {
  const rows = [["waiting", fmt(t.waiting)], ["running", fmt(t.running)], ["done", fmt(t.done)],
    ["failed", fmt(t.failed)], ["retries", fmt(t.retries)], ["exhaustions", fmt(t.exhaustions)],
    ["splits", fmt(t.splits)], ["partials lost", fmt(t.partials_lost)], ["chunks redone", fmt(t.chunks_redone)],
    ["hold bound", t.hold_bound || "-"], ["sent", bytes(t.bytes_sent)], ["received", bytes(t.bytes_received)]];
  fillTable("tasks", rows, (tr, [k, v]) => { cell(tr, k); const td = cell(tr, v, "num"); td.id = "tasks-" + k.replace(/ /g, "-"); });
}

function showWorkers(snap) {
  $("workers-connected").textContent = fmt(snap.workers_connected);
  fillTable("workers", snap.workers, (tr, w) => {
    if (!w.connected) tr.className = "left";
    cell(tr, w.host); cell(tr, w.address);
    cell(tr, fmt(w.cores, 2), "num"); cell(tr, megabytes(w.memory), "num"); cell(tr, megabytes(w.disk), "num");
    cell(tr, fmt(w.running), "num"); cell(tr, fmt(w.done), "num");
    cell(tr, w.connected ? ago(w.last_contact, snap.time) : "-");
    cell(tr, clock(w.joined)); cell(tr, w.connected ? "" : clock(w.left));
    cell(tr, w.warm ? "warm" : "cold");
  });
}

function showRunning(snap) {
  fillTable("running", snap.running_tasks, (tr, t) => {
    cell(tr, "#" + t.task_id); cell(tr, t.category); cell(tr, t.host);
    cell(tr, t.started ? duration(Math.max(0, snap.time - t.started)) : "-");
    cell(tr, t.command, "mono");
  });
}

function resourceText(r, withTime) {
  const parts = [];
  if (r.cores !== undefined) parts.push(fmt(r.cores, 2) + (r.cores === 1 ? " core" : " cores"));
  if (r.memory !== undefined) parts.push(megabytes(r.memory));
  if (r.disk !== undefined) parts.push(megabytes(r.disk) + " disk");
  if (withTime && r.wall_time !== undefined) parts.push(duration(r.wall_time));
  return parts.length ? parts.join(", ") : "-";
}

function showCategories(categories) {
  fillTable("categories", categories, (tr, c) => {
    cell(tr, c.name); cell(tr, fmt(c.waiting), "num"); cell(tr, fmt(c.running), "num"); cell(tr, fmt(c.done), "num");
    cell(tr, resourceText(c.allocation, false)); cell(tr, resourceText(c.peaks, true));
    cell(tr, fmt(c.exhaustions), "num"); cell(tr, fmt(c.splits), "num");
  });
  const figures = [];
  for (const c of categories) {
    if (c.memory && c.memory.counts.some((n) => n)) figures.push(histogramPlot(c.name + ": peak memory", c.memory, "MB"));
    if (c.wall_time && c.wall_time.counts.some((n) => n)) figures.push(histogramPlot(c.name + ": wall time", c.wall_time, "s"));
  }
  $("histograms").replaceChildren(...figures);
}

// where the time went (docs/executor.md, section 10): the phases in the order a task meets them
const PHASES = [
  ["inputs", "inputs", "#8d6e63"], ["start_cold", "cold start", "#e53935"], ["start_warm", "warm start", "#ef9a9a"],
  ["open", "opening files", "#fb8c00"], ["read", "reading", "#fdd835"], ["process", "process()", "#43a047"],
  ["accumulate", "adding on workers", "#00897b"], ["write", "writing result", "#5e35b1"],
  ["other", "worker, other", "#9e9e9e"], ["send", "sending inputs", "#1e88e5"],
  ["receive", "fetching outputs", "#3949ab"], ["decode", "decoding here", "#8e24aa"], ["merge", "merging here", "#d81b60"],
];

function showBreakdown(breakdown) {
  const shares = (breakdown && breakdown.shares) || {};
  $("advice").firstChild.textContent = (breakdown && breakdown.advice) || "no task has reported its phases yet";
  const bars = [], keys = [];
  for (const [name, label, colour] of PHASES) {
    const share = shares[name] || 0;
    if (share <= 0) continue;
    const piece = document.createElement("span");
    piece.style.width = (100 * share).toFixed(2) + "%";
    piece.style.background = colour;
    piece.dataset.phase = name;
    piece.title = `${label}: ${(100 * share).toFixed(1)}% (${duration(breakdown.seconds[name])})`;
    bars.push(piece);
    const key = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = colour;
    key.append(swatch, `${label} ${(100 * share).toFixed(0)}%`);
    keys.push(key);
  }
  $("breakdown-bar").replaceChildren(...bars);
  $("breakdown-legend").replaceChildren(...keys);
}

function showFailures(failures) {
  $("no-failures").hidden = failures.length > 0;
  fillTable("failures", failures, (tr, f) => {
    cell(tr, clock(f.time)); cell(tr, f.dataset || "-");
    cell(tr, f.file ? f.file.split("/").pop() : "-").title = f.file || "";
    cell(tr, f.entry_start !== null ? `[${f.entry_start}, ${f.entry_stop})` : "-");
    cell(tr, f.host || "-"); cell(tr, (f.final ? "final " : "") + f.attempt, "num");
    cell(tr, f.error.join("\n"), "error-text");
  });
}

function show(snap) {
  $("content").hidden = false;
  $("login").hidden = true;
  $("manager").textContent = (snap.source.project ? snap.source.project + " @ " : "") + snap.source.manager;
  $("state").textContent = snap.state;
  $("state").className = "badge " + snap.state;
  $("error").textContent = snap.error || "";
  showProgress(snap.progress);
  showTasks(snap.tasks);
  const key = snap.progress.events_total !== null ? "events_s" : "chunks_s";
  $("throughput-unit").textContent = key === "events_s" ? "(events/s)" : "(" + $("unit").textContent + "/s)";
  linePlot($("throughput"), snap.throughput, key, "throughput");
  showWorkers(snap);
  showRunning(snap);
  showCategories(snap.categories);
  showFailures(snap.failures);
  $("breakdown-card").hidden = snap.source.kind !== "executor";
  showBreakdown(snap.breakdown);
  refreshes += 1;
  $("refreshes").textContent = refreshes;
  $("updated").textContent = clock(snap.time);
  $("logout").hidden = !snap.source.password;
}

function showLogin() {
  // no data may stay on screen once the server says we are not allowed to see it
  $("content").hidden = true;
  $("content").querySelectorAll("tbody").forEach((b) => b.replaceChildren());
  $("login").hidden = false;
  $("state").textContent = "password needed";
}

async function refresh() {
  try {
    const reply = await fetch("/api/snapshot", { credentials: "same-origin", cache: "no-store" });
    if (reply.status === 401) showLogin();
    else if (reply.ok) show(await reply.json());
    else $("state").textContent = "error " + reply.status;
  } catch (err) {
    $("state").textContent = "dashboard unreachable";
    $("state").className = "badge unreachable";
  } finally {
    timer = setTimeout(refresh, REFRESH_MS);
  }
}

async function login(event) {
  event.preventDefault();
  const body = new URLSearchParams({ password: $("password").value });
  const reply = await fetch("/login", { method: "POST", body, credentials: "same-origin" });
  $("password").value = "";
  if (reply.ok) {
    $("login-error").textContent = "";
    clearTimeout(timer);
    refresh();
  } else {
    $("login-error").textContent = "wrong password";
  }
}

async function logout() {
  await fetch("/logout", { method: "POST", credentials: "same-origin" });
  showLogin();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  refresh();
});
