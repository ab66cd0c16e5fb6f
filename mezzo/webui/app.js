// The mezzo web UI. Plain JavaScript, no build step, no dependencies besides chart.js.
//
// Live from the master's operator event stream: one `POST /api/v1 {"type":"SUBSCRIBE"}` read
// incrementally (RecordIO); SUBSCRIBED gives the whole state, then TASK_*, FRAMEWORK_*, AGENT_*
// events keep the model current and the page re-renders (coalesced to one render per frame).
// The share charts sample that model every second. What the stream does not carry is read
// while its view is open: offers (GET_FRAMEWORKS), roles and weights (GET_ROLES, GET_WEIGHTS),
// metrics (/metrics/snapshot, also for offered resources on the overview), and sandboxes
// (through the master's /agent/<id>/... proxy). See docs/operator.md.
"use strict";

const TERMINAL = new Set(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
  "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"]);
const SHARE_RESOURCES = ["cpus", "mem", "disk", "gpus"];
const TAIL_BYTES = 64 * 1024;

const model = {
  agents: new Map(),      // agent id -> AgentEntry (+ removed)
  frameworks: new Map(),  // framework id -> FrameworkEntry (+ removed)
  tasks: new Map(),       // "fid/tid" -> Task
  metrics: {},
  master: null,
  live: false,
  events: 0,
};

const charts = {
  roles: new LiveChart(makeCanvas("chart-roles"), { windowSeconds: 180 }),
  frameworks: new LiveChart(makeCanvas("chart-frameworks"), { windowSeconds: 180 }),
};

function makeCanvas(id) {
  const canvas = document.createElement("canvas");
  canvas.id = id;
  canvas.className = "chart";
  return canvas;
}

// ------------------------------------------------------------------------ helpers

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function scalars(resources) {
  const out = {};
  for (const r of resources || []) {
    if (r.type === "SCALAR" || r.scalar) out[r.name] = (out[r.name] || 0) + (r.scalar?.value || 0);
  }
  return out;
}

function add(into, more) {
  for (const [k, v] of Object.entries(more)) into[k] = (into[k] || 0) + v;
  return into;
}

function fmt(name, value) {
  if (value === undefined) return "–";
  if (name === "mem" || name === "disk") {
    return value >= 1024 ? `${(value / 1024).toFixed(1)} GB` : `${Math.round(value)} MB`;
  }
  return String(Number(value.toFixed(2)));
}

function pct(value) { return `${(100 * value).toFixed(1)}%`; }

function when(timeInfo) {
  if (!timeInfo) return "";
  const ms = (timeInfo.nanoseconds ?? 0) / 1e6;
  return new Date(ms).toLocaleString();
}

function taskRole(task) {
  for (const r of task.resources || []) {
    if (r.allocation_info?.role) return r.allocation_info.role;
  }
  const fw = model.frameworks.get(task.framework_id?.value);
  const info = fw?.framework_info;
  return info?.roles?.[0] || info?.role || "*";
}

function isReserved(resource) {
  return (resource.reservations && resource.reservations.length) || (resource.role && resource.role !== "*");
}

// ------------------------------------------------------------------------ the model

function totals() {
  const total = {}, reserved = {};
  for (const agent of model.agents.values()) {
    if (agent.removed) continue;
    add(total, scalars(agent.total_resources));
    add(reserved, scalars((agent.total_resources || []).filter(isReserved)));
  }
  const used = {}, byFramework = new Map(), byRole = new Map();
  for (const task of model.tasks.values()) {
    if (TERMINAL.has(task.state) || task.state === "TASK_UNREACHABLE") continue;
    const res = scalars(task.resources);
    add(used, res);
    const fid = task.framework_id?.value;
    byFramework.set(fid, add(byFramework.get(fid) || {}, res));
    const role = taskRole(task);
    byRole.set(role, add(byRole.get(role) || {}, res));
  }
  return { total, reserved, used, byFramework, byRole };
}

function dominantShare(used, total) {
  let share = 0;
  for (const name of SHARE_RESOURCES) {
    if (total[name] > 0) share = Math.max(share, (used[name] || 0) / total[name]);
  }
  return share;
}

