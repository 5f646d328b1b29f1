// boxgym view: a plain front end over the viewer's JSON API. No build step, no dependencies.
// Pages (hash routes): #/run/KEY?filters (the table), #/run/KEY/episode/ID, #/diff?a=KEY/ID&b=KEY/ID.
"use strict";

const OBS_CAP = 1500; // characters of an observation shown before "show all"
const main = document.getElementById("main");
let runs = [];
let current = null; // {kind, key, episode, params}: what is on screen, for live updates

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : typeof x === "number" ? x.toFixed(d) : String(x));
const secs = (x) => (x === null || x === undefined ? "–" : x < 10 ? x.toFixed(2) + "s" : x.toFixed(0) + "s");
const enc = encodeURIComponent;
const episodeHref = (run, id) => `#/run/${run}/episode/${enc(id)}`;
const diffHref = (a, b) => `#/diff?a=${enc(a)}&b=${enc(b)}`;
const failed = (row) => row.ended !== null && (row.reward === null || row.reward < 1);

// -- routing -------------------------------------------------------------------------------------

function parseHash() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "diff") return { kind: "diff", params };
  if (parts[0] === "run" && parts[2] === "episode") return { kind: "episode", key: parts[1], episode: parts.slice(3).join("/"), params };
  return { kind: "table", key: parts[1] || (runs[0] && runs[0].key) || "0", params };
}

async function route() {
  current = parseHash();
  try {
    if (current.kind === "table") await showTable(current);
    else if (current.kind === "episode") await showEpisode(current);
    else await showDiff(current);
  } catch (err) {
    main.replaceChildren(h("div", { class: "card bad" }, String(err)));
  }
}

// -- the table -----------------------------------------------------------------------------------

const COLUMNS = [
  ["episode", "episode"], ["env", "env"], ["task", "task"], ["reward", "reward", true], ["reason", "end reason"],
  ["steps", "steps", true], ["tokens", "tokens", true], ["seconds", "time", true], [null, "error"],
];

function tableHref(key, params) {
  const q = params.toString();
  return `#/run/${key}` + (q ? "?" + q : "");
}

async function showTable(view) {
  const p = view.params;
  const q = new URLSearchParams(p);
  if (!q.get("limit")) q.set("limit", "100");
  const data = await api(`/api/runs/${view.key}/episodes?${q}`);
  const set = (changes) => {
    const next = new URLSearchParams(p);
    for (const [k, v] of Object.entries(changes)) (v ? next.set(k, v) : next.delete(k));
    if (!("offset" in changes)) next.delete("offset");
    location.hash = tableHref(view.key, next);
  };
  const facet = (name, label, param) =>
    h("select", { "data-filter": param, onchange: (e) => set({ [param]: e.target.value }) },
      h("option", { value: "" }, `all ${label}`),
      Object.entries(data.facets[name] || {}).sort().map(([v, n]) =>
        h("option", { value: v, selected: p.get(param) === v }, `${v} (${n})`)));
  const run = data.run;
  const progress = run.total_bytes > run.indexed_bytes
    ? h("span", { class: "muted", id: "indexing" }, `indexing ${Math.floor((100 * run.indexed_bytes) / run.total_bytes)}%…`)
    : null;
  const filters = h("div", { class: "filters" },
    h("b", {}, run.name), h("span", { class: "muted", id: "total" }, `${data.total} episodes`), progress,
    facet("env_id", "envs", "env"), facet("reason", "end reasons", "reason"), facet("outcome", "outcomes", "outcome"),
    h("input", { type: "text", placeholder: "episode or task id…", value: p.get("q") || "",
                 onchange: (e) => set({ q: e.target.value }) }),
    h("label", {}, h("input", { type: "checkbox", id: "failed-only", checked: p.get("failed") === "1",
                                onchange: (e) => set({ failed: e.target.checked ? "1" : "" }) }), " failed only"),
    h("label", {}, h("input", { type: "checkbox", checked: p.get("subagents") === "1",
                                onchange: (e) => set({ subagents: e.target.checked ? "1" : "" }) }), " sub-agents"));
  const sort = p.get("sort") || "started";
  const desc = p.get("order") === "desc";
  const head = h("tr", {}, COLUMNS.map(([key, label, num]) =>
    h("th", { class: [num ? "num" : "", key === sort ? "sorted" : "", key === sort && desc ? "desc" : ""].join(" "),
              "data-sort": key,
              onclick: key ? () => set({ sort: key, order: key === sort && !desc ? "desc" : "" }) : null }, label)));
  const body = data.rows.map((r) =>
    h("tr", { class: "episode-row" + (failed(r) ? " failed" : ""), "data-episode": r.episode_id },
      h("td", {}, h("a", { href: episodeHref(view.key, r.episode_id) }, r.episode_id)),
      h("td", {}, r.env_id), h("td", {}, r.task_id),
      h("td", { class: "num", title: JSON.stringify(r.parts) }, fmt(r.reward)),
      h("td", {}, r.reason || (r.ended ? "" : "running")),
      h("td", { class: "num" }, r.steps ?? ""), h("td", { class: "num" }, r.tokens ?? ""),
      h("td", { class: "num" }, secs(r.seconds)),
      h("td", { class: "bad" }, r.error ? r.error.slice(0, 80) : "")));
  const offset = Number(p.get("offset") || 0);
  const limit = Number(q.get("limit"));
  const pager = h("div", { class: "pager" },
    h("button", { disabled: offset === 0, onclick: () => set({ offset: String(Math.max(0, offset - limit)) }) }, "‹ prev"),
    h("span", { class: "muted" }, `${data.total ? offset + 1 : 0}–${Math.min(offset + limit, data.total)} of ${data.total}`),
    h("button", { disabled: offset + limit >= data.total, onclick: () => set({ offset: String(offset + limit) }) }, "next ›"));
  main.replaceChildren(filters, h("table", { class: "episodes" }, h("thead", {}, head), h("tbody", {}, body)), pager);
}

