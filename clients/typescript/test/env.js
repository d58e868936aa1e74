// What the pytest harness (tests/client_harness.py) hands to `node --test`: the load
// balancer in front of two real nodes, a key, and the control API that cuts the network.
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { createClient } from "../src/index.js";

export const URL = process.env.PROMPTRELAY_URL;
export const TOKEN = process.env.PROMPTRELAY_TOKEN;
const CONTROL = process.env.PROMPTRELAY_CONTROL;
if (!URL || !TOKEN || !CONTROL) throw new Error("run through tests/test_client_typescript.py");

export async function control(path) {
  const res = await fetch(CONTROL + path, { method: "POST" });
  assert.equal(res.status, 200);
}

export function client(options = {}) {
  return createClient({ url: URL, token: TOKEN, io, reconnectionDelayMax: 300, ...options });
}

export function adhoc(content, max_tokens, tokens_per_second) {
  return {
    messages: [{ role: "user", content }],
    model: "simulated/client-test",
    settings: { max_tokens, tokens_per_second },
  };
}

export async function taskRow(taskId) {
  const res = await fetch(`${URL}/v1/tasks/${taskId}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200);
  return res.json();
}

/** Wait for a condition, bounded by a deadline (no fixed sleep before asserting). */
export async function until(predicate, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The stream contract: seq 1..n, the chunks add up to the server's final text. */
export async function assertIntact(handle, seen) {
  const done = await handle.done;
  assert.deepEqual(seen.map((c) => c.seq), Array.from({ length: done.last_seq }, (_, i) => i + 1));
  assert.equal(seen.map((c) => c.text).join(""), done.text);
  assert.equal(handle.text, done.text);
  const row = await taskRow(done.task_id);
  assert.equal(row.text, done.text);
  assert.equal(row.last_seq, done.last_seq);
  return done;
}

export async function collect(handle, onChunk = () => {}) {
  const seen = [];
  for await (const chunk of handle) {
    seen.push(chunk);
    await onChunk(chunk, seen);
  }
  return seen;
}
