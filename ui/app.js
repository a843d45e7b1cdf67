// crund's dashboard: plain JavaScript, no build step, no other host.
// Every API call carries the token from sessionStorage when auth is on
// (401 shows the sign-in form).  Live updates come from GET /v1/events
// (every job's state changes) and GET /v1/jobs/{id}/events (one job's
// progress and log), read with fetch() so the token goes in a header,
// never in a URL.
"use strict";

const TOKEN_KEY = "crund.token";
const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
const $ = (sel, root = document) => root.querySelector(sel);

// ------------------------------------------------------------ helpers

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function badge(state) {
  return h("span", { class: `badge st-${state}`, "data-state": state }, state);
}

function fmtTime(t) {
  if (!t) return "—";
  const d = new Date(t);
  return d.toLocaleString(undefined, { hour12: false });
}

function fmtSeconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return "—";
  if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 0)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function duration(job) {
  if (!job.started_at) return null;
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  return (end - Date.parse(job.started_at)) / 1000;
}

function pretty(v) {
  return JSON.stringify(v, null, 2);
}

// --------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function authHeaders() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { Authorization: `Bearer ${t}` } : {};
}

async function api(path, { method = "GET", body, text = false } = {}) {
  const opts = { method, headers: authHeaders(), cache: "no-store" };
  if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, "unreachable", `crund is unreachable: ${e.message}`);
  }
  if (res.status === 401) {
    needLogin();
    throw new ApiError(401, "unauthorized", "a token is required");
  }
  if (res.status === 204) return null;
  const data = text ? await res.text() : await res.json().catch(() => null);
  if (!res.ok) {
    const err = data && data.error ? data.error : { code: "http_" + res.status, message: res.statusText };
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

// An event stream read with fetch (headers allowed, unlike EventSource).
// onOpen() once the stream's answer has come (it is connected), then
// onEvent(name, data, id); resolves when the stream ends; abort with
// signal.
async function readSSE(path, { signal, lastEventId, onOpen, onEvent }) {
  const headers = { ...authHeaders(), Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const res = await fetch(path, { headers, signal, cache: "no-store" });
  if (res.status === 401) {
    needLogin();
    throw new ApiError(401, "unauthorized", "a token is required");
  }
  if (!res.ok || !res.body) throw new ApiError(res.status, "http_" + res.status, res.statusText);
  if (onOpen) onOpen();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "", name = "", data = [], id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (data.length) {
          const text = data.join("\n");
          let val = text;
          try { val = JSON.parse(text); } catch (e) { /* keep the text */ }
          onEvent(name || "message", val, id);
        } else if (id !== null) {
          onEvent("", null, id); // an id alone: where a reconnect resumes
        }
        name = ""; data = []; id = null;
        continue;
      }
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let v = i < 0 ? "" : line.slice(i + 1);
      if (v.startsWith(" ")) v = v.slice(1);
      if (field === "event") name = v;
      else if (field === "data") data.push(v);
      else if (field === "id") id = v;
    }
  }
}

// ------------------------------------------------------------- auth

function needLogin() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("#daemon-state").hidden = true;
  $("#login").hidden = false;
  $("#view").hidden = true;
  $("#logout").hidden = true;
  stopLive();
  $("#token").focus();
}

