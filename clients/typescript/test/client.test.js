// promptrelay-client against the real server (two nodes behind a balancer the test cuts).
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { io } from "socket.io-client";
import { PromptrelayError } from "../src/index.js";
import { adhoc, assertIntact, client, collect, control, TOKEN, URL, until } from "./env.js";

const c = client();
after(() => c.close());

test("chunks that arrive before the execute ack are kept, in order", { timeout: 40000 }, async () => {
  await control("/slow-acks?ms=600");
  try {
    const handle = c.execute(adhoc("early birds", 40, 60));
    const seen = await collect(handle);
    assert.ok(c.stats.early > 0, "no chunk came before the ack");
    const done = await assertIntact(handle, seen);
    assert.equal(done.status, "completed");
  } finally {
    await control("/slow-acks?ms=0");
  }
});

test("a transport dropped mid-stream and restored: no gap, no repeat", { timeout: 40000 }, async () => {
  const before = c.connects;
  const handle = c.execute(adhoc("keep going", 90, 40));
  const seen = await collect(handle, async (_, got) => {
    if (got.length === 3) await control("/drop?hold_ms=700");
  });
  assert.ok(c.connects > before, "the client did not reconnect");
  assert.ok(c.stats.resubscribes > 0);
  await assertIntact(handle, seen);
});

test("an execute whose ack is lost is retried once connected, and runs once", { timeout: 40000 }, async () => {
  await control("/slow-acks?ms=800");
  let handle;
  try {
    handle = c.execute(adhoc("retried", 20, 0));
    const early = c.stats.early;
    await until(() => c.stats.early > early, "chunks of the started task before its ack");
    await control("/drop?hold_ms=300"); // before the late ack
    await handle.started;
  } finally {
    await control("/slow-acks?ms=0");
  }
  assert.ok(c.stats.executeRetries > 0, "the execute was not retried");
  const done = await handle.done;
  // The same request_id again is the same task: the server ran it once.
  const raw = io(URL, { auth: { token: TOKEN }, forceNew: true, transports: ["websocket"] });
  try {
    const ack = await raw.timeout(20000).emitWithAck("execute", { ...adhoc("retried", 20, 0), request_id: handle.requestId });
    assert.equal(ack.task_id, done.task_id);
  } finally {
    raw.disconnect();
  }
});

test("cancel ends the task cancelled with the partial text", { timeout: 40000 }, async () => {
  const handle = c.execute(adhoc("a long story", 400, 20));
  const seen = await collect(handle, async (_, got) => {
    if (got.length === 2) assert.equal(await handle.cancel(), "cancelled");
  });
  const done = await assertIntact(handle, seen);
  assert.equal(done.status, "cancelled");
  assert.ok(done.text.length > 0);
});

test("an error ack is a typed error with the stable code", { timeout: 40000 }, async () => {
  const bad = c.execute({ model: "nope" });
  await assert.rejects(bad.done, (err) => err instanceof PromptrelayError && err.code === "invalid_request");
  await assert.rejects(collect(bad), (err) => err.code === "invalid_request");
  const missing = c.execute({ builtin: "translate", variables: {} });
  const err = await missing.started.catch((e) => e);
  assert.equal(err.code, "missing_variables");
  assert.ok(err.details.missing.includes("text"));
  assert.equal(err.retryable, false);
});

test("subscribe follows a task started by another client", { timeout: 40000 }, async () => {
  const other = client();
  try {
    const started = other.execute(adhoc("elsewhere", 30, 60));
    const ack = await started.started;
    const followed = c.subscribe(ack.task_id);
    const seen = await collect(followed);
    const done = await assertIntact(followed, seen);
    assert.equal(done.text, (await started.done).text);
  } finally {
    other.close();
  }
});

test("runs_changed reaches a client that asked for it, and only that one", { timeout: 40000 }, async () => {
  const sidebar = client({ runsChanged: true });
  const heard = [];
  sidebar.on("runs_changed", (change) => heard.push(change));
  let others = 0;
  c.socket.on("runs_changed", () => { others += 1; });
  try {
    await sidebar.ready;
    await until(() => sidebar.connects > 0, "the sidebar client to connect");
    const done = await c.execute(adhoc("a new conversation", 5, 200)).done;
    await until(() => heard.some((change) => change.run_id === done.run_id), "runs_changed");
    const created = heard.find((change) => change.run_id === done.run_id);
    assert.equal(created.change, "created");
    assert.equal(created.run.title, "a new conversation");
    assert.equal(others, 0, "a client that did not ask heard runs_changed");
  } finally {
    sidebar.close();
  }
});

// Last: node A stays drained, the balancer sends everything to node B from here on.
test("a draining node: the client reconnects to the second node and resumes", { timeout: 40000 }, async () => {
  let drained = false;
  c.on("draining", () => { drained = true; });
  const handle = c.execute(adhoc("move over", 90, 40));
  const seen = await collect(handle, async (_, got) => {
    if (got.length === 3) await control("/drain");
  });
  assert.ok(drained, "server_draining was not seen");
  const done = await assertIntact(handle, seen);
  assert.equal(done.status, "completed");
  const next = c.execute(adhoc("on node B", 10, 0));
  await assertIntact(next, await collect(next));
});

// The task's `subscribe` sent on the client's own socket behind its back: the server replaces
// the subscription and sends every chunk after `afterSeq`, so it repeats or skips chunks.
async function resubscribeRaw(handle, afterSeq) {
  const ack = await c.socket.timeout(20000).emitWithAck("subscribe", { task_id: handle.taskId, after_seq: afterSeq });
  assert.ok(ack.ok, JSON.stringify(ack));
}

test("repeats the server sent are on record, and events after task_done", { timeout: 40000 }, async () => {
  const handle = c.execute(adhoc("say it twice", 60, 40));
  const seen = await collect(handle, async (_, got) => {
    if (got.length === 3) await resubscribeRaw(handle, 0);
  });
  const done = await assertIntact(handle, seen); // repaired: each chunk once, in order
  assert.deepEqual(new Set(handle.anomalies.map((a) => a.kind)), new Set(["repeat"]));
  for (const seq of [1, 2, 3]) assert.ok(handle.anomalies.some((a) => a.seq === seq), `seq ${seq}`);
  assert.ok(handle.anomalies.every((a) => a.seq <= a.held));

  await resubscribeRaw(handle, 0);
  const late = () => handle.anomalies.filter((a) => a.kind === "after_done").map((a) => a.seq);
  await until(() => late().length === done.last_seq + 1, "events after task_done");
  const expected = [...Array(done.last_seq).keys()].map((i) => i + 1).concat([done.last_seq]);
  assert.deepEqual(late().sort((a, b) => a - b), expected.sort((a, b) => a - b));
  assert.equal(handle.chunks.length, seen.length); // none of them delivered
});

test("a gap the server left is on record and repaired", { timeout: 40000 }, async () => {
  const handle = c.execute(adhoc("skip ahead", 100, 25));
  let skippedTo = null;
  const seen = await collect(handle, async (_, got) => {
    if (got.length === 3 && skippedTo === null) {
      skippedTo = handle.lastSeq + 20;
      await resubscribeRaw(handle, skippedTo);
    }
  });
  await assertIntact(handle, seen); // the client asked again from what it held
  const first = handle.anomalies[0];
  assert.equal(first.kind, "gap");
  assert.equal(first.seq, skippedTo + 1);
  assert.ok(first.held < skippedTo);
  assert.ok(handle.anomalies.every((a) => a.kind === "gap" || a.kind === "repeat"));
});
