// Redux binding, framework-free: plain action creators, a reducer holding tasks and runs
// by id, a middleware that turns execute / cancel / follow actions into client calls, and
// selectors that return the same object for the same state (safe for memoized views).

export const EXECUTE = "promptrelay/execute";
export const CANCEL = "promptrelay/cancel";
export const FOLLOW = "promptrelay/follow";
export const TASK_STARTED = "promptrelay/taskStarted";
export const TASK_CHUNK = "promptrelay/taskChunk";
export const TASK_DONE = "promptrelay/taskDone";
export const TASK_FAILED = "promptrelay/taskFailed";
export const LOAD_RUN = "promptrelay/loadRun";
export const RUN_LOADED = "promptrelay/runLoaded";
export const TASK_TOOL_CALL = "promptrelay/taskToolCall";
export const TOOL_RESULT = "promptrelay/toolResult";
export const TOOL_RESULT_SENT = "promptrelay/toolResultSent";
export const TASK_REASONING = "promptrelay/taskReasoning";

export const execute = (request) => ({ type: EXECUTE, payload: { request } });
export const cancel = (taskId) => ({ type: CANCEL, payload: { taskId } });
/** Follow a task from `afterSeq` on (e.g. kept across a page reload), `text` and `reasoning`
 * being what the caller holds up to it: the store takes the events after `afterSeq` at once. */
export const follow = (taskId, afterSeq = 0, text = "", reasoning = "") => ({
  type: FOLLOW, payload: { taskId, afterSeq, text, reasoning },
});
/** Load a past conversation (`GET /v1/runs/{id}`) into the store; tasks still running are
 * followed from their last seq. `dispatch(loadRun(id))` returns a promise of the run. */
export const loadRun = (runId) => ({ type: LOAD_RUN, payload: { runId } });
export const runLoaded = (payload) => ({ type: RUN_LOADED, payload });
/** Send a tool call's result; `dispatch(toolResult(...))` returns a promise of the ack. */
export const toolResult = (taskId, callId, output) => ({ type: TOOL_RESULT, payload: { taskId, callId, output } });
export const taskToolCall = (payload) => ({ type: TASK_TOOL_CALL, payload });
export const toolResultSent = (payload) => ({ type: TOOL_RESULT_SENT, payload });
export const taskStarted = (payload) => ({ type: TASK_STARTED, payload });
export const taskChunk = (payload) => ({ type: TASK_CHUNK, payload });
export const taskReasoning = (payload) => ({ type: TASK_REASONING, payload });
export const taskDone = (payload) => ({ type: TASK_DONE, payload });
export const taskFailed = (payload) => ({ type: TASK_FAILED, payload });

export const initialState = Object.freeze({ tasks: {}, runs: {}, failures: {} });

function userMessages(request) {
  const messages = (request && request.messages) || [];
  const last = messages[messages.length - 1];
  return last && last.role === "user" ? [last] : [];
}

function withTask(state, id, change) {
  const task = state.tasks[id];
  if (!task) return state;
  const next = change(task);
  return next === task ? state : { ...state, tasks: { ...state.tasks, [id]: next } };
}