// -- one episode ---------------------------------------------------------------------------------

function capped(text) {
  text = String(text ?? "");
  if (text.length <= OBS_CAP) return h("pre", {}, text);
  const pre = h("pre", {}, text.slice(0, OBS_CAP) + " …");
  const more = h("button", { class: "link expand", onclick: () => { pre.textContent = text; more.remove(); } },
    `show all (${text.length.toLocaleString()} characters)`);
  return h("div", {}, pre, more);
}

function imageOf(part, runKey) {
  const ref = part.image_url ?? part.url ?? part.path;
  const url = typeof ref === "object" && ref ? ref.url : ref;
  if (!url) return null;
  const src = /^(data:|https?:)/.test(url) ? url : `/api/runs/${runKey}/file?path=${enc(url)}`;
  return h("img", { src, alt: "image from the record" });
}

function content(value, runKey) {
  if (Array.isArray(value)) {
    return value.map((part) => {
      if (part && ["image_url", "input_image", "image"].includes(part.type)) return imageOf(part, runKey);
      if (part && part.type === "text") return capped(part.text);
      return capped(JSON.stringify(part));
    });
  }
  return capped(typeof value === "string" ? value : JSON.stringify(value, null, 1));
}

function thinkingSplit(text) {
  const m = /^([\s\S]*)<\/think>/.exec(text || "");
  if (!m) return [null, text];
  return [m[1].replace(/^\s*<think>/, ""), text.slice(m[0].length)];
}

function action(act) {
  if (typeof act === "string") {
    const [thinking, rest] = thinkingSplit(act);
    return [thinking ? h("details", {}, h("summary", {}, "thinking"), h("pre", {}, thinking)) : null, capped(rest)];
  }
  const out = [];
  const reasoning = act.reasoning_content || act.reasoning;
  const [thinking, rest] = thinkingSplit(act.content || "");
  if (reasoning || thinking) out.push(h("details", {}, h("summary", {}, "thinking"), h("pre", {}, reasoning || thinking)));
  if (rest && rest.trim()) out.push(capped(rest));
  for (const call of act.tool_calls || []) {
    const fn = call.function || {};
    let args = fn.arguments;
    try { args = JSON.stringify(JSON.parse(args), null, 1); } catch (e) { /* shown as recorded */ }
    out.push(h("div", { class: "call-line" }, h("b", {}, fn.name), h("span", { class: "muted" }, ` ${call.id || ""}`),
      h("pre", { class: "args" }, args)));
  }
  return out;
}

function timings(t) {
  return Object.entries(t || {}).map(([k, v]) => `${k.replace(/_s$/, "")} ${secs(v)}`).join(" · ");
}

