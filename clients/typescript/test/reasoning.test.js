// Reasoning (task_reasoning, task_done.reasoning) in the client and the Redux binding,
// against the harness's two nodes: kept apart from the text, in the task's one sequence,
// resumed after a dropped transport and after a reload with no piece repeated.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { applyMiddleware, combineReducers, legacy_createStore as createStore } from "redux";
import {
  createMiddleware, execute, follow, reducer, selectRunMessages, selectTask, selectTaskReasoning, selectTaskText,
} from "../src/redux.js";
import { adhoc, client, control, taskRow, until } from "./env.js";

const c = client();
after(() => c.close());
const freshStore = () => createStore(combineReducers({ promptrelay: reducer }), applyMiddleware(createMiddleware(c)));

function thinking(content, maxTokens, tps, effort = "high") {
  const request = adhoc(content, maxTokens, tps);
  return { ...request, settings: { ...request.settings, reasoning: { effort } } };
}

/** Every event of the handle in order of arrival: [kind, seq]. */
function record(handle) {
  const seen = [];
  handle.listen((kind, value) => {
    if (kind === "chunk" || kind === "reasoning") seen.push([kind, value.seq]);
  });
  return seen;
}

test("reasoning streams apart from the text; a drop mid-reasoning resumes with no repeat", { timeout: 40000 }, async () => {
  const handle = c.execute(thinking("think first", 12, 10));
  const seen = record(handle);
  let dropped = false;
  handle.listen(async (kind) => {
    if (kind === "reasoning" && handle.reasoningPieces.length === 3 && !dropped) {
      dropped = true;
      await control("/drop?hold_ms=500");
    }
  });
  const done = await handle.done;
  assert.ok(dropped, "the transport was dropped mid-reasoning");
  assert.equal(done.status, "completed");
  assert.equal(typeof done.reasoning, "string");
  assert.equal(done.reasoning.trim().split(/\s+/).length, 16); // effort high: 16 words
  assert.equal(handle.reasoning, done.reasoning);
  assert.equal(handle.reasoningPieces.map((r) => r.text).join(""), done.reasoning);
  assert.equal(handle.text, done.text);
  assert.equal(handle.chunks.map((ch) => ch.text).join(""), done.text);
  assert.ok(!done.text.includes(done.reasoning.trim()), "no reasoning in the text");
  // one sequence: every seq once, reasoning (8 pieces of two words) before the answer
  const seqs = seen.map(([, seq]) => seq);
  assert.deepEqual(seqs, Array.from({ length: done.last_seq }, (_, i) => i + 1));
  assert.deepEqual(seen.slice(0, 8).map(([kind]) => kind), Array(8).fill("reasoning"));
  assert.ok(seen.slice(8).every(([kind]) => kind === "chunk"));
  assert.ok(!handle.anomalies.some((a) => a.kind === "missing" || a.kind === "gap"), JSON.stringify(handle.anomalies));
  assert.equal(done.usage.reasoning_tokens, 16);
  assert.equal(done.usage.output_tokens, 12 + 16);
  const row = await taskRow(done.task_id);
  assert.equal(row.reasoning, done.reasoning);
  assert.equal(row.text, done.text);

  // without the setting: no reasoning at all
  const plain = c.execute(adhoc("no thinking", 5, 0));
  const plainDone = await plain.done;
  assert.equal(plainDone.reasoning ?? null, null);
  assert.equal(plain.reasoning, "");
  assert.deepEqual(plain.reasoningPieces, []);
});

test("the Redux store keeps a task's reasoning apart from its text", { timeout: 40000 }, async () => {
  const store = freshStore();
  const handle = store.dispatch(execute(thinking("into the store", 10, 20, "medium")));
  const lengths = [];
  const stop = store.subscribe(() => {
    const id = handle.taskId;
    if (id) lengths.push(selectTaskReasoning(store.getState(), id).length);
  });
  let dropped = false;
  handle.listen(async (kind) => {
    if (kind === "reasoning" && handle.reasoningPieces.length === 2 && !dropped) {
      dropped = true;
      await control("/drop?hold_ms=400");
    }
  });
  const done = await handle.done;
  await until(() => selectTask(store.getState(), done.task_id)?.done, "task_done in the store");
  stop();
  assert.ok(dropped);
  const task = selectTask(store.getState(), done.task_id);
  assert.equal(task.reasoning, done.reasoning);
  assert.equal(selectTaskReasoning(store.getState(), done.task_id), done.reasoning);
  assert.equal(selectTaskText(store.getState(), done.task_id), done.text);
  assert.equal(task.lastSeq, done.last_seq);
  assert.ok(new Set(lengths).size > 2, `the reasoning grew in the store: ${lengths}`);
  const answer = selectRunMessages(store.getState(), done.run_id).find((m) => m.role === "assistant");
  assert.equal(answer.reasoning, done.reasoning);
  assert.equal(answer.content, done.text);
});

test("follow after a reload mid-reasoning: the rest once, nothing repeated", { timeout: 40000 }, async () => {
  const other = client();
  try {
    const handle = other.execute(thinking("reloaded while thinking", 10, 8));
    await until(() => handle.reasoningPieces.length >= 3, "three reasoning pieces");
    const kept = handle.reasoningPieces.slice(0, 3);
    const reloaded = freshStore();
    const followed = reloaded.dispatch(follow(handle.taskId, kept[2].seq, "", kept.map((r) => r.text).join("")));
    const done = await followed.done;
    await until(() => selectTask(reloaded.getState(), handle.taskId)?.done, "task_done in the store");
    assert.equal(followed.reasoning, done.reasoning);
    assert.equal(followed.reasoningPieces[0].seq, kept[2].seq + 1, "resumed after the kept pieces");
    assert.equal(selectTaskReasoning(reloaded.getState(), handle.taskId), done.reasoning);
    assert.equal(selectTaskText(reloaded.getState(), handle.taskId), done.text);
    assert.ok(!followed.anomalies.some((a) => a.kind === "missing"), JSON.stringify(followed.anomalies));
  } finally {
    other.close();
  }
});