function applyState(state) {
  model.agents.clear(); model.frameworks.clear(); model.tasks.clear();
  for (const a of state.get_agents?.agents || []) model.agents.set(a.agent_info.id.value, a);
  for (const f of state.get_frameworks?.frameworks || []) model.frameworks.set(f.framework_info.id.value, f);
  for (const f of state.get_frameworks?.completed_frameworks || []) {
    model.frameworks.set(f.framework_info.id.value, { ...f, removed: true });
  }
  const t = state.get_tasks || {};
  for (const task of [...(t.completed_tasks || []), ...(t.unreachable_tasks || []), ...(t.tasks || [])]) {
    model.tasks.set(`${task.framework_id.value}/${task.task_id.value}`, task);
  }
}

function applyEvent(event) {
  model.events += 1;
  switch (event.type) {
    case "SUBSCRIBED":
      applyState(event.subscribed.get_state);
      break;
    case "TASK_ADDED": {
      const task = event.task_added.task;
      model.tasks.set(`${task.framework_id.value}/${task.task_id.value}`, task);
      break;
    }
    case "TASK_UPDATED": {
      const u = event.task_updated;
      const key = `${u.framework_id.value}/${u.status.task_id.value}`;
      const task = model.tasks.get(key) || { task_id: u.status.task_id, framework_id: u.framework_id,
        agent_id: u.status.agent_id, name: u.status.task_id.value, resources: [], statuses: [] };
      task.state = u.state;
      task.statuses = [...(task.statuses || []), u.status];
      model.tasks.set(key, task);
      break;
    }
    case "FRAMEWORK_ADDED":
    case "FRAMEWORK_UPDATED": {
      const f = (event.framework_added || event.framework_updated).framework;
      model.frameworks.set(f.framework_info.id.value, f);
      break;
    }
    case "FRAMEWORK_REMOVED": {
      const info = event.framework_removed.framework_info;
      const f = model.frameworks.get(info.id.value) || { framework_info: info };
      model.frameworks.set(info.id.value, { ...f, active: false, connected: false, removed: true });
      break;
    }
    case "AGENT_ADDED": {
      const a = event.agent_added.agent;
      model.agents.set(a.agent_info.id.value, a);
      break;
    }
    case "AGENT_REMOVED":
      model.agents.delete(event.agent_removed.agent_id.value);
      break;
    default:  // HEARTBEAT
      return;
  }
  scheduleRender();
}

// ------------------------------------------------------------------------ the event stream

function setLive(on, text) {
  model.live = on;
  const badge = document.getElementById("live");
  badge.className = `live ${on ? "on" : "off"}`;
  badge.textContent = text;
}

async function subscribe() {
  const response = await fetch("/api/v1", {
    method: "POST", redirect: "manual",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ type: "SUBSCRIBE" }),
  });
  if (response.type === "opaqueredirect" || response.status === 307) {
    // This master is not (or no longer) the leader: let the browser follow the redirect.
    window.location.assign("/master/redirect");
    return;
  }
  if (!response.ok) throw new Error(`SUBSCRIBE answered ${response.status}`);
  setLive(true, "live");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const joined = new Uint8Array(buffer.length + value.length);
    joined.set(buffer); joined.set(value, buffer.length);
    buffer = joined;
    // RecordIO: "<length>\n<length bytes of JSON>", repeated.
    for (;;) {
      const newline = buffer.indexOf(10);
      if (newline < 0) break;
      const length = Number(decoder.decode(buffer.subarray(0, newline)));
      if (buffer.length < newline + 1 + length) break;
      const record = decoder.decode(buffer.subarray(newline + 1, newline + 1 + length));
      buffer = buffer.slice(newline + 1 + length);
      applyEvent(JSON.parse(record));
    }
  }
  throw new Error("the master closed the event stream");
}

