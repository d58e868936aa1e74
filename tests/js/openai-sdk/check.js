// The official `openai` JavaScript SDK, unchanged, pointed at promptrelay's base URL
// (tests/test_openai_compat_js.py starts the server and reads what this prints).
// PROMPTRELAY_URL and PROMPTRELAY_KEY name the server and a key. Each step asserts what
// the SDK gives back; the last line, `RESULT {...}`, carries the completion ids and tool
// calls so the Python side can check them against the stored tasks and the fake provider.
import assert from "node:assert/strict";
import OpenAI from "openai";

const baseURL = `${process.env.PROMPTRELAY_URL}/v1`;
const client = new OpenAI({ baseURL, apiKey: process.env.PROMPTRELAY_KEY, maxRetries: 0 });
const HELLO = [{ role: "user", content: "Hello there" }];
const TOOLS = [
  {
    type: "function",
    function: {
      name: "weather",
      description: "Weather of a city",
      parameters: { type: "object", properties: { city: { type: "string" } } },
    },
  },
  { type: "function", function: { name: "time" } },
];
const result = {};

// 1. Streaming with usage: the text grows chunk by chunk, the usage comes last, alone.
{
  const stream = await client.chat.completions.create({
    model: "simulated/demo",
    messages: HELLO,
    max_tokens: 20,
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  const lengths = [];
  let text = "";
  for await (const chunk of stream) {
    chunks.push(chunk);
    text += chunk.choices[0]?.delta?.content ?? "";
    lengths.push(text.length);
  }
  assert.deepEqual(new Set(chunks.map((c) => c.object)), new Set(["chat.completion.chunk"]));
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  assert.ok(new Set(lengths).size > 5, `the text grew in steps: ${lengths}`);
  assert.equal(text.trim().split(/\s+/).length, 20);
  const finishes = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].finish_reason);
  assert.equal(finishes.at(-1), "stop");
  assert.deepEqual(new Set(finishes.slice(0, -1)), new Set([null]));
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  const { prompt_tokens, completion_tokens, total_tokens } = last.usage;
  assert.deepEqual([prompt_tokens, completion_tokens, total_tokens], [2, 20, 22]);
  assert.equal(last.usage.completion_tokens_details?.reasoning_tokens ?? 0, 0);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage == null), "usage only at the end");
  result.streamed = { id: chunks[0].id, text };
}

// 2. Without streaming.
{
  const answer = await client.chat.completions.create({
    model: "simulated/demo",
    messages: [{ role: "developer", content: "Be brief." }, ...HELLO],
    max_tokens: 12,
  });
  assert.equal(answer.object, "chat.completion");
  assert.equal(answer.model, "simulated/demo");
  assert.equal(answer.choices[0].message.role, "assistant");
  assert.equal(answer.choices[0].finish_reason, "stop");
  assert.equal(answer.usage.completion_tokens, 12);
  result.plain = { id: answer.id, text: answer.choices[0].message.content };
}

// 2b. Reasoning: `reasoning_effort` asks for it; it streams as `delta.reasoning_content`
// (a field the SDK passes through), never in `content`, and is counted in the usage.
{
  const stream = await client.chat.completions.create({
    model: "simulated/demo",
    messages: HELLO,
    max_tokens: 6,
    reasoning_effort: "high",
    stream: true,
    stream_options: { include_usage: true },
  });
  let reasoning = "";
  let text = "";
  let usage = null;
  const order = [];
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta ?? {};
    if (delta.reasoning_content) {
      reasoning += delta.reasoning_content;
      order.push("reasoning");
    }
    if (delta.content) {
      text += delta.content;
      order.push("content");
    }
    usage = chunk.usage ?? usage;
  }
  assert.equal(reasoning.trim().split(/\s+/).length, 16);
  assert.equal(text.trim().split(/\s+/).length, 6);
  assert.equal(order.lastIndexOf("reasoning") < order.indexOf("content"), true, "reasoning first");
  assert.equal(usage.completion_tokens_details.reasoning_tokens, 16);
  assert.equal(usage.completion_tokens, 6 + 16);
  const whole = await client.chat.completions.create({
    model: "simulated/demo", messages: HELLO, max_tokens: 3, reasoning_effort: "low",
  });
  assert.equal(whole.choices[0].message.reasoning_content.trim().split(/\s+/).length, 4);
  assert.equal(whole.usage.completion_tokens_details.reasoning_tokens, 4);
  result.reasoning = { text, reasoning };
}

