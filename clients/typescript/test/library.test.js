// The library, gallery and agent methods against a real server (tests/test_client_typescript.py
// starts it): PROMPTRELAY_LIBRARY_URL, and the keys of two users, an owner and a member.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { io } from "socket.io-client";
import { createClient, eachItem, PromptrelayError } from "../src/index.js";

const URL = process.env.PROMPTRELAY_LIBRARY_URL;
const OWNER_KEY = process.env.PROMPTRELAY_OWNER_KEY;
const MEMBER_KEY = process.env.PROMPTRELAY_MEMBER_KEY;
if (!URL || !OWNER_KEY || !MEMBER_KEY) throw new Error("run through tests/test_client_typescript.py");

const owner = createClient({ url: URL, token: OWNER_KEY, io });
// A token provider: each HTTP call asks it, as each connect does.
const member = createClient({ url: URL, token: async () => MEMBER_KEY, io });
const SIM = { max_tokens: 4, tokens_per_second: 0 };
let org;
const prompts = {};

function prompt(name, extra = {}) {
  return {
    name,
    description: `${name} for the client tests`,
    messages: [{ role: "user", content: "Review {{code}}" }],
    model: "simulated/demo",
    settings: SIM,
    ...extra,
  };
}

/** What the client has no method for (joining an org): a plain call. */
async function raw(key, method, path, body) {
  const res = await fetch(URL + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(res.ok, `${method} ${path}: ${res.status}`);
  return res.status === 204 ? null : res.json();
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof PromptrelayError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  });
}

before(async () => {
  org = (await owner.createOrg({ name: "Acme" })).id;
  const me = await raw(MEMBER_KEY, "GET", "/v1/me");
  await raw(OWNER_KEY, "POST", `/v1/orgs/${org}/members`, { user_id: me.id, role: "member" });
  const invitations = await raw(MEMBER_KEY, "GET", "/v1/me/invitations");
  await raw(MEMBER_KEY, "POST", `/v1/invitations/${invitations.items[0].id}/accept`);
  prompts.review = await owner.createPrompt(prompt("Code review helper", { tags: ["code", "review"] }));
  prompts.notes = await owner.createPrompt(prompt("Meeting notes", { tags: ["writing"] }));
  prompts.team = await owner.createPrompt(prompt("Team digest", { org_id: org }));
});

after(() => {
  owner.close();
  member.close();
});

test("prompts: mine and the team's, filtered and paged", async () => {
  const mine = await owner.listPrompts({ owner: "me" });
  assert.deepEqual(mine.items.map((p) => p.name).sort(), ["Code review helper", "Meeting notes"]);
  const team = await owner.listPrompts({ owner: `org:${org}` });
  assert.deepEqual(team.items.map((p) => [p.name, p.role, p.org_id]), [["Team digest", "admin", org]]);
  // the member reads the org's prompt and nothing of the owner's own
  const seen = await member.listPrompts();
  assert.deepEqual(seen.items.map((p) => [p.id, p.role]), [[prompts.team.id, "member"]]);

  assert.deepEqual((await owner.listPrompts({ tag: "writing" })).items.map((p) => p.id), [prompts.notes.id]);
  assert.deepEqual((await owner.listPrompts({ q: "review" })).items.map((p) => p.id), [prompts.review.id]);
  await owner.publishPrompt(prompts.notes.id, 1);
  const published = await owner.listPrompts({ status: "published" });
  assert.deepEqual(published.items.map((p) => [p.id, p.published_version]), [[prompts.notes.id, 1]]);

  // paging: one a page, every prompt once, newest first
  const first = await owner.listPrompts({ limit: 1 });
  assert.equal(first.items.length, 1);
  assert.equal(typeof first.next_cursor, "string");
  const all = [];
  for await (const p of eachItem((cursor) => owner.listPrompts({ limit: 1, cursor }))) all.push(p.id);
  assert.deepEqual(all, [prompts.team.id, prompts.notes.id, prompts.review.id]);

  await rejectsWith(owner.listPrompts({ limit: 500 }), "invalid_request");
  await rejectsWith(member.getPrompt(prompts.review.id), "not_found");
  const messages = [{ role: "user", content: "Review {{code}} briefly" }];
  const updated = await owner.updatePrompt(prompts.review.id, { messages, change_log: "shorter" });
  assert.equal(updated.version, 2);
  assert.equal((await owner.getPrompt(prompts.review.id)).messages[0].content, "Review {{code}} briefly");
  assert.equal((await owner.getPrompt(prompts.review.id, 1)).messages[0].content, "Review {{code}}");
});