async function follow() {
  let delay = 500;
  for (;;) {
    try {
      await subscribe();
      delay = 500;
    } catch (error) {
      setLive(false, "reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}

// ------------------------------------------------------------------------ calls and reads

async function operator(type, extra = {}) {
  const response = await fetch("/api/v1", {
    method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ type, ...extra }),
  });
  if (!response.ok) throw new Error(`${type}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status} ${(await response.text()).trim()}`);
  return response.json();
}

async function refreshMetrics() {
  try {
    model.metrics = await getJson("/metrics/snapshot");
    scheduleRender();
  } catch (error) { /* the stream's badge tells the story */ }
}

async function refreshMaster() {
  try {
    model.master = (await operator("GET_MASTER")).get_master;
    const info = model.master.master_info;
    document.getElementById("leader").textContent =
      `leader ${info.hostname || info.address?.ip}:${info.port} · v${info.version || ""}`;
  } catch (error) { /* retried on the next tick */ }
}

// ------------------------------------------------------------------------ rendering

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(); });
}

function route() {
  const parts = (window.location.hash || "#/").slice(2).split("/").map(decodeURIComponent);
  return { view: parts[0] || "overview", args: parts.slice(1) };
}

const views = {};
let polled = null;   // the interval that reads what the open view needs

function render() {
  const { view, args } = route();
  for (const link of document.querySelectorAll("header nav a")) {
    link.classList.toggle("active", link.dataset.view === (view === "task" ? "tasks" : view));
  }
  const main = document.getElementById("view");
  const keep = document.activeElement && main.contains(document.activeElement) ? document.activeElement.id : null;
  (views[view] || views.overview)(main, args);
  if (keep && document.getElementById(keep)) {
    const el = document.getElementById(keep);
    el.focus();
    if (el.setSelectionRange && typeof el.value === "string") el.setSelectionRange(el.value.length, el.value.length);
  }
}

function bars(t, offered) {
  const rows = ["cpus", "mem", "disk", "gpus"].filter((r) => t.total[r] > 0).map((r) => {
    const total = t.total[r], used = t.used[r] || 0, off = offered[r] || 0, res = t.reserved[r] || 0;
    const w = (v) => `${Math.max(0, Math.min(100, (100 * v) / total))}%`;
    return `<div>${r}</div>
      <div class="bar"><span class="used" style="width:${w(used)}"></span><span class="offered" style="width:${w(off)}"></span><span class="reserved" style="width:${w(Math.max(0, res - used - off))}"></span></div>
      <div class="mono" data-resource="${r}">${fmt(r, used)} used · ${fmt(r, off)} offered / ${fmt(r, total)}</div>`;
  });
  return `<div class="bars">${rows.join("") || '<div class="muted">no agents</div>'}</div>
    <div class="legend"><span><i style="background:#2f6fde"></i>used</span><span><i style="background:#8fb3f0"></i>offered</span><span><i style="background:#f3c77a"></i>reserved (unused)</span></div>`;
}

function offeredFromMetrics() {
  const out = {};
  for (const r of ["cpus", "mem", "disk", "gpus"]) {
    const key = `master/${r}_offered`;
    if (key in model.metrics) out[r] = model.metrics[key];
  }
  return out;
}

function legendHtml(chart, label) {
  const items = chart.legend().sort((a, b) => b.last - a.last).slice(0, 12);
  if (!items.length) return `<div class="legend muted">no ${label} yet</div>`;
  return `<div class="legend">${items.map((i) =>
    `<span data-series="${esc(i.name)}"><i style="background:${i.color}"></i>${esc(i.name)} ${pct(i.last)}</span>`).join("")}</div>`;
}

function frameworkLabel(fid) {
  const f = model.frameworks.get(fid);
  return f ? `${f.framework_info.name} (${fid.slice(-6)})` : fid;
}