function stepCard(step, runKey, extra) {
  const events = (step.events || []).filter((e) => e.exit_code !== undefined || e.ok === false)
    .map((e) => `${e.tool}: ${e.exit_code !== undefined ? "exit " + e.exit_code : ""}${e.ok === false ? " failed" : ""}${e.timed_out ? " timed out" : ""}`);
  const info = step.info || {};
  return h("div", { class: "card step", "data-step": step.index },
    h("div", { class: "head" }, h("b", {}, `step ${step.index}`), extra,
      step.reward ? h("span", {}, `reward ${fmt(step.reward)}`) : null,
      info.end_reason ? h("span", { class: "badge" }, info.end_reason) : null,
      step.call_id ? h("span", { class: "muted mono" }, step.call_id.slice(0, 12)) : h("span", { class: "muted" }, "no model call"),
      h("span", { class: "muted timings" }, timings(step.timings))),
    h("div", { class: "action" }, action(step.action)),
    (step.observation || []).map((m) => h("div", { class: "obs" },
      h("span", { class: "muted" }, m.role === "tool" ? `result ${m.tool_call_id || ""}` : m.role), content(m.content, runKey))),
    events.length ? h("div", { class: "muted" }, events.join(" · ")) : null,
    info.error ? h("div", { class: "bad" }, info.error) : null);
}

function verdictCard(v) {
  if (!v) return null;
  return h("div", { class: "card", id: "verdict" }, h("h3", {}, "verdict"),
    h("div", { class: "kv" }, h("span", {}, "reward ", h("b", {}, fmt(v.reward))),
      h("span", { class: v.passed ? "good" : "bad" }, v.passed ? "passed" : "not passed"),
      Object.entries(v.parts || {}).map(([k, x]) => h("span", {}, `${k} ${fmt(x)}`))),
    (v.messages || []).map((m) => h("div", {}, m)),
    v.checks && v.checks.length ? h("table", { class: "checks" }, v.checks.map((c) =>
      h("tr", {}, h("td", { class: c.passed ? "good" : "bad" }, c.passed ? "✓" : "✗"), h("td", {}, c.name),
        h("td", { class: "muted" }, c.detail)))) : null);
}

function treeNode(node, runKey) {
  return h("li", { class: node.critical ? "critical" : "" },
    h("span", { class: "node" }, h("a", { href: episodeHref(runKey, node.episode_id) }, node.subagent || node.episode_id),
      ` ${node.env_id || ""} · ${node.steps ?? "?"} steps · critical ${node.critical_steps}`,
      node.spawned_at !== null && node.spawned_at !== undefined ? ` · from step ${node.spawned_at}` : "",
      ` · reward ${fmt(node.reward)}`),
    node.children.length ? h("ul", {}, node.children.map((c) => treeNode(c, runKey))) : null);
}

function colour(logprob) {
  if (logprob === null || logprob === undefined) return "";
  const p = Math.exp(logprob);
  return `background: hsl(${Math.round(120 * p)}, 75%, ${82 - 10 * p}%)`;
}

function tokenSpan(t, mask) {
  const text = t.text === null || t.text === undefined || t.text === "" ? `⟨${t.id}⟩` : t.text;
  const p = t.logprob === null ? "no logprob" : `logprob ${t.logprob.toFixed(3)} · p ${Math.exp(t.logprob).toFixed(3)}`;
  return h("span", { class: `tok mask${mask}` + (t.logprob === null ? " nolp" : ""), style: mask ? colour(t.logprob) : "",
                     title: `id ${t.id} · ${p} · loss mask ${mask}` }, text);
}