async function tryLogin(ev) {
  ev.preventDefault();
  const token = $("#token").value.trim();
  const errEl = $("#login-error");
  errEl.textContent = "";
  const res = await fetch("/v1/info", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" })
    .catch(() => null);
  if (!res || res.status === 401) {
    errEl.textContent = res ? "That token is not accepted." : "crund is unreachable.";
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#daemon-state").hidden = false;
  $("#token").value = "";
  $("#login").hidden = true;
  $("#view").hidden = false;
  $("#logout").hidden = false;
  startLive();
  route();
}

// --------------------------------------- live: every job's state changes

const live = { ctl: null, lastId: null, listeners: new Set(), retry: 1000, timer: null };

function setLive(on) {
  const el = $("#live");
  el.textContent = on ? "live" : "offline";
  el.className = "live " + (on ? "on" : "off");
}

function startLive() {
  if (live.ctl) return;
  const ctl = new AbortController();
  live.ctl = ctl;
  readSSE("/v1/events", {
    signal: ctl.signal,
    lastEventId: live.lastId,
    // connected is live: a reconnect replays only what it missed, often
    // nothing, so waiting for an event would leave it offline
    onOpen() {
      setLive(true);
      live.retry = 1000;
    },
    onEvent(name, data, id) {
      if (id) live.lastId = id;
      if (name === "job" || name === "reset" || name === "shutdown")
        for (const fn of live.listeners) fn(name, data);
    },
  })
    .catch(() => {})
    .finally(() => {
      if (live.ctl !== ctl) return; // stopped on purpose
      live.ctl = null;
      setLive(false);
      // reconnect (with Last-Event-ID): the daemon replays what was missed
      live.timer = setTimeout(startLive, live.retry);
      live.retry = Math.min(live.retry * 2, 10000);
    });
}

function stopLive() {
  clearTimeout(live.timer);
  if (live.ctl) {
    const c = live.ctl;
    live.ctl = null;
    c.abort();
  }
  setLive(false);
}

function onLive(fn) {
  live.listeners.add(fn);
  return () => live.listeners.delete(fn);
}

// ------------------------------------------------------------ router

let cleanup = [];
function addCleanup(fn) { cleanup.push(fn); }

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(qs || "") };
}

async function route() {
  for (const fn of cleanup) fn();
  cleanup = [];
  const { parts, params } = parseHash();
  const view = $("#view");
  view.replaceChildren();
  const section = parts[0] || "overview";
  for (const a of document.querySelectorAll("[data-nav]"))
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  try {
    if (section === "overview") await viewOverview(view);
    else if (section === "jobs" && parts[1]) await viewJob(view, parts[1]);
    else if (section === "jobs") await viewJobs(view, params);
    else if (section === "plugins") await viewPlugins(view, parts[1], params);
    else view.append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Overview")));
  } catch (e) {
    if (e.status !== 401) view.append(h("p", { class: "error", role: "alert" }, e.message));
  }
}

// ---------------------------------------------------------- overview

