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

export const execute = (request) => ({ type: EXECUTE, payload: { request } });
export const cancel = (taskId) => ({ type: CANCEL, payload: { taskId } });
export const follow = (taskId, afterSeq = 0) => ({ type: FOLLOW, payload: { taskId, afterSeq } });
export const taskStarted = (payload) => ({ type: TASK_STARTED, payload });
export const taskChunk = (payload) => ({ type: TASK_CHUNK, payload });
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
        text: "", lastSeq: 0, done: null, error: null,
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
    case TASK_DONE:
      return withTask(state, p.task_id, (t) => (t.done ? t : {
        ...t, text: p.text, lastSeq: p.last_seq, status: p.status, done: p, error: p.error ?? null,
      }));
    case TASK_FAILED: {
      const error = { code: p.error.code, message: p.error.message, details: p.error.details ?? null };
      if (p.taskId && state.tasks[p.taskId]) {
        return withTask(state, p.taskId, (t) => ({ ...t, status: "failed", error }));
      }
      return { ...state, failures: { ...state.failures, [p.requestId]: error } };
    }
    default:
      return state;
  }
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
        const handle = client.subscribe(action.payload.taskId, { afterSeq: action.payload.afterSeq });
        store.dispatch(taskStarted({ taskId: action.payload.taskId, status: "running" }));
        bind(store, handle, null);
        return handle;
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
    for (const chunk of handle.chunks) store.dispatch(taskChunk({ taskId: ack.task_id, ...chunk }));
    if (handle.result) store.dispatch(taskDone(handle.result));
    announced = true;
  }, () => {});
  handle.listen((kind, value) => {
    if (kind === "error") {
      store.dispatch(taskFailed({ taskId: handle.taskId, requestId: handle.requestId,
        error: { code: value.code, message: value.message, details: value.details } }));
    } else if (announced && kind === "chunk") {
      store.dispatch(taskChunk({ taskId: handle.taskId, ...value }));
    } else if (announced) {
      store.dispatch(taskDone(value));
    }
  });
}

// ---- selectors: plain lookups return what the state holds, so they are stable as-is.

const slice = (state) => state.promptrelay || state;

export const selectTask = (state, taskId) => slice(state).tasks[taskId];
export const selectTaskText = (state, taskId) => selectTask(state, taskId)?.text ?? "";
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
      { role: "assistant", content: t.text, taskId: t.taskId, status: t.status },
    ]);
    return lastResult;
  };
}
export const selectRunMessages = makeSelectRunMessages();
