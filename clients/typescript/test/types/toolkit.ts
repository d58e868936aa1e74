// Compiled (never run) by `tsc -p test/types`: the Redux binding as Redux Toolkit users
// write it, with the store's own dispatch and state types.
import { configureStore } from "@reduxjs/toolkit";
import { createClient, type TaskHandle } from "promptrelay-client";
import {
  createMiddleware, execute, follow, loadRun, reducer, selectRunMessages, selectTaskText,
} from "promptrelay-client/redux";

const client = createClient({ url: "http://localhost:8080", token: async () => "a fresh token" });
export const store = configureStore({
  reducer: { promptrelay: reducer },
  middleware: (getDefault) => getDefault().concat(createMiddleware(client)),
});
export type RootState = ReturnType<typeof store.getState>;
export type AppDispatch = typeof store.dispatch;

export async function send(content: string): Promise<string> {
  const handle: TaskHandle = store.dispatch(execute({ messages: [{ role: "user", content }], model: "simulated/demo" }));
  const done = await handle.done;
  const followed: TaskHandle = store.dispatch(follow(done.task_id, 3));
  const state: RootState = store.getState();
  const messages = selectRunMessages(state, done.run_id ?? "");
  await store.dispatch(loadRun(done.run_id ?? "")).catch(() => null);
  return `${selectTaskText(state, done.task_id)}${messages.length}${followed.lastSeq}`;
}

// The store's dispatch is typed by the middleware: neither `unknown` nor `any`.
// @ts-expect-error: dispatch(execute(...)) is a TaskHandle, not a string
export const wrong: string = store.dispatch(execute({ model: "simulated/demo", messages: [] }));
// @ts-expect-error: dispatch(loadRun(...)) is a promise of the run
export const notARun: number = store.dispatch(loadRun("run"));