test("templates: publish, search, tags, fork, stats, unpublish", async () => {
  const stats = await owner.publishTemplate(prompts.review.id, 1, { category: "engineering" });
  assert.equal(stats.is_public, true);
  assert.equal(stats.fork_count, 0);
  assert.deepEqual(stats.tags, ["code", "review"]);

  const found = await member.listTemplates({ q: "review helper" });
  assert.deepEqual(found.items.map((t) => t.id), [stats.id]);
  assert.deepEqual((await member.listTemplates({ tag: "code" })).items.map((t) => t.id), [stats.id]);
  assert.deepEqual((await member.listTemplates({ tag: "writing" })).items, []);
  assert.deepEqual((await member.listTemplates({ category: "engineering" })).items.map((t) => t.id), [stats.id]);
  assert.equal((await member.getTemplate(stats.id)).name, "Code review helper");

  const fork = await member.forkTemplate(stats.id, { name: "My reviewer" });
  assert.equal(fork.name, "My reviewer");
  assert.equal(fork.status, "draft");
  assert.equal(fork.role, "admin");
  assert.deepEqual(fork.forked_from, { prompt_id: prompts.review.id, version: 1 });
  assert.deepEqual((await member.listPrompts({ owner: "me" })).items.map((p) => p.id), [fork.id]);
  assert.equal((await owner.templateStats(prompts.review.id)).fork_count, 1);
  await rejectsWith(member.templateStats(prompts.review.id), "not_found");
  await rejectsWith(member.publishTemplate(prompts.team.id, 1), "forbidden");

  assert.equal(await owner.unpublishTemplate(prompts.review.id), null);
  assert.deepEqual((await member.listTemplates({ q: "review helper" })).items, []);
  await rejectsWith(member.forkTemplate(stats.id), "not_found");
});

test("agents: create, list, update, run, executions, delete", async () => {
  const template = await owner.createAgentTemplate({
    name: "Support",
    system_prompt: "You answer for {{company}}.",
    variables: [{ name: "company", required: true }],
    model: "simulated/demo",
    settings: SIM,
  });
  assert.deepEqual((await owner.listAgentTemplates()).items.map((t) => t.id), [template.id]);
  assert.equal((await owner.getAgentTemplate(template.id)).system_prompt, "You answer for {{company}}.");

  const agent = await owner.createAgent({ template_id: template.id, name: "Helpdesk", variables: { company: "Acme" } });
  assert.equal(agent.execution_count, 0);
  assert.deepEqual((await owner.listAgents()).items.map((a) => a.id), [agent.id]);
  assert.deepEqual((await member.listAgents()).items, []);
  await rejectsWith(member.getAgent(agent.id), "not_found");
  const renamed = await owner.updateAgent(agent.id, { name: "Front desk" });
  assert.equal(renamed.name, "Front desk");

  const started = await owner.runAgent(agent.id, { messages: [{ role: "user", content: "Hello" }] });
  assert.equal(typeof started.task_id, "string");
  const done = await owner.subscribe(started.task_id).done;
  assert.equal(done.status, "completed");
  assert.ok(done.text.length > 0);
  const executions = await owner.listAgentExecutions(agent.id);
  assert.deepEqual(executions.items.map((e) => [e.task_id, e.status]), [[started.task_id, "completed"]]);
  assert.equal(executions.items[0].result, done.text);
  const counted = await owner.getAgent(agent.id);
  assert.equal(counted.execution_count, 1);

  await rejectsWith(owner.runAgent(agent.id, { messages: [{ role: "wizard", content: "?" }] }), "invalid_request");
  assert.equal(await owner.deleteAgent(agent.id), null);
  await rejectsWith(owner.getAgent(agent.id), "not_found");
  await rejectsWith(owner.listAgentExecutions(agent.id), "not_found");
});
