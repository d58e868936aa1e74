// promptrelay playground: plain ES module, no build step. Built on promptrelay-client
// (clients/typescript, served at /client/), the same package applications use: it keeps
// early chunks, drops repeats, fills gaps, resubscribes after a reconnect or a draining
// node, and retries an unanswered execute with its request_id. socket.io-client is the
// global `io` (served from /playground/vendor/); the rest is plain fetch.
// Types of every payload: clients/typescript/protocol.d.ts (GET /v1/protocol.json).

import { createClient } from "/client/index.js";
import { Catalog } from "./catalog.js";
import { Library } from "./library.js";
import { Sidebar } from "./sidebar.js";
import { Attachments, imagePart } from "./images.js";
import { EXAMPLE_TOOLS, addToolPiece, parseTools } from "./tools.js";
import { showUsage } from "./usage.js";
import { describeError, renderTurn, turnsOfRun, updateReasoning } from "./view.js";

const KEY_STORE = "promptrelay.key";
const CHAT_STORE = "promptrelay.chat";
const $ = (id) => document.getElementById(id);

const state = {
  client: null,
  key: "",
  catalog: null, // what to run (catalog.js)
  library: null, // the library panel (library.js)
  chat: loadChat(), // {run_id, turns: [...]}, kept in sessionStorage to survive a reload
  handles: new Map(), // task_id -> the client's task handle
  sidebar: null,
  attachments: null, // images for the next message (images.js)
};

function loadChat() {
  try {
    const chat = JSON.parse(sessionStorage.getItem(CHAT_STORE) || "null");
    if (chat && Array.isArray(chat.turns)) return chat;
  } catch (_) { /* a damaged entry starts a new conversation */ }
  return { run_id: null, turns: [] };
}

