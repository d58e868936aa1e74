// Tool calling in the playground (docs/tools.md): the `tools` of an ad hoc request, typed as
// JSON (the server validates them: a breach is `invalid_request` naming the field), and
// each call of an answer as it streams, with a field for its result.

export const EXAMPLE_TOOLS = [
  {
    name: "weather",
    description: "Current weather of a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
  {
    name: "local_time",
    description: "The time of day in a city",
    parameters: { type: "object", properties: { city: { type: "string" } } },
  },
];

/** The editor's text -> the request's `tools`; throws an Error saying what is wrong. */
export function parseTools(text) {
  let tools;
  try {
    tools = JSON.parse(text);
  } catch (err) {
    throw new Error(`Tools: not valid JSON (${err.message}).`);
  }
  if (!Array.isArray(tools)) throw new Error("Tools: a JSON array of tools is expected.");
  return tools;
}

/** A task_tool_call piece (the client's {callId, index, name, delta}) into its turn. */
export function addToolPiece(turn, piece) {
  const calls = turn.tool_calls || (turn.tool_calls = []);
  let call = calls.find((c) => c.callId === piece.callId);
  if (!call) {
    call = { callId: piece.callId, index: piece.index, name: piece.name, arguments: "" };
    calls.push(call);
  }
  call.arguments += piece.delta;
}

/** The calls of an answer: while streaming from task_tool_call pieces, then task_done's. */
export function callsOf(turn) {
  const streamed = turn.tool_calls || [];
  const finished = (turn.done && turn.done.tool_calls) || [];
  if (!finished.length) return streamed.map((c) => ({ id: c.callId, name: c.name, text: c.arguments }));
  return finished.map((c) => ({
    id: c.id,
    name: c.name,
    text: c.arguments ? JSON.stringify(c.arguments) : c.arguments_text || "",
    error: c.arguments_error || null,
  }));
}

/** Whether results can still be sent: the step ended asking, and its continuation waits. */
function awaitsResults(turn) {
  return Boolean(turn.done && turn.done.status === "completed" && turn.done.next_task_id);
}

/**
 * The block of tool calls under an answer. onResult(turn, callId, output) sends one result;
 * drafts (typed, not sent) live in turn.tool_drafts so a re-render keeps them.
 */
export function renderToolCalls(turn, onResult) {
  const calls = callsOf(turn);
  if (!calls.length) return null;
  const box = document.createElement("div");
  box.className = "tool-calls";
  const results = turn.tool_results || {};
  for (const call of calls) {
    const section = document.createElement("section");
    section.className = "tool-call";
    section.dataset.callId = call.id;
    section.setAttribute("aria-label", `Tool call ${call.name}`);
    const head = document.createElement("div");
    head.className = "tool-name";
    const name = document.createElement("strong");
    name.textContent = call.name;
    const id = document.createElement("code");
    id.textContent = call.id;
    head.append("Tool call ", name, " ", id);
    const args = document.createElement("pre");
    args.className = "tool-args";
    args.textContent = call.text;
    section.append(head, args);
    if (call.error) {
      const bad = document.createElement("p");
      bad.className = "tool-error";
      bad.textContent = `Arguments are not a JSON object: ${call.error}`;
      section.append(bad);
    }
    if (call.id in results) {
      const sent = document.createElement("p");
      sent.className = "tool-result";
      sent.textContent = `Result sent: ${results[call.id]}`;
      section.append(sent);
    } else if (awaitsResults(turn)) {
      section.append(resultForm(turn, call, onResult));
    }
    box.append(section);
  }
  return box;
}

function resultForm(turn, call, onResult) {
  const form = document.createElement("form");
  form.className = "tool-result-form";
  const fieldId = `result-${call.id}`;
  const label = document.createElement("label");
  label.htmlFor = fieldId;
  label.textContent = `Result of ${call.name}`;
  const input = document.createElement("textarea");
  input.id = fieldId;
  input.rows = 2;
  input.dataset.callId = call.id;
  input.value = (turn.tool_drafts || {})[call.id] || "";
  input.addEventListener("input", () => {
    turn.tool_drafts = { ...(turn.tool_drafts || {}), [call.id]: input.value };
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  const button = document.createElement("button");
  button.type = "submit";
  button.className = "small";
  button.textContent = "Send result";
  button.setAttribute("aria-label", `Send result of ${call.name}`);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    button.disabled = true;
    onResult(turn, call.id, input.value).finally(() => { button.disabled = false; });
  });
  form.append(label, input, button);
  return form;
}
