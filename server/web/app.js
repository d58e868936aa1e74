// promptrelay playground: plain ES module, no build step. Built on promptrelay-client
// (clients/typescript, served at /client/), the same package applications use: it keeps
// early chunks, drops repeats, fills gaps, resubscribes after a reconnect or a draining
// node, and retries an unanswered execute with its request_id. socket.io-client is the
// global `io` (served from /playground/vendor/); the rest is plain fetch.
// Types of every payload: clients/typescript/protocol.d.ts (GET /v1/protocol.json).

import { createClient } from "/client/index.js";
import { Sidebar } from "./sidebar.js";
import { showUsage } from "./usage.js";
import { describeError, renderTurn, turnsOfRun, variableField } from "./view.js";

const KEY_STORE = "promptrelay.key";
const CHAT_STORE = "promptrelay.chat";
const $ = (id) => document.getElementById(id);

const state = {
  client: null,
  key: "",
  catalog: new Map(), // option value -> {kind, ref, variables}
  chat: loadChat(), // {run_id, turns: [...]}, kept in sessionStorage to survive a reload
  handles: new Map(), // task_id -> the client's task handle
  sidebar: null,
};

function loadChat() {
  try {
    const chat = JSON.parse(sessionStorage.getItem(CHAT_STORE) || "null");
    if (chat && Array.isArray(chat.turns)) return chat;
  } catch (_) { /* a damaged entry starts a new conversation */ }
  return { run_id: null, turns: [] };
}

function saveChat() {
  sessionStorage.setItem(CHAT_STORE, JSON.stringify(state.chat));
}

function showError(text) {
  const el = $("error");
  el.textContent = text || "";
  el.hidden = !text;
}

function setConn(text) {
  $("conn").textContent = text;
}

// ---- key: pasted, or taken from the URL fragment (#key=...), which never reaches a server

function keyFromFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const key = params.get("key");
  if (key) history.replaceState(null, "", location.pathname + location.search);
  return key;
}

function connect(key) {
  if (typeof io === "undefined") {
    $("missing-client").hidden = false;
    setConn("Socket.IO client missing");
    return;
  }
  if (state.client) state.client.close();
  state.handles.clear();
  state.key = key;
  sessionStorage.setItem(KEY_STORE, key);
  setConn("connecting…");
  const client = createClient({ token: key, reconnectionDelayMax: 2000, runsChanged: true });
  state.client = client;
  client.on("connect", ({ reconnected }) => {
    setConn("connected");
    showError("");
    if (!reconnected) followOpenTurns(); // after a reload; later reconnects: the client
    else markResumed();
    loadCatalog();
    state.sidebar.reload(); // runs_changed missed while disconnected
    loadUsage();
  });
  client.on("runs_changed", (event) => {
    if (state.client === client) state.sidebar.onChange(event);
  });
  client.on("disconnect", (reason, willReconnect) => {
    setConn(willReconnect ? `connection lost (${reason}), reconnecting…` : "disconnected");
  });
  client.on("connect_error", (err) => {
    const refused = err.code === "unauthorized";
    setConn(refused ? "API key refused" : "cannot connect, retrying…");
    if (refused) showError("The API key was refused (unknown, revoked or expired).");
  });
}

// ---- what to run: ad hoc, a builtin, or one of the user's prompts