// A small line chart of `points` (oldest first, one per step), drawn on a
// fixed axis of `slots` steps that ends now, so the newest point is at the
// right edge however few there are.
function chart(title, series, points, fmt, slots = 30, minutes = 5) {
  const W = 600, H = 160, L = 56, B = 18, T = 8;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  let max = 0;
  for (const p of points) for (const s of series) if (p[s.key] !== null && p[s.key] > max) max = p[s.key];
  if (max <= 0) max = 1;
  const first = Math.max(0, slots - points.length);
  const x = (i) => L + ((first + i) * (W - L - 4)) / (slots - 1);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const mk = (tag, attrs) => {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  };
  svg.append(mk("line", { x1: L, y1: H - B, x2: W, y2: H - B, class: "axis" }));
  svg.append(mk("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  const top = mk("text", { x: L - 4, y: T + 8, "text-anchor": "end" });
  top.textContent = fmt(max);
  const zero = mk("text", { x: L - 4, y: H - B, "text-anchor": "end" });
  zero.textContent = "0";
  const ago = mk("text", { x: L, y: H - 4 });
  ago.textContent = points.length ? `${minutes} min ago` : "no data yet";
  const now = mk("text", { x: W - 2, y: H - 4, "text-anchor": "end" });
  now.textContent = "now";
  svg.append(top, zero, ago, now);
  series.forEach((s, n) => {
    const pts = [];
    points.forEach((p, i) => { if (p[s.key] !== null && p[s.key] !== undefined) pts.push(`${x(i).toFixed(1)},${y(p[s.key]).toFixed(1)}`); });
    if (pts.length) svg.append(mk("polyline", { points: pts.join(" "), class: `line${n + 1}` }));
    if (pts.length === 1) {
      // one step so far: a dot, since a line needs two
      const [cx, cy] = pts[0].split(",");
      svg.append(mk("circle", { cx, cy, r: 3, class: `dot${n + 1}` }));
    }
  });
  const last = points.length ? points[points.length - 1] : {};
  return h("div", { class: "card chart" },
    h("div", { class: "k" }, title),
    svg,
    h("div", { class: "legend" }, series.map((s, n) => h("span", { class: `s${n + 1}` }, `${s.label} ${last[s.key] === null || last[s.key] === undefined ? "—" : fmt(last[s.key])}`))));
}

async function viewOverview(view) {
  view.append(h("h1", {}, "Overview"));
  const body = h("div", { id: "overview" });
  view.append(body);
  let pending = false;
  const refresh = async () => {
    if (pending) return;
    pending = true;
    try {
      const [info, stats] = await Promise.all([api("/v1/info"), api("/v1/stats")]);
      renderOverview(body, info, stats);
    } catch (e) {
      if (e.status !== 401) body.replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
    } finally {
      pending = false;
    }
  };
  await refresh();
  const timer = setInterval(refresh, 2000);
  let debounce = null;
  const off = onLive(() => { clearTimeout(debounce); debounce = setTimeout(refresh, 250); });
  addCleanup(() => { clearInterval(timer); clearTimeout(debounce); off(); });
}

function renderOverview(body, info, stats) {
  const card = (k, v, cls) => h("div", { class: "card" }, h("div", { class: "k" }, k), h("div", { class: "v " + (cls || "") }, v));
  const st = info.store || {};
  const daemon = h("div", { class: "cards" },
    card("State", badge(info.state), ""),
    card("Uptime", fmtSeconds(info.uptime_seconds)),
    card("Loop lag", fmtSeconds(stats.loop_lag_seconds)),
    card("Store", `${st.durable ? "durable" : "memory"}${st.error ? " — " + st.error : ""}`, st.error ? "error" : ""),
    card("Submitted", String(info.jobs_submitted)),
    card("Live", $("#live").textContent),
    card("Version", `crund ${info.version}`));
  const counts = h("div", { class: "cards", id: "state-counts" },
    STATES.map((s) => h("div", { class: "card", "data-count": s }, h("div", { class: "k" }, badge(s)), h("div", { class: "v" }, String(info.jobs[s] ?? 0)))));
  const plugins = Object.entries(stats.jobs_by_plugin || {});
  const table = h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Plugin"), STATES.map((s) => h("th", { scope: "col", class: "num" }, s)))),
    h("tbody", {}, plugins.map(([name, c]) => h("tr", {},
      h("th", { scope: "row" }, h("a", { href: `#/jobs?plugin=${encodeURIComponent(name)}` }, name)),
      STATES.map((s) => h("td", { class: "num" }, h("a", { href: `#/jobs?plugin=${encodeURIComponent(name)}&state=${s}` }, String(c[s] ?? 0)))))))));
  const pts = stats.points || [];
  const rate = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + "/s";
  const slots = Math.max(2, Math.round(stats.window_seconds / stats.step_seconds));
  const minutes = Math.round(stats.window_seconds / 60);
  const charts = h("div", { class: "charts" },
    chart(`Jobs per second (last ${minutes} min)`, [
      { key: "submitted_per_second", label: "submitted" },
      { key: "ended_per_second", label: "ended" }], pts, rate, slots, minutes),
    chart(`Run time percentiles (last ${minutes} min)`, [
      { key: "run_p50", label: "p50" }, { key: "run_p90", label: "p90" }, { key: "run_p99", label: "p99" }],
    pts, fmtSeconds, slots, minutes));
  body.replaceChildren(
    h("h2", {}, "Daemon"), daemon,
    h("h2", {}, "Jobs by state"), counts,
    h("h2", {}, "Jobs by plugin"), table,
    h("h2", {}, "Throughput and run time"), charts);
  const ds = $("#daemon-state");
  ds.textContent = info.state;
  ds.className = `badge st-${info.state === "running" ? "succeeded" : "draining"}`;
}