function tokensView(data) {
  if (!data.calls.length) return h("p", { class: "muted" }, data.has_gateway ? "no model calls were recorded for this episode" : "this run has no gateway.jsonl");
  const legend = h("div", { class: "legend" }, "p(token):",
    [0.02, 0.2, 0.5, 0.8, 0.99].map((p) => h("span", { class: "tok mask1", style: colour(Math.log(p)) }, p.toString())),
    h("span", { class: "tok mask0" }, "loss mask 0"), "underlined: loss mask 1 (sampled, trained on)");
  return h("div", { id: "token-view" }, legend, data.calls.map((c) => {
    const ids = h("pre", { class: "mono muted", hidden: true }, c.new_prompt_ids.join(" "));
    return h("div", { class: "call", "data-call": c.call_id },
      h("div", { class: "kv" }, h("span", { class: `badge prefix ${c.prefix.kind}` }, c.prefix.kind),
        c.prefix.position !== null ? h("span", {}, `differs from position ${c.prefix.position}`) : null,
        h("span", { class: "mono" }, c.call_id.slice(0, 12)),
        h("span", {}, c.step === null ? "no step" : `step ${c.step}`),
        h("span", {}, `${c.prompt_tokens} prompt tokens (${c.shared_prompt_tokens} shared)`),
        h("button", { class: "link", onclick: () => { ids.hidden = !ids.hidden; } }, `+${c.new_prompt_tokens} new prompt tokens, loss mask 0`),
        c.weight_version ? h("span", {}, `weights ${c.weight_version}`) : null,
        c.skipped ? h("span", { class: "bad" }, `not training data: ${c.skipped}`) : null),
      ids, h("div", { class: "tokens" }, c.completion.map((t) => tokenSpan(t, c.loss_mask))));
  }));
}

function promptCard(prompt) {
  if (!prompt) return h("p", { class: "muted" }, "the prompt is in the gateway's records, and this episode has none");
  return prompt.map((m) => h("div", { class: "obs" }, h("span", { class: "muted" }, m.role), content(m.content)));
}

async function showEpisode(view) {
  const data = await api(`/api/runs/${view.key}/episodes/${enc(view.episode)}`);
  const s = data.summary;
  const me = `${view.key}/${s.episode_id}`;
  const related = [];
  if (data.branch_of) {
    const o = data.branch_of;
    related.push(o.run !== null
      ? h("div", {}, "a replay of ", h("a", { href: episodeHref(o.run, o.episode_id) }, o.episode_id),
          ` (first ${o.shared_steps} steps replayed) · `, h("a", { href: diffHref(`${o.run}/${o.episode_id}`, me), id: "compare-origin" }, "compare side by side"))
      : h("div", { class: "muted" }, `a replay of ${o.episode_id} in ${o.path} (not found)`));
  }
  for (const b of data.branches) {
    related.push(h("div", {}, "replayed as ", h("a", { href: episodeHref(b.run, b.episode_id) }, b.episode_id),
      ` (reward ${fmt(b.reward)}) · `, h("a", { href: diffHref(me, `${b.run}/${b.episode_id}`) }, "compare")));
  }
  const others = data.group.filter((g) => g.episode_id !== s.episode_id);
  if (others.length) {
    related.push(h("div", {}, "same group: ", others.map((g) => h("span", {},
      h("a", { href: episodeHref(g.run, g.episode_id) }, g.episode_id), ` ${fmt(g.reward)} `,
      h("a", { href: diffHref(me, `${g.run}/${g.episode_id}`) }, "(compare)"), " "))));
  }
  const summary = h("div", { class: "card" },
    h("h2", { id: "episode-title" }, s.episode_id),
    h("div", { class: "kv" },
      h("span", {}, "env ", h("b", {}, s.env_id)), h("span", {}, "task ", h("b", {}, s.task_id)),
      h("span", {}, "reward ", h("b", { class: failed(s) ? "bad" : "good" }, fmt(s.reward))),
      Object.entries(s.parts || {}).map(([k, v]) => h("span", {}, `${k} ${fmt(v)}`)),
      h("span", {}, "end ", h("b", {}, s.reason || "running")), h("span", {}, `${s.steps ?? 0} steps`),
      h("span", {}, `${s.tokens ?? "–"} tokens`), h("span", {}, secs(s.seconds)),
      h("span", {}, "critical steps ", h("b", {}, data.tree.critical_steps))),
    s.error ? h("div", { class: "bad" }, s.error) : null, related);
  const tree = data.tree.children.length
    ? h("div", { class: "card tree", id: "subagents" }, h("h3", {}, "sub-agents (◆ on the critical path)"),
        h("ul", {}, data.tree.children.map((c) => treeNode(c, view.key))))
    : null;
  const prompt = h("div", { class: "card", id: "prompt" }, h("h3", {}, "prompt"), h("p", { class: "muted" }, "loading…"));
  const shared = data.branch_of && data.branch_of.shared_steps;
  const steps = h("div", { id: "steps" }, prompt,
    data.steps.map((st) => stepCard(st, view.key, shared && st.index < shared ? h("span", { class: "badge shared" }, "replayed") : null)));
  const tokens = h("div", { id: "tokens", hidden: true }, h("p", { class: "muted" }, "loading…"));
  const tab = (name, pane, other) => h("button", { "data-tab": name, onclick: (e) => {
    pane.hidden = false; other.hidden = true;
    for (const b of e.target.parentNode.children) b.classList.toggle("active", b === e.target);
  } }, name);
  const tabs = h("div", { class: "tabs" }, tab("steps", steps, tokens), tab("tokens", tokens, steps));
  tabs.firstChild.classList.add("active");
  main.replaceChildren(...[h("p", {}, h("a", { href: `#/run/${view.key}` }, "‹ all episodes")), summary,
    verdictCard(data.verdict), tree, tabs, steps, tokens].filter(Boolean));
  const calls = await api(`/api/runs/${view.key}/episodes/${enc(view.episode)}/tokens`);
  prompt.replaceChildren(h("h3", {}, "prompt"), h("div", {}, promptCard(calls.prompt)));
  tokens.replaceChildren(tokensView(calls));
}