views.overview = (main) => {
  const t = totals();
  const active = [...model.tasks.values()].filter((x) => !TERMINAL.has(x.state));
  const running = active.filter((x) => x.state === "TASK_RUNNING").length;
  const agents = [...model.agents.values()].filter((a) => !a.removed);
  const frameworks = [...model.frameworks.values()].filter((f) => !f.removed);
  main.innerHTML = `
    <div class="grid">
      <div class="panel"><h3>Agents</h3><div class="stat" id="stat-agents">${agents.length}</div>
        <div class="muted">${agents.filter((a) => a.active).length} active</div></div>
      <div class="panel"><h3>Frameworks</h3><div class="stat" id="stat-frameworks">${frameworks.length}</div>
        <div class="muted">${frameworks.filter((f) => f.connected).length} connected</div></div>
      <div class="panel"><h3>Tasks</h3><div class="stat" id="stat-tasks">${running}</div>
        <div class="muted">running · ${active.length} active · ${model.tasks.size - active.length} completed</div></div>
    </div>
    <div class="panel"><h3>Cluster resources</h3>${bars(t, offeredFromMetrics())}</div>
    <div class="grid">
      <div class="panel"><h3>Dominant share per role</h3><div id="slot-roles"></div>${legendHtml(charts.roles, "roles")}</div>
      <div class="panel"><h3>Dominant share per framework</h3><div id="slot-frameworks"></div>${legendHtml(charts.frameworks, "frameworks")}</div>
    </div>`;
  document.getElementById("slot-roles").appendChild(charts.roles.canvas);
  document.getElementById("slot-frameworks").appendChild(charts.frameworks.canvas);
  charts.roles.draw(Date.now() / 1000);
  charts.frameworks.draw(Date.now() / 1000);
  poll(refreshMetrics, 2000, "overview");
};

views.frameworks = (main) => {
  const t = totals();
  const rows = [...model.frameworks.values()].sort((a, b) => Number(!!a.removed) - Number(!!b.removed)).map((f) => {
    const info = f.framework_info, fid = info.id.value;
    const used = t.byFramework.get(fid) || {};
    const tasks = [...model.tasks.values()].filter((x) => x.framework_id.value === fid && !TERMINAL.has(x.state)).length;
    const status = f.removed ? "removed" : f.connected ? "connected" : "disconnected";
    return `<tr data-framework="${esc(fid)}"><td class="mono">${esc(fid)}</td><td>${esc(info.name)}</td>
      <td>${esc((info.roles || [info.role || "*"]).join(", "))}</td><td>${esc(info.user)}</td><td>${status}</td>
      <td class="num">${tasks}</td><td class="num">${fmt("cpus", used.cpus || 0)}</td><td class="num">${fmt("mem", used.mem || 0)}</td>
      <td class="num">${pct(dominantShare(used, t.total))}</td><td>${when(f.registered_time)}</td></tr>`;
  });
  main.innerHTML = `<h2>Frameworks</h2><div class="panel"><table>
    <thead><tr><th>ID</th><th>Name</th><th>Roles</th><th>User</th><th>Status</th><th class="num">Active tasks</th>
    <th class="num">CPUs</th><th class="num">Mem</th><th class="num">Dominant share</th><th>Registered</th></tr></thead>
    <tbody>${rows.join("") || '<tr><td colspan="10" class="muted">no frameworks</td></tr>'}</tbody></table></div>`;
};

views.agents = (main) => {
  const usedByAgent = new Map();
  for (const task of model.tasks.values()) {
    if (TERMINAL.has(task.state)) continue;
    const aid = task.agent_id?.value;
    usedByAgent.set(aid, add(usedByAgent.get(aid) || {}, scalars(task.resources)));
  }
  const rows = [...model.agents.values()].map((a) => {
    const id = a.agent_info.id.value, total = scalars(a.total_resources), used = usedByAgent.get(id) || {};
    return `<tr data-agent="${esc(id)}"><td class="mono">${esc(id)}</td><td>${esc(a.agent_info.hostname)}</td>
      <td class="mono">${esc(a.pid)}</td><td>${a.active ? "active" : "inactive"}</td>
      <td class="num">${fmt("cpus", used.cpus || 0)} / ${fmt("cpus", total.cpus || 0)}</td>
      <td class="num">${fmt("mem", used.mem || 0)} / ${fmt("mem", total.mem || 0)}</td>
      <td class="num">${fmt("disk", used.disk || 0)} / ${fmt("disk", total.disk || 0)}</td>
      <td>${when(a.registered_time)}</td></tr>`;
  });
  main.innerHTML = `<h2>Agents</h2><div class="panel"><table>
    <thead><tr><th>ID</th><th>Host</th><th>PID</th><th>Status</th><th class="num">CPUs</th><th class="num">Mem</th>
    <th class="num">Disk</th><th>Registered</th></tr></thead>
    <tbody>${rows.join("") || '<tr><td colspan="8" class="muted">no agents</td></tr>'}</tbody></table></div>`;
};