// --------------------------------------------------------------- jobs

let pluginsCache = null;
async function plugins() {
  if (!pluginsCache) pluginsCache = (await api("/v1/plugins")).plugins || [];
  return pluginsCache;
}

function jobRow(j) {
  const d = duration(j);
  return h("tr", { "data-id": j.id },
    h("td", { class: "mono" }, h("a", { href: `#/jobs/${j.id}` }, j.id)),
    h("td", {}, j.plugin),
    h("td", {}, j.job),
    h("td", { class: "state" }, badge(j.state)),
    h("td", { class: "num hide-narrow" }, `${j.attempt}/${j.max_attempts}`),
    h("td", { class: "hide-narrow" }, fmtTime(j.created_at)),
    h("td", { class: "num hide-narrow" }, d === null ? "—" : fmtSeconds(d)),
    h("td", { class: "hide-narrow mono" }, j.idempotency_key || ""));
}

// An id is the store's prefix and the job's number in base 32 (Crockford's
// digits, in ASCII order; no leading zero): of two ids the longer, or else
// the greater, is the newer job -- the order of GET /v1/jobs and its cursor.
function newer(a, b) {
  return a.length !== b.length ? a.length > b.length : a > b;
}

function matches(j, f) {
  if (f.state && j.state !== f.state) return false;
  if (f.plugin && j.plugin !== f.plugin) return false;
  if (f.job && j.job !== f.job) return false;
  if (f.q && !j.id.includes(f.q) && !(j.idempotency_key || "").includes(f.q)) return false;
  return true;
}