// -- two episodes side by side -------------------------------------------------------------------

async function showDiff(view) {
  const a = view.params.get("a"), b = view.params.get("b");
  const data = await api(`/api/diff?a=${enc(a)}&b=${enc(b)}`);
  const first = data.first_divergence;
  const side = (x) => h("div", { class: "card" }, h("a", { href: episodeHref(x.run, x.summary.episode_id) }, h("b", {}, x.summary.episode_id)),
    ` ${x.summary.env_id} · ${x.summary.task_id} · reward ${fmt(x.summary.reward)} · ${x.summary.reason || "running"}`);
  const n = Math.max(data.a.steps.length, data.b.steps.length);
  const rows = [];
  for (let i = 0; i < n; i++) {
    const cls = ["diff-row", first && first.step === i ? "diverged" : "", data.shared_steps && i < data.shared_steps ? "shared" : ""].join(" ");
    const cell = (st, x) => h("div", { class: "cell" }, st ? [action(st.action),
      (st.observation || []).map((m) => h("div", { class: "obs" }, content(m.content, x.run)))] : h("span", { class: "muted" }, "(no step)"));
    rows.push(h("div", { class: cls, "data-step": i }, h("div", { class: "idx" }, i), cell(data.a.steps[i], data.a), cell(data.b.steps[i], data.b)));
  }
  main.replaceChildren(...[
    h("h2", {}, "side by side"),
    h("div", { class: "diff-grid" }, h("div", {}), side(data.a), side(data.b)),
    first
      ? h("div", { class: "card", id: "first-divergence" }, h("b", {}, `first divergence: step ${first.step}`),
          h("span", { class: "muted" }, ` at ${first.where}`), h("pre", {}, first.diff))
      : h("div", { class: "card good", id: "first-divergence" }, "no divergence: every step is the same after normalisation"),
    data.shared_steps ? h("p", { class: "muted" }, `⇄ the first ${data.shared_steps} steps were replayed from the record`) : null,
    h("div", { class: "diff-grid" }, rows)].filter(Boolean));
}

// -- live updates --------------------------------------------------------------------------------

let refreshTimer = null;
function listen() {
  const events = new EventSource("/api/events");
  const live = document.getElementById("live");
  events.onopen = () => live.classList.add("on");
  events.onerror = () => live.classList.remove("on");
  events.addEventListener("update", (e) => {
    const data = JSON.parse(e.data);
    runs = data.runs;
    const view = current;
    if (!view || view.kind === "diff") return;
    const changed = data.changed[view.key] || [];
    const wanted = view.kind === "table" || changed.includes(view.episode);
    if (!wanted || refreshTimer) return;
    // At most one refresh a second, and none while the reader is typing in a filter.
    refreshTimer = setTimeout(() => { refreshTimer = null; if (document.activeElement.tagName !== "INPUT") route(); }, 1000);
  });
}

async function start() {
  runs = await api("/api/runs");
  document.getElementById("runs").replaceChildren(...runs.map((r) =>
    h("a", { href: `#/run/${r.key}`, title: r.path, style: "margin-right: 10px" }, r.name)));
  window.addEventListener("hashchange", route);
  listen();
  await route();
}

start();