/** The key goes in the Authorization header, never in a URL. */
async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${path.split("?")[0]}: HTTP ${response.status}`);
  return response.status === 204 ? null : response.json();
}

const getJson = (path) => api(path);

function addGroup(label, entries) {
  const source = $("source");
  source.querySelectorAll(`optgroup[label="${label}"]`).forEach((g) => g.remove());
  if (!entries.length) return;
  const group = document.createElement("optgroup");
  group.label = label;
  for (const entry of entries) {
    const option = document.createElement("option");
    option.value = entry.value;
    option.textContent = entry.text;
    group.append(option);
    state.catalog.set(entry.value, entry);
  }
  source.append(group);
}

async function loadCatalog() {
  const selected = $("source").value;
  try {
    const { items } = await getJson("/v1/builtins");
    addGroup("Builtins", items.map((b) => ({
      value: `builtin:${b.name}`, text: `${b.name}: ${b.description || ""}`.trim(),
      kind: "builtin", ref: b.name, variables: b.variables || [],
    })));
  } catch (_) {
    addGroup("Builtins", [{ value: "builtin:*", text: "Builtin by name…", kind: "builtin",
      ref: null, variables: null }]);
  }
  try {
    const { items } = await getJson("/v1/prompts");
    addGroup("Your prompts", items.map((p) => ({
      value: `prompt:${p.id}`, text: p.name || p.id, kind: "prompt", ref: p.id,
      variables: p.variables || null,
    })));
  } catch (_) { /* no prompt library on this server (yet) */ }
  if (state.catalog.has(selected)) $("source").value = selected;
  await onSourceChange();
}

async function onSourceChange() {
  const entry = state.catalog.get($("source").value);
  $("builtin-name-field").hidden = !(entry && entry.kind === "builtin" && !entry.ref);
  let variables = entry ? entry.variables : [];
  if (entry && entry.kind === "prompt" && !variables) {
    try {
      variables = (await getJson(`/v1/prompts/${entry.ref}`)).variables || [];
    } catch (_) { variables = []; }
    entry.variables = variables;
  }
  renderVariables(variables || []);
}

function renderVariables(definitions) {
  const box = $("variable-fields");
  box.replaceChildren();
  $("variables").hidden = definitions.length === 0;
  for (const def of definitions) box.append(variableField(def));
}

function variableValues() {
  const values = {};
  for (const input of document.querySelectorAll("[data-variable]")) {
    const type = input.dataset.type;
    if (type === "boolean") values[input.dataset.variable] = input.checked;
    else if (input.value === "") continue; // the server names what is missing
    else if (type === "number") values[input.dataset.variable] = Number(input.value);
    else values[input.dataset.variable] = input.value;
  }
  return values;
}

// ---- sending, streaming, cancelling

function buildRequest(message) {
  const entry = state.catalog.get($("source").value);
  const request = {}; // the client adds a fresh request_id
  if (entry && entry.kind === "builtin") {
    request.builtin = entry.ref || $("builtin-name").value.trim();
    request.variables = variableValues();
  } else if (entry && entry.kind === "prompt") {
    request.prompt_id = entry.ref;
    request.variables = variableValues();
  }
  if (message) request.messages = [{ role: "user", content: message }];
  const model = $("model").value.trim();
  if (model) request.model = model;
  const settings = {};
  if ($("max-tokens").value) settings.max_tokens = Number($("max-tokens").value);
  if ($("tps").value) settings.tokens_per_second = Number($("tps").value);
  if (Object.keys(settings).length) request.settings = settings;
  if ($("continue-run").checked && state.chat.run_id) request.run_id = state.chat.run_id;
  return { request, label: message || `${request.builtin || "prompt"} ${JSON.stringify(request.variables || {})}` };
}

async function send(event) {
  event.preventDefault();
  if (!state.client || !state.client.socket || !state.client.socket.connected) {
    showError("Not connected: enter an API key and press Connect.");
    return;
  }
  const message = $("message").value.trim();
  const { request, label } = buildRequest(message);
  if (!request.builtin && !request.prompt_id && !message) {
    showError("Type a message, or pick a prompt.");
    return;
  }
  $("send").disabled = true;
  showError("");
  const handle = state.client.execute(request);
  let ack;
  try {
    ack = await handle.started;
  } catch (err) {
    showError(describeError(err));
    return;
  } finally {
    $("send").disabled = false;
  }
  $("message").value = "";
  if (ack.run_id) state.chat.run_id = ack.run_id;
  state.sidebar.setActive(state.chat.run_id);
  state.chat.turns.push({ role: "user", text: label });
  const turn = { role: "assistant", task_id: ack.task_id, text: "", last_seq: 0, done: null };
  state.chat.turns.push(turn);
  watch(turn, handle);
  saveChat();
  renderAll();
}

function turnOf(taskId) {
  return state.chat.turns.find((t) => t.task_id === taskId);
}

/** Mirror a task handle into its turn: the text so far, then the final task_done. */
function watch(turn, handle) {
  state.handles.set(turn.task_id, handle);
  const sync = (kind, value) => {
    if (turnOf(turn.task_id) !== turn) return; // a conversation the page let go of
    if (handle.client !== state.client) return; // a key given up for another
    if (kind === "error") {
      turn.done = { status: "failed", error: value, text: handle.text };
    } else if (kind === "done") {
      turn.done = value; // whole text: also right when history had expired
      afterTaskEnded();
    }
    turn.text = handle.text;
    turn.last_seq = handle.lastSeq;
    saveChat();
    kind === "chunk" ? renderTurnText(turn) : renderAll();
  };
  handle.listen(sync);
  if (handle.result) sync("done", handle.result);
  else if (handle.text !== turn.text) sync("chunk", null);
}

function openTurn() {
  return [...state.chat.turns].reverse().find((t) => t.role === "assistant" && !t.done);
}

async function cancel() {
  const turn = openTurn();
  const handle = turn && state.handles.get(turn.task_id);
  if (!handle) return;
  try {
    await handle.cancel();
  } catch (err) {
    showError(describeError(err));
  }
}

function followOpenTurns() {
  for (const turn of state.chat.turns) {
    if (turn.role !== "assistant" || turn.done || state.handles.has(turn.task_id)) continue;
    turn.resumed_at = turn.last_seq;
    const handle = state.client.subscribe(turn.task_id, { afterSeq: turn.last_seq, text: turn.text });
    watch(turn, handle);
  }
  renderAll();
}

function markResumed() {
  for (const turn of state.chat.turns) {
    if (turn.role === "assistant" && !turn.done) turn.resumed_at = turn.last_seq;
  }
  renderAll();
}

function newConversation() {
  state.chat = { run_id: null, turns: [] };
  state.sidebar.setActive(null);
  saveChat();
  renderAll();
}

// ---- the sidebar (sidebar.js) and the usage chart (usage.js)

let refreshTimer = null;
function afterTaskEnded() {
  // A finished task moves its run to the top and changes its preview and the day's usage.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    state.sidebar.reload();
    loadUsage();
  }, 200);
}

const loadUsage = () => showUsage(api);

/** Resume a conversation: show its messages; the next message continues it (run_id). */
async function openRun(runId) {
  let run;
  try {
    run = await api(`/v1/runs/${runId}`);
  } catch (err) {
    showError(`Could not open the conversation (${err.message}).`);
    return;
  }
  state.handles.clear(); // the old turns' listeners see their turns gone and stop
  state.chat = { run_id: run.id, turns: turnsOfRun(run) };
  $("continue-run").checked = true;
  state.sidebar.setActive(run.id);
  saveChat();
  showError("");
  followOpenTurns();
  setSidebarOpen(false);
  $("message").focus();
}

function onRunDeleted(runId) {
  if (state.chat.run_id === runId) newConversation();
}

function setSidebarOpen(open) {
  $("sidebar").classList.toggle("open", open);
  $("sidebar-toggle").setAttribute("aria-expanded", String(open));
}

// ---- rendering

function renderTurnText(turn) {
  const li = document.querySelector(`li[data-task-id="${turn.task_id}"] .text`);
  if (li) li.textContent = turn.text;
  else renderAll();
}

function renderAll() {
  $("transcript").replaceChildren(...state.chat.turns.map(renderTurn));
  $("run-line").textContent = state.chat.run_id ? `Run ${state.chat.run_id}` : "";
  $("cancel").disabled = !openTurn();
}

// ---- wiring

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) connect(key);
});
$("source").addEventListener("change", onSourceChange);
$("send-form").addEventListener("submit", send);
$("cancel").addEventListener("click", cancel);
$("new-chat").addEventListener("click", newConversation);
$("sidebar-new").addEventListener("click", () => {
  newConversation();
  setSidebarOpen(false);
  $("message").focus();
});
$("sidebar-toggle").addEventListener("click", () => {
  setSidebarOpen(!$("sidebar").classList.contains("open"));
});
$("usage-refresh").addEventListener("click", loadUsage);
$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("send-form").requestSubmit();
  }
});

state.sidebar = new Sidebar({ api, onOpen: openRun, onDeleted: onRunDeleted });
state.sidebar.setActive(state.chat.run_id);
renderAll();
const initialKey = keyFromFragment() || sessionStorage.getItem(KEY_STORE);
if (typeof io === "undefined") {
  $("missing-client").hidden = false;
  setConn("Socket.IO client missing");
} else if (initialKey) {
  $("api-key").value = initialKey;
  connect(initialKey);
}
