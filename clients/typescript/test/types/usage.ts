// Compiled (never run) by `tsc -p test/types`: the package's .d.ts files describe what an
// application writes, and mistakes in either are type errors.
import { io } from "socket.io-client";
import { createClient, eachItem, PromptrelayError, type TaskDone } from "promptrelay-client";
import {
  createMiddleware, execute, reducer, selectRunMessages, selectTaskReasoning, selectTaskText, type PromptrelayState,
} from "promptrelay-client/redux";

export async function chat(url: string, token: string): Promise<string> {
  const client = createClient({ url, token, io });
  const answer = client.execute({ messages: [{ role: "user", content: "Hi" }], model: "simulated/demo" });
  let text = "";
  for await (const chunk of answer) text += chunk.text;
  const done: TaskDone = await answer.done;
  const status: "completed" | "failed" | "cancelled" = done.status;
  const tokens: number | undefined = done.usage?.total_tokens;
  try {
    await client.execute({ model: "nope" }).done;
  } catch (err) {
    if (err instanceof PromptrelayError && err.code === "missing_variables") return err.message;
  }
  const middleware = createMiddleware(client);
  const state: PromptrelayState = reducer(undefined, execute({ builtin: "summarize" }));
  const messages = selectRunMessages(state, done.run_id ?? "");
  client.close();
  return `${text}${status}${tokens}${messages.length}${selectTaskText(state, done.task_id)}${typeof middleware}`;
}

// @ts-expect-error: an unknown field of a request is a type error
createClient({ url: "", token: "" }).execute({ prompt: "not a field" });

// The library and agent routes: typed bodies and answers.
export async function library(url: string, token: string): Promise<number> {
  const client = createClient({ url, token, io });
  const mine = await client.listPrompts({ owner: "me", status: "published", q: "sum", limit: 10 });
  const first: string = mine.items[0]?.id ?? "";
  let names = 0;
  for await (const prompt of eachItem((cursor) => client.listPrompts({ owner: `org:${first}`, cursor }))) {
    names += prompt.name.length;
  }
  const gallery = await client.listTemplates({ q: "review", tag: "code" });
  const fork = await client.forkTemplate(gallery.items[0].id, { name: "mine" });
  const stats = await client.publishTemplate(fork.id, fork.version, { category: "code", is_default: false });
  await client.unpublishTemplate(fork.id);
  const template = await client.createAgentTemplate({ name: "t", system_prompt: "You are {{role}}." });
  const agent = await client.createAgent({ template_id: template.id, name: "a", variables: { role: "x" } });
  await client.updateAgent(agent.id, { model: null });
  const started = await client.runAgent(agent.id, { messages: [{ role: "user", content: "Hi" }] });
  const runs = await client.listAgentExecutions(agent.id, { limit: 5 });
  await client.deleteAgent(agent.id);
  client.close();
  return names + stats.fork_count + runs.items.length + started.task_id.length;
}

// @ts-expect-error: an owner is "me", "org:<id>" or "project:<id>"
createClient({ url: "", token: "" }).listPrompts({ owner: "team" });
// @ts-expect-error: an agent's body names its template
createClient({ url: "", token: "" }).createAgent({ name: "a" });

// Reasoning: asked in the settings, kept apart from the text on the handle and in the store.
export async function reasoning(url: string, token: string): Promise<string> {
  const client = createClient({ url, token, io });
  const handle = client.execute({ model: "simulated/demo", settings: { reasoning: { effort: "high", budget_tokens: 64 } } });
  handle.listen((kind, value) => {
    if (kind === "reasoning") console.log(value.seq, value.text);
  });
  const done = await handle.done;
  const thought: string = handle.reasoning;
  const whole: string | null | undefined = done.reasoning;
  const spent: number | undefined = done.usage?.reasoning_tokens;
  const state: PromptrelayState = reducer(undefined, execute({}));
  const resumed = client.subscribe(done.task_id, { afterSeq: 3, text: "", reasoning: thought });
  return `${thought}${whole}${spent}${selectTaskReasoning(state, done.task_id)}${resumed.reasoningPieces.length}`;
}
