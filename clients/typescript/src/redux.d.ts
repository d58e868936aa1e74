import type { ErrorBody, ExecuteRequest, TaskDone } from "../protocol.js";
import type { Client, TaskHandle, TaskStatus } from "./index.js";

export interface TaskState {
  taskId: string;
  runId: string | null;
  requestId: string | null;
  /** The user message that asked for this answer. */
  prompt: { role: "user"; content: string }[];
  status: TaskStatus;
  text: string;
  lastSeq: number;
  done: TaskDone | null;
  error: ErrorBody | null;
}
export interface RunState {
  runId: string;
  taskIds: string[];
}
export interface PromptrelayState {
  tasks: Record<string, TaskState>;
  runs: Record<string, RunState>;
  /** Executes that never started (error ack), by request_id. */
  failures: Record<string, ErrorBody>;
}
export interface RunMessage {
  role: "user" | "assistant";
  content: string;
  taskId?: string;
  status?: TaskStatus;
}

export interface Action<T extends string = string, P = unknown> {
  type: T;
  payload: P;
}

export const initialState: PromptrelayState;
export function reducer(state: PromptrelayState | undefined, action: Action): PromptrelayState;
/** Redux middleware; `dispatch(execute(...))` returns the TaskHandle. */
export function createMiddleware(client: Client): (store: any) => (next: any) => (action: any) => any;

export function execute(request: ExecuteRequest): Action<"promptrelay/execute", { request: ExecuteRequest }>;
export function cancel(taskId: string): Action<"promptrelay/cancel", { taskId: string }>;
export function follow(taskId: string, afterSeq?: number): Action<"promptrelay/follow", { taskId: string; afterSeq: number }>;
export function taskStarted(p: { taskId: string; runId?: string | null; status?: TaskStatus; requestId?: string | null; request?: ExecuteRequest | null }): Action;
export function taskChunk(p: { taskId: string; seq: number; text: string }): Action;
export function taskDone(p: TaskDone): Action;
export function taskFailed(p: { taskId?: string | null; requestId?: string | null; error: ErrorBody }): Action;

export const EXECUTE: "promptrelay/execute";
export const CANCEL: "promptrelay/cancel";
export const FOLLOW: "promptrelay/follow";
export const TASK_STARTED: "promptrelay/taskStarted";
export const TASK_CHUNK: "promptrelay/taskChunk";
export const TASK_DONE: "promptrelay/taskDone";
export const TASK_FAILED: "promptrelay/taskFailed";

type Root = PromptrelayState | { promptrelay: PromptrelayState };
export function selectTask(state: Root, taskId: string): TaskState | undefined;
export function selectTaskText(state: Root, taskId: string): string;
export function selectTaskStatus(state: Root, taskId: string): TaskStatus | undefined;
export function selectFailure(state: Root, requestId: string): ErrorBody | undefined;
export function makeSelectRunMessages(): (state: Root, runId: string) => RunMessage[];
export const selectRunMessages: (state: Root, runId: string) => RunMessage[];
export type { TaskHandle };