function saveChat() {
  try {
    sessionStorage.setItem(CHAT_STORE, JSON.stringify(state.chat));
  } catch (_) {
    // Over the storage quota (images): keep the conversation without the images' bytes.
    const turns = state.chat.turns.map((t) => (t.images
      ? { ...t, images: t.images.map(({ data, ...rest }) => rest) } : t));
    try {
      sessionStorage.setItem(CHAT_STORE, JSON.stringify({ ...state.chat, turns }));
    } catch (_) { /* still too large: the last copy saved stays */ }
  }
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
    state.catalog.load();
    state.library.load();
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

/** The library's "Use" / "Run" / a fresh fork: make it what Send runs. */
async function useEntry(value, name) {
  if (!(await state.catalog.choose(value))) {
    showError(`“${name}” is not in the list of what you can run.`);
    return;
  }
  showError("");
  $("message").focus();
}

// ---- sending, streaming, cancelling

function buildRequest(message, images) {
  const request = state.catalog.requestFields(); // the client adds a fresh request_id
  if (images.length) {
    const parts = images.map(imagePart);
    request.messages = [{ role: "user", content: message ? [{ type: "text", text: message }, ...parts] : parts }];
  } else if (message) request.messages = [{ role: "user", content: message }];
  const model = $("model").value.trim();
  if (model) request.model = model;
  const settings = {};
  if ($("max-tokens").value) settings.max_tokens = Number($("max-tokens").value);
  if ($("tps").value) settings.tokens_per_second = Number($("tps").value);
  if ($("reasoning").value) settings.reasoning = { effort: $("reasoning").value };
  if ($("tools-on").checked) {
    request.tools = parseTools($("tools").value); // throws, saying what is wrong
    if ($("sim-calls").value) settings.simulate_tool_calls = Number($("sim-calls").value);
  }
  if (Object.keys(settings).length) request.settings = settings;
  if ($("continue-run").checked && state.chat.run_id) request.run_id = state.chat.run_id;
  const label = message || (images.length ? ""
    : `${state.catalog.label()} ${JSON.stringify(request.variables || {})}`);
  return { request, label };
}

async function send(event) {
  event.preventDefault();
  if (!state.client || !state.client.socket || !state.client.socket.connected) {
    showError("Not connected: enter an API key and press Connect.");
    return;
  }
  const message = $("message").value.trim();
  const images = [...state.attachments.images];
  let built;
  try {
    built = buildRequest(message, images);
  } catch (err) {
    showError(err.message);
    $("tools").focus();
    return;
  }
  const { request, label } = built;
  if (!request.builtin && !request.prompt_id && !request.agent_id && !message && !images.length) {
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
  state.attachments.clear();
  if (ack.run_id) state.chat.run_id = ack.run_id;
  state.sidebar.setActive(state.chat.run_id);
  state.chat.turns.push(images.length ? { role: "user", text: label, images } : { role: "user", text: label });
  const turn = { role: "assistant", task_id: ack.task_id, text: "", last_seq: 0, done: null };
  state.chat.turns.push(turn);
  watch(turn, handle);
  saveChat();
  renderAll();
}

function turnOf(taskId) {
  return state.chat.turns.find((t) => t.task_id === taskId);
}

/** Mirror a task handle into its turn: the text so far, tool calls, the final task_done. */
function watch(turn, handle) {
  state.handles.set(turn.task_id, handle);
  const sync = (kind, value) => {
    if (turnOf(turn.task_id) !== turn) return; // a conversation the page let go of
    if (handle.client !== state.client) return; // a key given up for another
    if (kind === "error") {
      turn.done = { status: "failed", error: value, text: handle.text };
    } else if (kind === "done") {
      turn.done = value; // whole text: also right when history had expired
      if (value.next_task_id) followContinuation(turn, value.next_task_id);
      afterTaskEnded();
    }
    turn.text = handle.text;
    turn.reasoning = handle.reasoning;
    turn.last_seq = handle.lastSeq;
    if (kind === "tool_call") addToolPiece(turn, value); // kept across a reload's resume
    saveChat();
    if (kind === "chunk") renderTurnText(turn);
    else if (kind === "reasoning") renderReasoningText(turn);
    else if (kind === "tool_call") renderToolCallText(turn, value);
    else renderAll();
  };
  handle.listen(sync);
  if (handle.result) sync("done", handle.result);
  else if (handle.text !== turn.text) sync("chunk", null);
}

/** A step that asked for tools names its continuation: follow it now; it streams once every
 * call has its result (docs/tools.md). */
function followContinuation(turn, nextTaskId) {
  if (turnOf(nextTaskId)) return;
  const next = { role: "assistant", task_id: nextTaskId, text: "", last_seq: 0, done: null,
    continues: true };
  const at = state.chat.turns.indexOf(turn);
  state.chat.turns.splice(at + 1, 0, next);
  watch(next, state.client.subscribe(nextTaskId));
}

async function sendToolResult(turn, callId, output) {
  try {
    await state.client.toolResult(turn.task_id, callId, output);
  } catch (err) {
    showError(describeError(err));
    return;
  }
  showError("");
  turn.tool_results = { ...(turn.tool_results || {}), [callId]: output };
  if (turn.tool_drafts) delete turn.tool_drafts[callId];
  saveChat();
  renderAll();
  // The next call's result field, so results are typed one after another.
  const nextField = document.querySelector(`li[data-task-id="${turn.task_id}"] .tool-result-form textarea`);
  if (nextField) nextField.focus();
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
    const handle = state.client.subscribe(turn.task_id,
      { afterSeq: turn.last_seq, text: turn.text, reasoning: turn.reasoning || "" });
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

function renderReasoningText(turn) {
  if (!updateReasoning(document.querySelector(`li[data-task-id="${turn.task_id}"]`), turn)) renderAll();
}

function renderToolCallText(turn, piece) {
  const call = turn.tool_calls.find((c) => c.callId === piece.callId);
  const pre = document.querySelector(
    `li[data-task-id="${turn.task_id}"] .tool-call[data-call-id="${piece.callId}"] .tool-args`);
  if (pre && call) pre.textContent = call.arguments;
  else renderAll();
}

function renderAll() {
  // Re-rendering must not take the focus from a field being typed in (a tool result).
  const focused = document.activeElement && document.activeElement.id;
  const inTranscript = focused && $("transcript").contains(document.activeElement);
  $("transcript").replaceChildren(...state.chat.turns.map((t) => renderTurn(t, sendToolResult)));
  $("run-line").textContent = state.chat.run_id ? `Run ${state.chat.run_id}` : "";
  $("cancel").disabled = !openTurn();
  if (inTranscript && $(focused)) $(focused).focus();
}

// ---- wiring

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) connect(key);
});
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

$("tools-on").addEventListener("change", () => {
  $("tools-fields").hidden = !$("tools-on").checked;
});
$("tools").value = JSON.stringify(EXAMPLE_TOOLS, null, 2);

state.attachments = new Attachments({
  input: $("image-input"), list: $("attachments"), status: $("attach-status"), pasteTarget: $("message"),
});
state.catalog = new Catalog({ api });
state.library = new Library({ api, onUse: useEntry });
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
