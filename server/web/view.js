// Rendering helpers of the playground: DOM built from data, no state of their own.

import { thumbnail } from "./images.js";
import { renderToolCalls } from "./tools.js";

export function describeError(error) {
  const details = error.details || {};
  if (details.missing) return `${error.code}: ${error.message} (${details.missing.join(", ")})`;
  if (details.errors) {
    return `${error.code}: ${details.errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`;
  }
  return `${error.code}: ${error.message}`;
}

export function variableField(def) {
  const id = `var-${def.name}`;
  const wrap = document.createElement("div");
  wrap.className = "field";
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = def.name + (def.required ? " (required)" : "");
  let input;
  if (def.type === "enum") {
    input = document.createElement("select");
    for (const value of def.options || []) {
      const option = document.createElement("option");
      option.value = option.textContent = String(value);
      input.append(option);
    }
  } else if (def.type === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = def.default === true;
    label.className = "check";
  } else if (def.type === "number") {
    input = document.createElement("input");
    input.type = "number";
    input.step = "any";
  } else {
    input = document.createElement("textarea");
    input.rows = 2;
  }
  input.id = id;
  input.dataset.variable = def.name;
  input.dataset.type = def.type || "string";
  if (def.required) input.required = true;
  if (def.default !== undefined && def.default !== null && def.type !== "boolean") {
    input.value = String(def.default);
  }
  if (def.description) input.title = def.description;
  wrap.append(label, input);
  return wrap;
}

function stat(name, value) {
  const div = document.createElement("div");
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = name;
  dd.textContent = value;
  div.append(dt, dd);
  return div;
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${value} ms`;
}

function renderStats(turn) {
  const dl = document.createElement("dl");
  dl.className = "stats";
  const done = turn.done;
  if (!done) {
    const note = turn.resumed_at ? ` (resumed after chunk ${turn.resumed_at})` : "";
    dl.append(stat("Status", `streaming…${note}`));
    return dl;
  }
  dl.append(stat("Status", done.status + (done.finish_reason ? ` (${done.finish_reason})` : "")));
  if (done.usage) {
    const u = done.usage;
    const thought = u.reasoning_tokens ? ` (reasoning ${u.reasoning_tokens})` : "";
    dl.append(stat("Tokens", `in ${u.input_tokens} · out ${u.output_tokens}${thought} · total ${u.total_tokens}`));
  }
  if ("cost_usd" in done) dl.append(stat("Cost", done.cost_usd === null ? "unknown" : `$${done.cost_usd}`));
  if ("ttft_ms" in done) dl.append(stat("First token", ms(done.ttft_ms)));
  if ("latency_ms" in done) dl.append(stat("Latency", ms(done.latency_ms)));
  if (done.validation) {
    const errors = done.validation.errors && done.validation.errors.length
      ? ` (${done.validation.errors.length} error(s))` : "";
    dl.append(stat("Validation", done.validation.status + errors));
  }
  if (done.refusal) {
    // The provider declined (finish_reason content_filter): said apart from the text.
    const refused = stat("Refused", done.refusal);
    refused.className = "refusal";
    dl.append(refused);
  }
  if (done.error) dl.append(stat("Error", describeError(done.error)));
  return dl;
}

function reasoningSummary(turn) {
  return turn.done ? "Reasoning" : "Reasoning (thinking…)";
}

/** The model's reasoning, folded apart above the answer (closed unless opened). */
export function renderReasoning(turn) {
  const details = document.createElement("details");
  details.className = "reasoning";
  details.open = Boolean(turn.reasoning_open);
  details.addEventListener("toggle", () => { turn.reasoning_open = details.open; });
  const summary = document.createElement("summary");
  summary.textContent = reasoningSummary(turn);
  const text = document.createElement("p");
  text.className = "reasoning-text";
  text.textContent = turn.reasoning;
  details.append(summary, text);
  return details;
}

/** The reasoning grew: update it in place (its open state kept), or say it is not shown yet. */
export function updateReasoning(li, turn) {
  const details = li && li.querySelector("details.reasoning");
  if (!details) return false;
  details.querySelector("summary").textContent = reasoningSummary(turn);
  details.querySelector(".reasoning-text").textContent = turn.reasoning;
  return true;
}

/** One transcript entry; onResult(turn, callId, output) sends a tool call's result. */
export function renderTurn(turn, onResult) {
  const li = document.createElement("li");
  li.className = `turn ${turn.role}` + (turn.done && turn.done.status === "failed" ? " failed" : "");
  if (turn.task_id) li.dataset.taskId = turn.task_id;
  if (turn.done) li.dataset.status = turn.done.status;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = turn.role === "user" ? "You"
    : turn.continues ? "Assistant (after the tool results)" : "Assistant";
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = turn.text;
  li.append(who);
  if (turn.reasoning) li.append(renderReasoning(turn));
  li.append(text);
  if (turn.images && turn.images.length) {
    const images = document.createElement("div");
    images.className = "images";
    images.append(...turn.images.map(thumbnail));
    li.append(images);
  }
  const calls = turn.role === "assistant" ? renderToolCalls(turn, onResult) : null;
  if (calls) li.append(calls);
  if (turn.role === "assistant") li.append(renderStats(turn));
  return li;
}

/** A stored message's content: its text, and its images (by URL only named in the text: the
 * page shows no image from elsewhere). */
function contentOf(content) {
  if (typeof content === "string") return { text: content, images: [] };
  if (!Array.isArray(content)) return { text: JSON.stringify(content), images: [] };
  const texts = [];
  const images = [];
  for (const part of content) {
    if (part.type === "text") texts.push(part.text);
    else if (part.type === "image" && part.data) images.push({ media_type: part.media_type, data: part.data });
    else if (part.type === "image") texts.push(`[image ${part.url}]`);
  }
  return { text: texts.join("\n"), images };
}

const DONE_FIELDS = ["status", "finish_reason", "usage", "cost_usd", "ttft_ms", "latency_ms",
  "validation", "error", "refusal", "tool_calls", "next_task_id", "reasoning"];

/** GET /v1/runs/{id} -> transcript turns: its user and assistant messages, each answer with
 * its task's figures; a task still running becomes an open turn the page follows. */
export function turnsOfRun(run) {
  const tasks = [...run.tasks].sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
  const ended = tasks.filter((t) => t.status !== "queued" && t.status !== "running");
  const turns = [];
  for (const message of run.messages) {
    if (message.role !== "user" && message.role !== "assistant") continue;
    const { text, images } = contentOf(message.content);
    if (message.role === "user") {
      turns.push(images.length ? { role: "user", text, images } : { role: "user", text });
      continue;
    }
    const at = ended.findIndex((t) => t.text === text);
    const task = at >= 0 ? ended.splice(at, 1)[0] : null;
    const done = task ? Object.fromEntries(DONE_FIELDS.map((f) => [f, task[f]]))
      : { status: "completed" };
    turns.push({ role: "assistant", task_id: task ? task.id : null, text,
      reasoning: (task && task.reasoning) || "",
      last_seq: task ? task.last_seq : 0, done, tool_results: task ? task.tool_results || {} : {},
      continues: Boolean(task && task.parent_task_id) });
  }
  for (const task of tasks) {
    if (task.status === "queued" || task.status === "running") {
      turns.push({ role: "assistant", task_id: task.id, text: "", reasoning: "", last_seq: 0, done: null });
    }
  }
  return turns;
}