/** The reducer; mount it under `promptrelay` (or pass `select` to the selectors). */
export function reducer(state = initialState, action) {
  const p = action.payload;
  switch (action.type) {
    case TASK_STARTED: {
      if (state.tasks[p.taskId]) return state;
      const task = {
        taskId: p.taskId, runId: p.runId ?? null, requestId: p.requestId ?? null,
        prompt: userMessages(p.request), status: p.status || "running",
        text: p.text ?? "", reasoning: p.reasoning ?? "", lastSeq: p.lastSeq ?? 0, done: null, error: null,
        toolCalls: [], toolResults: {},
      };
      const runs = { ...state.runs };
      if (task.runId) {
        const run = runs[task.runId] || { runId: task.runId, taskIds: [] };
        runs[task.runId] = { ...run, taskIds: [...run.taskIds, task.taskId] };
      }
      return { ...state, tasks: { ...state.tasks, [p.taskId]: task }, runs };
    }
    case TASK_CHUNK:
      return withTask(state, p.taskId, (t) => (t.done || p.seq !== t.lastSeq + 1 ? t
        : { ...t, text: t.text + p.text, lastSeq: p.seq, status: "running" }));
    case TASK_REASONING:
      return withTask(state, p.taskId, (t) => (t.done || p.seq !== t.lastSeq + 1 ? t
        : { ...t, reasoning: (t.reasoning ?? "") + p.text, lastSeq: p.seq, status: "running" }));
    case TASK_TOOL_CALL:
      return withTask(state, p.taskId, (t) => (t.done || p.seq !== t.lastSeq + 1 ? t : {
        ...t, lastSeq: p.seq, toolCalls: withPiece(t.toolCalls || [], p),
      }));
    case TOOL_RESULT_SENT:
      return withTask(state, p.taskId, (t) => ({ ...t, toolResults: { ...t.toolResults, [p.callId]: p.output } }));
    case TASK_DONE: {
      const ended = withTask(state, p.task_id, (t) => (t.done ? t : {
        ...t, text: p.text, reasoning: p.reasoning || t.reasoning || "", lastSeq: p.last_seq,
        status: p.status, done: p, error: p.error ?? null,
      }));
      // A tool step: its continuation joins the run now, before it streams.
      if (!p.next_task_id || !p.run_id || ended.tasks[p.next_task_id]) return ended;
      return reducer(ended, taskStarted({ taskId: p.next_task_id, runId: p.run_id, status: "running" }));
    }
    case TASK_FAILED: {
      const error = { code: p.error.code, message: p.error.message, details: p.error.details ?? null };
      if (p.taskId && state.tasks[p.taskId]) {
        return withTask(state, p.taskId, (t) => ({ ...t, status: "failed", error }));
      }
      return { ...state, failures: { ...state.failures, [p.requestId]: error } };
    }
    case RUN_LOADED:
      return withRun(state, p);
    default:
      return state;
  }
}

function withPiece(calls, p) {
  const at = calls.findIndex((c) => c.callId === p.callId);
  if (at < 0) return [...calls, { callId: p.callId, index: p.index, name: p.name, arguments: p.delta }];
  return calls.map((c, i) => (i === at ? { ...c, arguments: c.arguments + p.delta } : c));
}

/** A run from `GET /v1/runs/{id}`: its tasks in order (what the store already holds of a task
 * is kept: it may be further along than the snapshot). */
function withRun(state, run) {
  const tasks = { ...state.tasks };
  const ordered = [...run.tasks].sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
  for (const t of ordered) {
    if (tasks[t.id]) continue;
    tasks[t.id] = {
      taskId: t.id, runId: run.id, requestId: null, prompt: userMessages(t.request),
      status: t.status, text: t.text ?? "", reasoning: t.reasoning ?? "", lastSeq: t.last_seq, done: null,
      toolCalls: (t.tool_calls || []).map((c, index) => ({
        callId: c.id, index, name: c.name, arguments: c.arguments_text ?? JSON.stringify(c.arguments),
      })),
      toolResults: t.tool_results || {},
      error: t.error ? { code: t.error.code, message: t.error.message, details: null } : null,
    };
  }
  const runs = { ...state.runs, [run.id]: { runId: run.id, title: run.title ?? null, taskIds: ordered.map((t) => t.id) } };
  return { ...state, tasks, runs };
}

/** Middleware: `dispatch(execute(request))` returns the client's task handle. */
export function createMiddleware(client) {
  return (store) => (next) => (action) => {
    switch (action.type) {
      case EXECUTE: {
        const handle = client.execute(action.payload.request);
        bind(store, handle, action.payload.request);
        return handle;
      }
      case FOLLOW: {
        const { taskId, afterSeq, text, reasoning = "" } = action.payload;
        const handle = client.subscribe(taskId, { afterSeq, text, reasoning });
        store.dispatch(taskStarted({ taskId, status: "running", lastSeq: afterSeq, text, reasoning }));
        bind(store, handle, null);
        return handle;
      }
      case LOAD_RUN:
        return client.getRun(action.payload.runId).then((run) => {
          store.dispatch(runLoaded(run));
          for (const t of run.tasks) {
            if (t.status === "queued" || t.status === "running") {
              store.dispatch(follow(t.id, t.last_seq, t.text ?? "", t.reasoning ?? ""));
            }
          }
          return run;
        });
      case TOOL_RESULT: {
        const { taskId, callId, output } = action.payload;
        return client.toolResult(taskId, callId, output).then((ack) => {
          store.dispatch(toolResultSent({ taskId, callId, output }));
          return ack;
        });
      }
      case CANCEL:
        return client.live.get(action.payload.taskId)?.cancel() ?? Promise.resolve(null);
      default:
        return next(action);
    }
  };
}

