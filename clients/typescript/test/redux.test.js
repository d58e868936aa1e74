// The Redux binding: a real Redux store whose state after a stream equals the server's.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { applyMiddleware, combineReducers, legacy_createStore as createStore } from "redux";
import {
  createMiddleware, execute, follow, loadRun, reducer, toolResult, selectFailure, selectRunMessages, selectTask,
  selectTaskStatus, selectTaskText,
} from "../src/redux.js";
import { adhoc, client, collect, control, taskRow, until } from "./env.js";

const c = client();
after(() => c.close());
const store = createStore(combineReducers({ promptrelay: reducer }), applyMiddleware(createMiddleware(c)));

test("the store after a stream (with a network drop) equals the server's task_done", { timeout: 40000 }, async () => {
  const handle = store.dispatch(execute(adhoc("into the store", 80, 40)));
  await collect(handle, async (_, got) => {
    if (got.length === 3) await control("/drop?hold_ms=500");
  });
  const done = await handle.done;
  const task = selectTask(store.getState(), done.task_id);
  assert.deepEqual(task.done, done);
  assert.equal(selectTaskText(store.getState(), done.task_id), done.text);
  assert.equal(selectTaskStatus(store.getState(), done.task_id), "completed");
  assert.equal(task.lastSeq, done.last_seq);
  const row = await taskRow(done.task_id);
  assert.equal(task.text, row.text);
  assert.deepEqual(task.done.usage, row.usage);

  // A second turn in the same run; the run's messages are memoized.
  const second = store.dispatch(execute({ ...adhoc("and then?", 5, 0), run_id: done.run_id }));
  await second.done;
  const messages = selectRunMessages(store.getState(), done.run_id);
  assert.equal(messages, selectRunMessages(store.getState(), done.run_id));
  assert.deepEqual(messages.map((m) => m.role), ["user", "assistant", "user", "assistant"]);
  assert.equal(messages[0].content, "into the store");
  assert.equal(messages[3].content, (await second.done).text);
});

test("an execute refused by the server is a taskFailed with its code", { timeout: 40000 }, async () => {
  const handle = store.dispatch(execute({ builtin: "no-such-builtin" }));
  await handle.done.catch(() => {});
  assert.equal(selectFailure(store.getState(), handle.requestId).code, "not_found");
});

const freshStore = () => createStore(combineReducers({ promptrelay: reducer }), applyMiddleware(createMiddleware(c)));

test("follow(taskId, afterSeq) into a fresh store (a page reload) takes the chunks after afterSeq at once", { timeout: 40000 }, async () => {
  const other = client();
  try {
    const handle = other.execute(adhoc("reloaded", 150, 30));
    await until(() => handle.chunks.length >= 5, "five chunks");
    const kept = handle.chunks.slice(0, 5);
    const reloaded = freshStore();
    const followed = reloaded.dispatch(follow(handle.taskId, 5, kept.map((k) => k.text).join("")));
    await until(() => (selectTask(reloaded.getState(), handle.taskId)?.lastSeq ?? 0) > 6, "chunks in the store");
    assert.equal(selectTaskStatus(reloaded.getState(), handle.taskId), "running", "nothing came before task_done");
    const done = await followed.done;
    await until(() => selectTask(reloaded.getState(), handle.taskId).done, "task_done in the store");
    assert.equal(selectTaskText(reloaded.getState(), handle.taskId), done.text);
  } finally {
    other.close();
  }
});

test("loadRun puts a past conversation into the store, for a sidebar", { timeout: 40000 }, async () => {
  const first = await c.execute(adhoc("remember this", 10, 0)).done;
  const second = await c.execute({ ...adhoc("and this", 10, 0), run_id: first.run_id }).done;
  const sidebar = freshStore();
  const run = await sidebar.dispatch(loadRun(first.run_id));
  assert.equal(run.id, first.run_id);
  const messages = selectRunMessages(sidebar.getState(), first.run_id);
  assert.deepEqual(messages.map((m) => [m.role, m.content]), [
    ["user", "remember this"], ["assistant", first.text], ["user", "and this"], ["assistant", second.text],
  ]);
  assert.deepEqual(messages.map((m) => m.status), [undefined, "completed", undefined, "completed"]);
  await assert.rejects(sidebar.dispatch(loadRun("00000000-0000-4000-8000-000000000000")), (err) => err.code === "not_found");
});

test("a conversation with tool steps: calls stream into the store, results continue it", { timeout: 40000 }, async () => {
  const store = freshStore();
  const handle = store.dispatch(execute({
    messages: [{ role: "user", content: "weather and time?" }],
    model: "simulated/demo",
    settings: { tokens_per_second: 50, max_tokens: 5, simulate_tool_calls: 2 },
    tools: [{ name: "weather", parameters: { type: "object" } }, { name: "time", parameters: { type: "object" } }],
  }));
  const done = await handle.done;
  assert.equal(done.finish_reason, "tool_calls");
  assert.deepEqual(handle.anomalies, []);
  assert.deepEqual(Object.keys(handle.toolCalls), done.tool_calls.map((c) => c.id));
  for (const call of done.tool_calls) assert.deepEqual(JSON.parse(handle.toolCalls[call.id].arguments), call.arguments);
  await until(() => selectTask(store.getState(), done.task_id)?.done, "task_done in the store");
  const step = selectTask(store.getState(), done.task_id);
  assert.equal(step.lastSeq, done.last_seq);
  assert.deepEqual(step.toolCalls.map((c) => [c.callId, c.name]), done.tool_calls.map((c) => [c.id, c.name]));
  for (const call of done.tool_calls) await store.dispatch(toolResult(done.task_id, call.id, `${call.name}: fine`));
  await until(() => selectTask(store.getState(), done.next_task_id)?.done, "the continuation's task_done", 30000);
  const messages = selectRunMessages(store.getState(), done.run_id);
  assert.deepEqual(messages.map((m) => m.role), ["user", "assistant", "tool", "tool", "assistant"]);
  assert.deepEqual(messages[1].toolCalls.map((c) => c.name), done.tool_calls.map((c) => c.name));
  assert.equal(messages[2].content, `${done.tool_calls[0].name}: fine`);
  assert.equal(messages[4].status, "completed");
  assert.equal(messages[4].content, selectTask(store.getState(), done.next_task_id).done.text);
});