async function viewJobs(view, params) {
  const f = { state: params.get("state") || "", plugin: params.get("plugin") || "", job: params.get("job") || "", q: params.get("q") || "" };
  const cursor = params.get("cursor") || "";
  const pl = await plugins();
  const go = (nf, cur) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(nf)) if (v) p.set(k, v);
    if (cur) p.set("cursor", cur);
    const qs = p.toString();
    location.hash = "#/jobs" + (qs ? "?" + qs : "");
  };
  const jobNames = [...new Set(pl.filter((p) => !f.plugin || p.name === f.plugin).flatMap((p) => p.jobs.map((j) => j.name)))].sort();
  const sel = (id, label, value, options) => h("div", {},
    h("label", { for: id }, label),
    h("select", { id, name: id }, h("option", { value: "" }, "all"), options.map((o) => h("option", { value: o, selected: o === value }, o))));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter jobs" },
    sel("f-state", "State", f.state, STATES),
    sel("f-plugin", "Plugin", f.plugin, pl.map((p) => p.name)),
    sel("f-job", "Job", f.job, jobNames),
    h("div", {}, h("label", { for: "f-q" }, "Id or idempotency key contains"),
      h("input", { id: "f-q", name: "q", type: "search", value: f.q, placeholder: "text" })),
    h("button", { type: "submit" }, "Filter"));
  const read = () => ({ state: $("#f-state").value, plugin: $("#f-plugin").value, job: $("#f-job").value, q: $("#f-q").value.trim() });
  form.addEventListener("submit", (e) => { e.preventDefault(); go(read(), ""); });
  form.addEventListener("change", (e) => { if (e.target.tagName === "SELECT") go(read(), ""); });
  view.append(h("h1", {}, "Jobs"), form);

  const qs = new URLSearchParams({ limit: "50" });
  for (const [k, v] of Object.entries(f)) if (v) qs.set(k, v);
  if (cursor) qs.set("cursor", cursor);
  const page = await api("/v1/jobs?" + qs);
  const tbody = h("tbody", { id: "jobs-body" }, page.jobs.map(jobRow));
  view.append(h("div", { class: "table-wrap" }, h("table", { "aria-label": "Jobs, newest first" },
    h("thead", {}, h("tr", {},
      ["Id", "Plugin", "Job", "State"].map((t) => h("th", { scope: "col" }, t)),
      h("th", { scope: "col", class: "num hide-narrow" }, "Attempt"),
      h("th", { scope: "col", class: "hide-narrow" }, "Created"),
      h("th", { scope: "col", class: "num hide-narrow" }, "Run time"),
      h("th", { scope: "col", class: "hide-narrow" }, "Idempotency key"))),
    tbody)));
  const empty = h("p", { class: "muted", id: "jobs-empty", hidden: page.jobs.length > 0 }, "No jobs match.");
  view.append(empty);
  // the next page: the jobs older than `next` (the last row when loaded)
  let next = page.next_cursor;
  const older = h("button", { type: "button", class: "secondary", id: "next-page", hidden: !next, onclick: () => go(f, next) }, "Older →");
  view.append(h("div", { class: "pager" },
    cursor ? h("button", { type: "button", class: "secondary", onclick: () => go(f, "") }, "Newest") : null,
    older,
    h("span", { class: "muted" }, cursor ? "" : "updates live")));

  // live: rows change state in place; a job that comes to match goes where
  // GET /v1/jobs lists it -- on this page if it is newer than the next
  // page's cursor (and older than this page's), above the first older row
  const off = onLive((name, ev) => {
    if (name === "reset") { route(); return; }
    if (name !== "job") return;
    const row = tbody.querySelector(`tr[data-id="${CSS.escape(ev.id)}"]`);
    if (row && f.state && ev.state !== f.state) {
      // it left the state the table shows
      row.remove();
      empty.hidden = tbody.children.length > 0;
    } else if (row) {
      // events carry no idempotency key: keep the one shown
      const key = ev.idempotency_key ?? row.lastElementChild.textContent;
      row.replaceWith(jobRow({ ...ev, idempotency_key: key }));
    } else if (matches(ev, f) && (!cursor || newer(cursor, ev.id)) && (!next || newer(ev.id, next))) {
      const below = [...tbody.children].find((r) => newer(ev.id, r.dataset.id));
      tbody.insertBefore(jobRow(ev), below || null);
      empty.hidden = true;
      while (tbody.children.length > 50) {
        // a row that drops off is the next page's first: it starts below
        // the last row shown now
        tbody.lastElementChild.remove();
        next = tbody.lastElementChild.dataset.id;
      }
      older.hidden = !next;
    }
  });
  addCleanup(off);
}

// ------------------------------------------------------------ one job