function bind(store, handle, request) {
  let announced = false; // chunks and done are dispatched once taskStarted was
  handle.started.then((ack) => {
    store.dispatch(taskStarted({
      taskId: ack.task_id, runId: ack.run_id ?? null, status: ack.status,
      requestId: handle.requestId, request,
    }));
    // What came before the ack, in seq order: text chunks, reasoning and tool call pieces.
    const early = [...handle.chunks.map((c) => [c.seq, taskChunk({ taskId: ack.task_id, ...c })]),
      ...handle.reasoningPieces.map((r) => [r.seq, taskReasoning({ taskId: ack.task_id, ...r })]),
      ...handle.toolPieces.map((p) => [p.seq, taskToolCall({ taskId: ack.task_id, ...p })])];
    for (const [, action] of early.sort((a, b) => a[0] - b[0])) store.dispatch(action);
    if (handle.result) {
      store.dispatch(taskDone(handle.result));
      if (handle.result.next_task_id) store.dispatch(follow(handle.result.next_task_id));
    }
    announced = true;
  }, () => {});
  handle.listen((kind, value) => {
    if (kind === "error") {
      store.dispatch(taskFailed({ taskId: handle.taskId, requestId: handle.requestId,
        error: { code: value.code, message: value.message, details: value.details } }));
    } else if (announced && kind === "chunk") {
      store.dispatch(taskChunk({ taskId: handle.taskId, ...value }));
    } else if (announced && kind === "reasoning") {
      store.dispatch(taskReasoning({ taskId: handle.taskId, ...value }));
    } else if (announced && kind === "tool_call") {
      store.dispatch(taskToolCall({ taskId: handle.taskId, ...value }));
    } else if (announced) {
      store.dispatch(taskDone(value));
      if (value.next_task_id) store.dispatch(follow(value.next_task_id)); // the tool step's continuation
    }
  });
}

// ---- selectors: plain lookups return what the state holds, so they are stable as-is.

const slice = (state) => state.promptrelay || state;

export const selectTask = (state, taskId) => slice(state).tasks[taskId];
export const selectTaskText = (state, taskId) => selectTask(state, taskId)?.text ?? "";
/** The task's reasoning so far, apart from its text ("" when none). */
export const selectTaskReasoning = (state, taskId) => selectTask(state, taskId)?.reasoning ?? "";
export const selectTaskStatus = (state, taskId) => selectTask(state, taskId)?.status;
export const selectFailure = (state, requestId) => slice(state).failures[requestId];

/** A run's conversation as [{role, content, taskId?, status?}], the same array for as long as
 * the run and its tasks are unchanged. */
export function makeSelectRunMessages() {
  let lastRun = null;
  let lastTasks = [];
  let lastResult = [];
  return (state, runId) => {
    const run = slice(state).runs[runId];
    const tasks = run ? run.taskIds.map((id) => slice(state).tasks[id]) : [];
    if (run === lastRun && tasks.every((t, i) => t === lastTasks[i])) return lastResult;
    lastRun = run;
    lastTasks = tasks;
    lastResult = tasks.flatMap((t) => [
      ...t.prompt.map((m) => ({ role: "user", content: m.content })),
      answerOf(t),
      ...(t.toolCalls || []).filter((c) => c.callId in (t.toolResults || {}))
        .map((c) => ({ role: "tool", content: t.toolResults[c.callId], callId: c.callId, name: c.name })),
    ]);
    return lastResult;
  };
}
export const selectRunMessages = makeSelectRunMessages();

function answerOf(t) {
  const answer = { role: "assistant", content: t.text, taskId: t.taskId, status: t.status };
  if (t.reasoning) answer.reasoning = t.reasoning;
  if (t.toolCalls && t.toolCalls.length) answer.toolCalls = t.toolCalls;
  return answer;
}
