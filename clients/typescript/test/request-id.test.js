// request_ids: one per execute, kept across retries, also where crypto.randomUUID is missing
// (a page on plain http other than localhost is not a secure context).
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient } from "../src/index.js";

const offline = () => createClient({ url: "http://127.0.0.1:9", token: "x", io: () => ({ on() {}, connected: false, active: true }) });
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test("every execute gets its own request_id; a given one is kept", () => {
  const client = offline();
  const ids = new Set(Array.from({ length: 50 }, () => client.execute({ model: "m" }).requestId));
  assert.equal(ids.size, 50);
  assert.equal(client.execute({ model: "m", request_id: "mine-1" }).requestId, "mine-1");
});

test("request_ids without crypto.randomUUID are still random v4 UUIDs", () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis.crypto, "randomUUID");
  Object.defineProperty(globalThis.crypto, "randomUUID", { value: undefined, configurable: true });
  try {
    const client = offline();
    const a = client.execute({ model: "m" }).requestId;
    const b = client.execute({ model: "m" }).requestId;
    assert.match(a, UUID4);
    assert.notEqual(a, b);
  } finally {
    if (saved) Object.defineProperty(globalThis.crypto, "randomUUID", saved);
    else delete globalThis.crypto.randomUUID;
  }
});