const taskFilter = { text: "", state: "active" };

views.tasks = (main) => {
  if (!document.getElementById("task-search")) {
    main.innerHTML = `<h2>Tasks</h2>
      <div class="toolbar">
        <input type="search" id="task-search" placeholder="search id, name, framework, agent">
        <select id="task-state"><option value="active">active</option><option value="completed">completed</option>
          <option value="all">all</option></select>
        <span class="muted" id="task-count"></span>
      </div>
      <div class="panel"><table><thead><tr><th>ID</th><th>Name</th><th>State</th><th>Health</th><th>Framework</th><th>Agent</th>
        <th class="num">CPUs</th><th class="num">Mem</th><th>Updated</th></tr></thead><tbody id="task-rows"></tbody></table></div>`;
    const search = document.getElementById("task-search"), state = document.getElementById("task-state");
    search.value = taskFilter.text; state.value = taskFilter.state;
    search.addEventListener("input", () => { taskFilter.text = search.value; render(); });
    state.addEventListener("change", () => { taskFilter.state = state.value; render(); });
  }
  const needle = taskFilter.text.trim().toLowerCase();
  const all = [...model.tasks.values()].filter((x) => {
    const done = TERMINAL.has(x.state);
    if (taskFilter.state === "active" && done) return false;
    if (taskFilter.state === "completed" && !done) return false;
    if (!needle) return true;
    const fw = model.frameworks.get(x.framework_id.value);
    return [x.task_id.value, x.name, x.framework_id.value, fw?.framework_info?.name, x.agent_id?.value, x.state]
      .some((v) => String(v || "").toLowerCase().includes(needle));
  });
  const latest = (x) => x.statuses?.length ? x.statuses[x.statuses.length - 1].timestamp || 0 : 0;
  all.sort((a, b) => latest(b) - latest(a));
  const shown = all.slice(0, 500);
  document.getElementById("task-count").textContent =
    all.length > shown.length ? `showing ${shown.length} of ${all.length}` : `${all.length} tasks`;
  document.getElementById("task-rows").innerHTML = shown.map((x) => {
    const res = scalars(x.resources), fid = x.framework_id.value, tid = x.task_id.value;
    const ts = latest(x);
    return `<tr data-task="${esc(tid)}"><td class="mono"><a href="#/task/${encodeURIComponent(fid)}/${encodeURIComponent(tid)}">${esc(tid)}</a></td>
      <td>${esc(x.name)}</td><td><span class="state ${esc(x.state)}">${esc(x.state)}</span></td>
      <td>${esc(taskHealth(x))}</td><td>${esc(frameworkLabel(fid))}</td><td class="mono">${esc(x.agent_id?.value)}</td>
      <td class="num">${fmt("cpus", res.cpus || 0)}</td><td class="num">${fmt("mem", res.mem || 0)}</td>
      <td>${ts ? new Date(ts * 1000).toLocaleTimeString() : ""}</td></tr>`;
  }).join("") || '<tr><td colspan="9" class="muted">no tasks match</td></tr>';
};

// A task's health as Mesos's web UI shows it: its last update's `healthy` (health checks).
function taskHealth(task) {
  const last = task.statuses?.length ? task.statuses[task.statuses.length - 1] : null;
  if (last == null || last.healthy == null) return "-";
  return last.healthy ? "healthy" : "unhealthy";
}

// ---- a task and its sandbox

const sandbox = { key: null, agent: null, root: null, dir: null, file: null, offset: 0, text: "", error: "" };

