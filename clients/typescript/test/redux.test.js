// The Redux binding: a real Redux store whose state after a stream equals the server's.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { applyMiddleware, combineReducers, legacy_createStore as createStore } from "redux";
import {
  createMiddleware, execute, reducer, selectFailure, selectRunMessages, selectTask,
  selectTaskStatus, selectTaskText,
} from "../src/redux.js";
import { adhoc, client, collect, control, taskRow } from "./env.js";

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
