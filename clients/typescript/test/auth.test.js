// promptrelay-client when the server ends its connection for authentication (a JWT that
// expires mid-stream, a key revoked mid-stream) or its transport drops a payload: a token
// provider resumes every task after its last seq; without one, everything settles with
// `unauthorized`, reported once. Run by tests/test_client_typescript.py.
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { test } from "node:test";
import { io } from "socket.io-client";
import { createClient } from "../src/index.js";

const URL = process.env.PROMPTRELAY_JWT_URL;
const SECRET = process.env.PROMPTRELAY_JWT_SECRET;
const AUDIENCE = process.env.PROMPTRELAY_JWT_AUDIENCE;
const ISSUER = process.env.PROMPTRELAY_JWT_ISSUER;
const OWNER = process.env.PROMPTRELAY_OWNER_KEY;
const SMALL_URL = process.env.PROMPTRELAY_SMALL_URL;
const SMALL_KEY = process.env.PROMPTRELAY_SMALL_KEY;
const SMALL_LIMIT = Number(process.env.PROMPTRELAY_SMALL_LIMIT);
const SLOW_URL = process.env.PROMPTRELAY_SLOW_URL; // 2 events a second per socket
const SLOW_KEY = process.env.PROMPTRELAY_SLOW_KEY;
if (!URL || !SECRET || !OWNER || !SMALL_URL) throw new Error("run through tests/test_client_typescript.py");
const SETTLE_MS = 5000;

const b64 = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** An HS256 JWT for `sub`, living `lifetimeS` seconds. */
function jwt(sub, lifetimeS = 3) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({
    sub, aud: AUDIENCE, iss: ISSUER, iat: now, exp: now + lifetimeS, email: `${sub.slice(0, 6)}@jwt.test`, role: "authenticated",
  })}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

function adhoc(max_tokens, tokens_per_second) {
  return {
    messages: [{ role: "user", content: "a long answer" }],
    model: "simulated/client-test",
    settings: { max_tokens, tokens_per_second },
  };
}

function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function collect(handle) {
  const seen = [];
  for await (const chunk of handle) seen.push(chunk);
  return seen;
}

async function settlesUnauthorized(client, handle, errors) {
  await assert.rejects(within(handle.done, 3000 + SETTLE_MS, "the running task"), (err) => err.code === "unauthorized");
  await assert.rejects(within(client.execute(adhoc(5, 100)).done, SETTLE_MS, "a later execute"), (err) => err.code === "unauthorized");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "unauthorized");
}

test("a JWT expiring mid-stream, with a token provider: every task resumes, whole", { timeout: 60000 }, async () => {
  const sub = randomUUID();
  let minted = 0;
  const client = createClient({ url: URL, io, reconnectionDelayMax: 300, token: async () => { minted += 1; return jwt(sub); } });
  try {
    const handles = [client.execute(adhoc(160, 30)), client.execute(adhoc(160, 30))];
    const seen = await within(Promise.all(handles.map(collect)), 50000, "the streams");
    assert.ok(client.connects >= 2, "the stream ended before the token expired");
    assert.ok(minted >= 2);
    for (const [i, handle] of handles.entries()) {
      const done = await handle.done;
      assert.equal(done.status, "completed");
      assert.deepEqual(seen[i].map((c) => c.seq), Array.from({ length: done.last_seq }, (_, k) => k + 1));
      assert.equal(seen[i].map((c) => c.text).join(""), done.text);
    }
  } finally {
    client.close();
  }
});

test("a JWT expiring mid-stream, as a plain token: everything settles unauthorized", { timeout: 30000 }, async () => {
  const client = createClient({ url: URL, io, token: jwt(randomUUID()) });
  const errors = [];
  client.on("auth_error", (err) => errors.push(err));
  try {
    await settlesUnauthorized(client, client.execute(adhoc(400, 30)), errors);
  } finally {
    client.close();
  }
});

test("a provider giving the refused token: everything settles unauthorized", { timeout: 30000 }, async () => {
  const same = jwt(randomUUID());
  const client = createClient({ url: URL, io, token: () => same });
  const errors = [];
  client.on("auth_error", (err) => errors.push(err));
  try {
    await settlesUnauthorized(client, client.execute(adhoc(400, 30)), errors);
  } finally {
    client.close();
  }
});

test("a key revoked mid-stream: everything settles unauthorized", { timeout: 30000 }, async () => {
  const auth = { Authorization: `Bearer ${OWNER}`, "Content-Type": "application/json" };
  const created = await (await fetch(`${URL}/v1/keys`, { method: "POST", headers: auth, body: "{}" })).json();
  const client = createClient({ url: URL, io, token: created.key });
  const errors = [];
  client.on("auth_error", (err) => errors.push(err));
  try {
    const handle = client.execute(adhoc(400, 30));
    await handle.started;
    const res = await fetch(`${URL}/v1/keys/${created.id}`, { method: "DELETE", headers: auth });
    assert.equal(res.status, 204);
    await settlesUnauthorized(client, handle, errors);
  } finally {
    client.close();
  }
});

test("a payload past the transport's limit is payload_too_large, and the client goes on", { timeout: 60000 }, async () => {
  const client = createClient({ url: SMALL_URL, io, token: SMALL_KEY, reconnectionDelayMax: 300 });
  try {
    const big = "x".repeat(SMALL_LIMIT * 2 + 70 * 1024);
    const handle = client.execute({ messages: [{ role: "user", content: big }], model: "simulated/x" });
    await assert.rejects(within(handle.done, 30000, "the large execute"), (err) => err.code === "payload_too_large");
    const small = await within(client.execute(adhoc(5, 100)).done, 30000, "a small execute");
    assert.equal(small.status, "completed");
  } finally {
    client.close();
  }
});

test("rate_limited executes are sent again after retry_after_ms, bounded", { timeout: 60000 }, async () => {
  const client = createClient({ url: SLOW_URL, io, token: SLOW_KEY });
  try {
    const done = await within(Promise.all(Array.from({ length: 5 }, () => client.execute(adhoc(5, 100)).done)), 50000, "five executes");
    assert.deepEqual(new Set(done.map((d) => d.status)), new Set(["completed"]));
    assert.equal(new Set(done.map((d) => d.task_id)).size, 5);
    assert.ok(client.stats.rateLimited > 0, "the server never said rate_limited");
  } finally {
    client.close();
  }
  const strict = createClient({ url: SLOW_URL, io, token: SLOW_KEY, rateLimitRetries: 0 });
  try {
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => strict.execute(adhoc(5, 100)).done));
    const refused = results.filter((r) => r.status === "rejected").map((r) => r.reason);
    assert.ok(refused.length > 0);
    for (const err of refused) {
      assert.equal(err.code, "rate_limited");
      assert.ok(Number.isInteger(err.details.retry_after_ms));
    }
  } finally {
    strict.close();
  }
});