async function findSandbox(task) {
  const agentId = task.agent_id.value;
  const state = await getJson(`/agent/${encodeURIComponent(agentId)}/state`);
  for (const fw of [...(state.frameworks || []), ...(state.completed_frameworks || [])]) {
    if (fw.id !== task.framework_id.value) continue;
    for (const ex of [...(fw.executors || []), ...(fw.completed_executors || [])]) {
      const ids = [...(ex.tasks || []), ...(ex.queued_tasks || []), ...(ex.completed_tasks || [])].map((x) => x.id);
      if (ids.includes(task.task_id.value) || ex.id === task.task_id.value) {
        // A task of a group in the default executor: its nested container's sandbox.
        if (ex.type === "DEFAULT" && ex.id !== task.task_id.value) return `${ex.directory}/tasks/${task.task_id.value}`;
        return ex.directory;
      }
    }
  }
  throw new Error("the agent does not know this task's sandbox (yet)");
}

async function refreshSandbox() {
  const s = sandbox;
  try {
    if (!s.root) {
      const task = model.tasks.get(s.key);
      if (!task) return;
      s.root = await findSandbox(task);
      s.dir = s.root;
      s.file = `${s.root}/stdout`;
    }
    const base = `/agent/${encodeURIComponent(s.agent)}/files`;
    s.listing = await getJson(`${base}/browse?path=${encodeURIComponent(s.dir)}`);
    if (s.file) {
      const size = (await getJson(`${base}/read?path=${encodeURIComponent(s.file)}&offset=-1`)).offset;
      if (size < s.offset) { s.offset = 0; s.text = ""; }
      if (!s.text && size > TAIL_BYTES) s.offset = size - TAIL_BYTES;
      while (s.offset < size) {
        const chunk = await getJson(`${base}/read?path=${encodeURIComponent(s.file)}&offset=${s.offset}&length=${size - s.offset}`);
        if (!chunk.data) break;
        s.text += chunk.data;
        s.offset += new TextEncoder().encode(chunk.data).length;
      }
      if (s.text.length > 4 * TAIL_BYTES) s.text = s.text.slice(-TAIL_BYTES);
    }
    s.error = "";
  } catch (error) {
    s.error = error.message;
  }
  scheduleRender();
}

views.task = (main, [fid, tid]) => {
  const key = `${fid}/${tid}`;
  const task = model.tasks.get(key);
  if (!task) {
    main.innerHTML = `<h2>Task ${esc(tid)}</h2><div class="panel muted">unknown task (yet)</div>`;
    return;
  }
  if (sandbox.key !== key) {
    Object.assign(sandbox, { key, agent: task.agent_id.value, root: null, dir: null, file: null,
      offset: 0, text: "", error: "", listing: null });
    stopPolling();
    poll(refreshSandbox, 1000, "sandbox");
  }
  const statuses = (task.statuses || []).map((s) => `<tr><td><span class="state ${esc(s.state)}">${esc(s.state)}</span></td>
    <td>${s.timestamp ? new Date(s.timestamp * 1000).toLocaleTimeString() : ""}</td><td>${esc(s.source || "")}</td>
    <td>${esc(s.reason || "")}</td><td>${esc(s.message || "")}</td></tr>`).join("");
  const files = (sandbox.listing || []).map((f) => {
    const name = f.path.split("/").pop(), dir = f.mode.startsWith("d");
    return `<tr><td><a data-path="${esc(f.path)}" data-dir="${dir}">${esc(name)}${dir ? "/" : ""}</a></td>
      <td class="mono">${esc(f.mode)}</td><td class="num">${f.size}</td><td>${new Date(f.mtime * 1000).toLocaleTimeString()}</td>
      <td>${dir ? "" : `<a href="/agent/${encodeURIComponent(sandbox.agent)}/files/download?path=${encodeURIComponent(f.path)}">download</a>`}</td></tr>`;
  }).join("");
  const rel = (p) => (p && sandbox.root ? p.slice(sandbox.root.length) || "/" : "");
  const res = scalars(task.resources);
  main.innerHTML = `<div class="crumbs"><a href="#/tasks">Tasks</a> / ${esc(tid)}</div>
    <h2>Task ${esc(task.name || tid)} <span class="state ${esc(task.state)}" id="task-state-badge">${esc(task.state)}</span></h2>
    <div class="grid">
      <div class="panel"><h3>Task</h3><table>
        <tr><th>ID</th><td class="mono">${esc(tid)}</td></tr>
        <tr><th>Framework</th><td>${esc(frameworkLabel(fid))}</td></tr>
        <tr><th>Agent</th><td class="mono">${esc(task.agent_id?.value)}</td></tr>
        <tr><th>Resources</th><td>${Object.entries(res).map(([k, v]) => `${k} ${fmt(k, v)}`).join(", ")}</td></tr>
        <tr><th>Role</th><td>${esc(taskRole(task))}</td></tr></table></div>
      <div class="panel"><h3>Status updates</h3><table><thead><tr><th>State</th><th>Time</th><th>Source</th><th>Reason</th>
        <th>Message</th></tr></thead><tbody>${statuses}</tbody></table></div>
    </div>
    <div class="panel"><h3>Sandbox <span class="mono muted">${esc(sandbox.root || "")}</span></h3>
      ${sandbox.error ? `<div class="error">${esc(sandbox.error)}</div>` : ""}
      <div class="crumbs mono">${esc(rel(sandbox.dir))} ${sandbox.dir && sandbox.dir !== sandbox.root ? '<a data-path="" id="sandbox-up">(up)</a>' : ""}</div>
      <table class="files"><thead><tr><th>Name</th><th>Mode</th><th class="num">Size</th><th>Modified</th><th></th></tr></thead>
        <tbody>${files}</tbody></table></div>
    <div class="panel"><h3>${esc(rel(sandbox.file) || "file")} (tail, live)</h3><pre class="tail" id="sandbox-tail">${esc(sandbox.text)}</pre></div>`;
  const tail = document.getElementById("sandbox-tail");
  tail.scrollTop = tail.scrollHeight;
  for (const link of main.querySelectorAll("a[data-path]")) {
    link.addEventListener("click", () => {
      if (link.id === "sandbox-up") {
        sandbox.dir = sandbox.dir.split("/").slice(0, -1).join("/") || sandbox.root;
      } else if (link.dataset.dir === "true") {
        sandbox.dir = link.dataset.path;
      } else {
        Object.assign(sandbox, { file: link.dataset.path, offset: 0, text: "" });
      }
      refreshSandbox();
    });
  }
};