async function viewJob(view, id) {
  let job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
  const head = h("div", {});
  const props = h("dl", { class: "props" });
  const prog = h("div", {});
  const outcome = h("div", {});
  const attempts = h("div", {});
  const logBox = h("pre", { class: "box", id: "log", "aria-live": "polite", tabindex: "0" });
  const msg = h("p", { class: "error", role: "alert", id: "job-msg" });

  const render = () => {
    const ended = ["succeeded", "failed", "cancelled"].includes(job.state);
    head.replaceChildren(
      h("h1", {}, "Job ", h("span", { class: "mono" }, job.id), " ", badge(job.state)),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "danger", id: "cancel", disabled: ended, onclick: cancel }, "Cancel"),
        h("button", { type: "button", id: "retry", disabled: !ended, onclick: retry }, "Run again"),
        h("a", { href: `#/jobs?plugin=${encodeURIComponent(job.plugin)}&job=${encodeURIComponent(job.job)}` }, "Similar jobs")),
      msg);
    const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    props.replaceChildren(
      ...row("Plugin / job", `${job.plugin} / ${job.job}`),
      ...row("State", badge(job.state)),
      ...row("Attempt", `${job.attempt} of ${job.max_attempts}`),
      ...row("Created", fmtTime(job.created_at)),
      ...row("Started", fmtTime(job.started_at)),
      ...row("Finished", fmtTime(job.finished_at)),
      ...row("Run time", fmtSeconds(duration(job))),
      ...(job.run_at ? row("Runs at", fmtTime(job.run_at)) : []),
      ...row("Timeout", job.timeout ? fmtSeconds(job.timeout) : "none"),
      ...row("Context", job.context),
      ...row("On interrupt", job.on_interrupt),
      ...(job.idempotency_key ? row("Idempotency key", h("span", { class: "mono" }, job.idempotency_key)) : []),
      ...(job.retry_of ? row("Runs again", h("a", { href: `#/jobs/${job.retry_of}`, class: "mono" }, job.retry_of)) : []));
    const p = job.progress;
    prog.replaceChildren(
      h("label", { for: "progress" }, "Progress", p && p.message ? ` — ${p.message}` : ""),
      // no progress reported: indeterminate while active, full or empty once ended
      h("progress", { id: "progress", max: "1", value: p ? String(p.fraction) : ended ? (job.state === "succeeded" ? "1" : "0") : null }),
      h("span", { class: "muted" }, p ? ` ${Math.round(p.fraction * 100)}%` : ""));
    outcome.replaceChildren(
      h("div", { class: "two" },
        h("div", {}, h("h2", {}, "Arguments"), h("pre", { class: "box", id: "args" }, pretty(job.args))),
        h("div", {},
          job.error ? [h("h2", {}, "Error"), h("pre", { class: "box error", id: "error" }, `${job.error.code}: ${job.error.message}`)]
            : [h("h2", {}, "Result"), h("pre", { class: "box", id: "result" }, job.state === "succeeded" ? pretty(job.result) : "—")])));
    attempts.replaceChildren(job.attempts && job.attempts.length ? [
      h("h2", {}, "Attempts"),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, ["#", "Started", "Finished", "Error"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, job.attempts.map((a, i) => h("tr", {},
          h("td", {}, String(a.attempt ?? i + 1)), h("td", {}, fmtTime(a.started_at)), h("td", {}, fmtTime(a.finished_at)),
          h("td", {}, a.error ? `${a.error.code}: ${a.error.message}` : "—"))))))] : []);
  };

  async function cancel() {
    msg.textContent = "";
    try {
      const j = await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" });
      if (j && j.id) { job = j; render(); }
    } catch (e) { msg.textContent = e.message; }
  }
  async function retry() {
    msg.textContent = "";
    try {
      const j = await api(`/v1/jobs/${job.id}/retry`, { method: "POST" });
      location.hash = `#/jobs/${j.id}`;
    } catch (e) { msg.textContent = e.message; }
  }

  render();
  view.append(head, h("div", { class: "two" }, h("div", {}, props), h("div", {}, prog)), outcome, attempts,
    h("h2", {}, "Log"), logBox);

  // the log: what is there, then new lines as they come
  const ctl = new AbortController();
  addCleanup(() => ctl.abort());
  let logText = null;
  const early = [];
  // as /log writes it: a named stream's line (a command's stdout) shows the
  // stream where a plugin's own line shows its level
  const lineOf = (d) => `${d.time} ${d.stream || d.level} ${d.message}\n`;
  const appendLine = (line) => {
    const follow = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
    logBox.append(line);
    if (follow) logBox.scrollTop = logBox.scrollHeight;
  };
  const loadLog = async () => {
    logText = await api(`/v1/jobs/${job.id}/log`, { text: true });
    logBox.textContent = logText;
    for (const l of early) if (!logText.includes(l)) appendLine(l);
    early.length = 0;
  };
  const ended = () => ["succeeded", "failed", "cancelled"].includes(job.state);
  if (ended()) {
    await loadLog();
    return;
  }
  // The stream closes when the job ends -- or when crund stops (an `end` or
  // a `shutdown` event with the job not ended: a durable store keeps it
  // queued for the next start) or the connection breaks: then the page
  // connects again, with backoff, and follows the job on.
  let retryMs = 1000, timer = null;
  addCleanup(() => clearTimeout(timer));
  const follow = () => {
    logText = null; // each stream reloads the log: lines written meanwhile are in /log
    readSSE(`/v1/jobs/${job.id}/events`, {
      signal: ctl.signal,
      onOpen() { retryMs = 1000; },
      onEvent(name, data) {
        if (name === "state" || name === "end" || (name === "shutdown" && data && data.id === job.id)) {
          job = data;
          render();
          if (logText === null && name === "state") loadLog().catch(() => {});
          if (name === "end" && logText !== null && ended()) loadLog().catch(() => {});
        } else if (name === "progress") {
          job.progress = data;
          render();
        } else if (name === "log") {
          const l = lineOf(data);
          if (logText === null) early.push(l);
          else appendLine(l);
        }
      },
    })
      .then(() => true, (e) => {
        if (e.status === 404) msg.textContent = "crund no longer knows this job.";
        return e.status !== 404 && e.status !== 401;
      })
      .then((again) => {
        if (!again || ctl.signal.aborted || ended()) return;
        timer = setTimeout(follow, retryMs);
        retryMs = Math.min(retryMs * 2, 10000);
      });
  };
  follow();
}

