// Compiled (never run) by `tsc -p test/types`: the package's .d.ts files describe what an
// application writes, and mistakes in either are type errors.
import { io } from "socket.io-client";
import { createClient, PromptrelayError, type TaskDone } from "promptrelay-client";
import {
  createMiddleware, execute, reducer, selectRunMessages, selectTaskText, type PromptrelayState,
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