// 3. A tool call: streamed deltas assembled by index as an application does, and the same
// request through the SDK's own stream helper, whose final message carries the calls.
// Then a second request with the results.
{
  const model = "openai/m~tokens=1~tools=2";
  const stream = await client.chat.completions.create({
    model,
    messages: HELLO,
    tools: TOOLS,
    tool_choice: "auto",
    stream: true,
  });
  const calls = [];
  let text = "";
  let finish = null;
  let id = null;
  for await (const chunk of stream) {
    id ??= chunk.id;
    const choice = chunk.choices[0];
    if (!choice) continue;
    text += choice.delta.content ?? "";
    finish = choice.finish_reason ?? finish;
    for (const piece of choice.delta.tool_calls ?? []) {
      calls[piece.index] ??= { id: "", name: "", arguments: "" };
      const call = calls[piece.index];
      if (piece.id) {
        assert.equal(call.id, "", "the id comes on the first piece only");
        assert.equal(piece.type, "function");
        call.id = piece.id;
        call.name = piece.function.name;
      }
      call.arguments += piece.function?.arguments ?? "";
    }
  }
  assert.equal(text, "tok0 ");
  assert.equal(finish, "tool_calls");
  assert.deepEqual(
    calls.map((c) => c.name),
    ["weather", "time"],
  );
  assert.deepEqual(
    calls.map((c) => JSON.parse(c.arguments)),
    [
      { city: "city0", days: 1 },
      { city: "city1", days: 2 },
    ],
  );

  const helper = client.chat.completions.stream({ model, messages: HELLO, tools: TOOLS });
  const done = [];
  helper.on("tool_calls.function.arguments.done", (e) => done.push(e.name));
  const final = await helper.finalChatCompletion();
  assert.deepEqual(done, ["weather", "time"]);
  const message = final.choices[0].message;
  assert.equal(final.choices[0].finish_reason, "tool_calls");
  assert.deepEqual(
    message.tool_calls.map((c) => [c.type, c.function.name, JSON.parse(c.function.arguments)]),
    [
      ["function", "weather", { city: "city0", days: 1 }],
      ["function", "time", { city: "city1", days: 2 }],
    ],
  );

  const answer = await client.chat.completions.create({
    model,
    tools: TOOLS,
    messages: [
      ...HELLO,
      {
        role: "assistant",
        content: null,
        tool_calls: calls.map((c) => ({
          id: c.id,
          type: "function",
          function: { name: c.name, arguments: c.arguments },
        })),
      },
      ...calls.map((c, i) => ({ role: "tool", tool_call_id: c.id, content: `r${i}` })),
    ],
  });
  assert.equal(answer.choices[0].finish_reason, "stop");
  assert.equal(answer.choices[0].message.content, "tok0 ");
  assert.equal(answer.choices[0].message.tool_calls ?? null, null);
  result.tools = { id, calls, answer: answer.id };
}

// 4. The model list, through the SDK's paging.
{
  const ids = [];
  for await (const model of client.models.list()) {
    assert.equal(model.object, "model");
    ids.push(model.id);
  }
  assert.ok(ids.includes("simulated/demo"), ids.join());
  for (const provider of ["openai/", "anthropic/", "google/"]) {
    assert.ok(
      ids.some((i) => i.startsWith(provider)),
      provider,
    );
  }
  result.models = ids.length;
}

// 5. A bad key: the SDK's AuthenticationError, the body in OpenAI's error shape.
{
  const stranger = new OpenAI({ baseURL, apiKey: "ps_not-a-key", maxRetries: 0 });
  await assert.rejects(
    stranger.chat.completions.create({ model: "simulated/demo", messages: HELLO }),
    (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, `${err.constructor.name}: ${err}`);
      assert.ok(err instanceof OpenAI.APIError);
      assert.equal(err.status, 401);
      assert.equal(err.code, "unauthorized");
      assert.equal(err.param, null);
      assert.equal(typeof err.type, "string");
      assert.deepEqual(Object.keys(err.error).sort(), ["code", "message", "param", "type"]);
      return true;
    },
  );
  await assert.rejects(stranger.models.list(), OpenAI.AuthenticationError);
  result.unauthorized = true;
}

console.log(`RESULT ${JSON.stringify(result)}`);