// ------------------------------------------------------------ plugins

function argInput(a, idp) {
  const id = `${idp}-${a.name}`;
  const label = h("label", { for: id }, a.name, a.required ? " *" : "", h("span", { class: "muted" }, ` (${a.type})`));
  const hint = a.description ? h("div", { class: "muted", id: id + "-d" }, a.description) : null;
  const dflt = a.default !== undefined ? a.default : null;
  let input;
  if (a.type === "boolean") {
    input = h("input", { id, name: a.name, type: "checkbox", checked: dflt === true, "aria-describedby": hint ? id + "-d" : null });
    return h("div", { class: "check" }, input, label, hint);
  }
  if (a.type === "integer" || a.type === "number") {
    input = h("input", {
      id, name: a.name, type: "number", required: !!a.required, step: a.type === "integer" ? "1" : "any",
      min: a.min ?? null, max: a.max ?? null, value: dflt !== null ? String(dflt) : null, "aria-describedby": hint ? id + "-d" : null,
    });
  } else if (a.type === "string") {
    input = h("input", { id, name: a.name, type: "text", required: !!a.required, value: dflt !== null ? dflt : null, "aria-describedby": hint ? id + "-d" : null });
  } else {
    input = h("textarea", { id, name: a.name, required: !!a.required, placeholder: "JSON", "aria-describedby": hint ? id + "-d" : null },
      dflt !== null ? JSON.stringify(dflt) : "");
  }
  return h("div", { class: a.type === "string" || a.type === "integer" || a.type === "number" ? "" : "wide" }, label, input, hint);
}