// ---- offers, roles, metrics (read while open)

const pulled = { offers: null, roles: null, weights: null, error: "" };

async function pullOffers() {
  try { pulled.offers = (await operator("GET_FRAMEWORKS")).get_frameworks; pulled.error = ""; }
  catch (error) { pulled.error = error.message; }
  scheduleRender();
}

views.offers = (main) => {
  poll(pullOffers, 2000, "offers");
  const offers = (pulled.offers?.frameworks || []).flatMap((f) => f.offers || []);
  const rows = offers.map((o) => {
    const res = scalars(o.resources);
    return `<tr><td class="mono">${esc(o.id.value)}</td><td>${esc(frameworkLabel(o.framework_id.value))}</td>
      <td>${esc(o.hostname)}</td><td>${esc(o.allocation_info?.role || o.resources?.[0]?.allocation_info?.role || "*")}</td>
      <td>${Object.entries(res).map(([k, v]) => `${k} ${fmt(k, v)}`).join(", ")}</td></tr>`;
  });
  main.innerHTML = `<h2>Outstanding offers</h2>${pulled.error ? `<div class="error">${esc(pulled.error)}</div>` : ""}
    <div class="panel"><table><thead><tr><th>Offer</th><th>Framework</th><th>Agent</th><th>Role</th><th>Resources</th></tr></thead>
    <tbody>${rows.join("") || `<tr><td colspan="5" class="muted">${pulled.offers ? "no outstanding offers" : "loading"}</td></tr>`}</tbody></table></div>`;
};

async function pullRoles() {
  try {
    pulled.roles = (await operator("GET_ROLES")).get_roles.roles || [];
    pulled.weights = (await operator("GET_WEIGHTS")).get_weights.weight_infos || [];
    pulled.error = "";
  } catch (error) { pulled.error = error.message; }
  scheduleRender();
}