function jobForm(plugin, spec) {
  const idp = `f-${plugin.name}-${spec.name}`;
  const err = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "submit-form", "data-plugin": plugin.name, "data-job": spec.name },
    h("div", { class: "form-grid" },
      spec.args.map((a) => argInput(a, idp)),
      h("div", {}, h("label", { for: idp + "--timeout" }, "Timeout (s)"), h("input", { id: idp + "--timeout", name: "timeout", type: "number", min: "0", step: "any" })),
      h("div", {}, h("label", { for: idp + "--attempts" }, "Max attempts"), h("input", { id: idp + "--attempts", name: "max_attempts", type: "number", min: "1", step: "1", value: String(spec.max_attempts || 1) })),
      h("div", {}, h("label", { for: idp + "--idem" }, "Idempotency key"), h("input", { id: idp + "--idem", name: "idempotency_key", type: "text" })),
      h("div", {}, h("label", { for: idp + "--ctx" }, "Context"),
        h("select", { id: idp + "--ctx", name: "context" }, h("option", { value: "shared" }, "shared"), h("option", { value: "isolated" }, "isolated")))),
    h("button", { type: "submit" }, `Submit ${spec.name}`), err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    const body = { plugin: plugin.name, job: spec.name, args: {} };
    try {
      for (const a of spec.args) {
        const el = form.elements[a.name];
        if (a.type === "boolean") { body.args[a.name] = el.checked; continue; }
        const v = el.value.trim();
        if (v === "") continue; // the default applies
        if (a.type === "integer") body.args[a.name] = parseInt(v, 10);
        else if (a.type === "number") body.args[a.name] = Number(v);
        else if (a.type === "string") body.args[a.name] = el.value;
        else {
          try { body.args[a.name] = JSON.parse(v); } catch (x) { throw new Error(`'${a.name}' is not valid JSON: ${x.message}`); }
        }
      }
      const t = form.elements.timeout.value.trim();
      if (t) body.timeout = Number(t);
      const m = form.elements.max_attempts.value.trim();
      if (m) body.max_attempts = parseInt(m, 10);
      const k = form.elements.idempotency_key.value.trim();
      if (k) body.idempotency_key = k;
      body.context = form.elements.context.value;
      const job = await api("/v1/jobs", { method: "POST", body });
      location.hash = `#/jobs/${job.id}`;
    } catch (x) {
      err.textContent = x.message;
    }
  });
  return form;
}

function argTable(spec) {
  if (!spec.args.length) return h("p", { class: "muted" }, "No arguments.");
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Argument", "Type", "Required", "Default", "Range", "Description"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, spec.args.map((a) => h("tr", {},
      h("td", { class: "mono" }, a.name), h("td", {}, a.type), h("td", {}, a.required ? "yes" : "no"),
      h("td", { class: "mono" }, a.default !== undefined ? JSON.stringify(a.default) : "—"),
      h("td", {}, a.min !== undefined || a.max !== undefined ? `${a.min ?? "…"} – ${a.max ?? "…"}` : "—"),
      h("td", {}, a.description || ""))))));
}

async function viewPlugins(view, only, params) {
  const pl = await plugins();
  const openJob = params.get("job");
  view.append(h("h1", {}, "Plugins"));
  if (!pl.length) view.append(h("p", { class: "muted" }, "No plugin is loaded."));
  for (const p of pl) {
    if (only && p.name !== only) continue;
    view.append(h("section", { class: "plugin", "aria-labelledby": `p-${p.name}` },
      h("h2", { id: `p-${p.name}` }, p.name, " ", h("span", { class: "muted" }, p.version || "")),
      h("p", {}, p.description || ""),
      p.jobs.map((s) => h("details", { class: "jobspec", id: `job-${p.name}-${s.name}`, open: openJob === s.name },
        h("summary", {}, s.name, h("span", { class: "muted" }, ` — ${s.description || ""}`)),
        argTable(s),
        jobForm(p, s)))));
  }
}

// -------------------------------------------------------------- start

async function start() {
  $("#login-form").addEventListener("submit", tryLogin);
  $("#logout").addEventListener("click", () => { needLogin(); });
  window.addEventListener("hashchange", () => { route(); $("#view").focus({ preventScroll: true }); });
  // auth on? /v1/info answers 401 without a (good) token
  const res = await fetch("/v1/info", { headers: authHeaders(), cache: "no-store" }).catch(() => null);
  if (res && res.status === 401) {
    needLogin();
    return;
  }
  if (res && res.ok) {
    const info = await res.json();
    $("#logout").hidden = !info.auth;
  }
  startLive();
  route();
}

start();