views.roles = (main) => {
  poll(pullRoles, 2000, "roles");
  const t = totals();
  const rows = (pulled.roles || []).map((r) => {
    const used = scalars(r.resources);
    return `<tr data-role="${esc(r.name)}"><td>${esc(r.name)}</td><td class="num">${r.weight ?? 1}</td>
      <td class="num">${(r.frameworks || []).length}</td><td class="num">${fmt("cpus", used.cpus || 0)}</td>
      <td class="num">${fmt("mem", used.mem || 0)}</td><td class="num">${pct(dominantShare(used, t.total))}</td></tr>`;
  });
  const weights = (pulled.weights || []).map((w) => `<tr><td>${esc(w.role)}</td><td class="num">${w.weight}</td></tr>`);
  main.innerHTML = `<h2>Roles and weights</h2>${pulled.error ? `<div class="error">${esc(pulled.error)}</div>` : ""}
    <div class="panel"><h3>Dominant share per role</h3><div id="slot-roles"></div>${legendHtml(charts.roles, "roles")}</div>
    <div class="grid"><div class="panel"><h3>Roles</h3><table><thead><tr><th>Role</th><th class="num">Weight</th>
      <th class="num">Frameworks</th><th class="num">CPUs</th><th class="num">Mem</th><th class="num">Dominant share</th></tr></thead>
      <tbody>${rows.join("") || '<tr><td colspan="6" class="muted">no roles</td></tr>'}</tbody></table></div>
    <div class="panel"><h3>Configured weights</h3><table><thead><tr><th>Role</th><th class="num">Weight</th></tr></thead>
      <tbody>${weights.join("") || '<tr><td colspan="2" class="muted">none (every role weighs 1)</td></tr>'}</tbody></table></div></div>`;
  document.getElementById("slot-roles").appendChild(charts.roles.canvas);
  charts.roles.draw(Date.now() / 1000);
};

const metricFilter = { text: "" };

views.metrics = (main) => {
  poll(refreshMetrics, 2000, "metrics");
  if (!document.getElementById("metric-search")) {
    main.innerHTML = `<h2>Metrics</h2><div class="toolbar"><input type="search" id="metric-search" placeholder="filter keys">
      <a href="/metrics/snapshot" target="_blank">/metrics/snapshot</a><a href="/metrics" target="_blank">/metrics (Prometheus)</a></div>
      <div class="panel"><table><thead><tr><th>Key</th><th class="num">Value</th></tr></thead><tbody id="metric-rows"></tbody></table></div>`;
    const search = document.getElementById("metric-search");
    search.value = metricFilter.text;
    search.addEventListener("input", () => { metricFilter.text = search.value; render(); });
  }
  const needle = metricFilter.text.trim().toLowerCase();
  document.getElementById("metric-rows").innerHTML = Object.keys(model.metrics).sort()
    .filter((k) => !needle || k.toLowerCase().includes(needle))
    .map((k) => `<tr><td class="mono">${esc(k)}</td><td class="num mono">${esc(model.metrics[k])}</td></tr>`).join("");
};

// ---- polling of what the open view needs

function poll(fn, ms, tag = fn.name) {
  if (polled && polled.tag === tag) return;
  stopPolling();
  fn();
  polled = { tag, id: setInterval(fn, ms) };
}

function stopPolling() {
  if (polled) { clearInterval(polled.id); polled = null; }
}

// ------------------------------------------------------------------------ share charts

function sample() {
  const t = totals(), now = Date.now() / 1000;
  const roles = {}, frameworks = {};
  for (const [role, used] of t.byRole) roles[role] = dominantShare(used, t.total);
  for (const [fid, used] of t.byFramework) frameworks[frameworkLabel(fid)] = dominantShare(used, t.total);
  charts.roles.add(now, roles);
  charts.frameworks.add(now, frameworks);
  const { view } = route();
  if (view === "overview" || view === "roles") scheduleRender();
}

// ------------------------------------------------------------------------ start

window.addEventListener("hashchange", () => {
  const main = document.getElementById("view");
  main.innerHTML = "";
  if (route().view !== "task") sandbox.key = null;
  stopPolling();
  render();
});
window.mezzo = { model, charts };  // for the curious (and the browser test)
render();
refreshMaster();
setInterval(refreshMaster, 10000);
setInterval(sample, 1000);
follow();
