import type { Middleware, UnknownAction } from "redux";
import type { ErrorBody, ExecuteRequest, RunView, TaskDone, ToolResultAck } from "../protocol.js";
import type { Client, TaskHandle, TaskStatus, ToolCallStream } from "./index.js";

export interface TaskState {
  taskId: string;
  runId: string | null;
  requestId: string | null;
  /** The user message that asked for this answer. */
  prompt: { role: "user"; content: string }[];
  status: TaskStatus;
  text: string;
  /** The model's reasoning so far, kept apart from `text` ("" when none). */
  reasoning: string;
  lastSeq: number;
  /** The task's task_done; null until it came (and for a task loaded with `loadRun`). */
  done: TaskDone | null;
  error: ErrorBody | null;
  /** The tool calls this task's answer asked for, as written so far. */
  toolCalls: ToolCallStream[];
  /** The results sent (by `toolResult`), by call id. */
  toolResults: Record<string, string>;
}
export interface RunState {
  runId: string;
  /** Known once the run was loaded (`loadRun`). */
  title?: string | null;
  taskIds: string[];
}
export interface PromptrelayState {
  tasks: Record<string, TaskState>;
  runs: Record<string, RunState>;
  /** Executes that never started (error ack), by request_id. */
  failures: Record<string, ErrorBody>;
}
/** A conversation step: a user message, an answer (with the tool calls it asked for), or a
 * tool result sent for one of them. */
export interface RunMessage {
  role: "user" | "assistant" | "tool";
  content: string;
  taskId?: string;
  status?: TaskStatus;
  /** An answer's reasoning, when it has any. */
  reasoning?: string;
  toolCalls?: ToolCallStream[];
  callId?: string;
  name?: string;
}

/** A plain object type (not an interface), so it is a Redux `UnknownAction` as well. */
export type Action<T extends string = string, P = unknown> = {
  type: T;
  payload: P;
};

// The actions the middleware answers are interfaces, not plain `UnknownAction`s: so the
// store's dispatch (Redux Toolkit's, thunk included, with `.concat(createMiddleware(...))`)
// picks the middleware's return type for them rather than "returns the action".
interface MiddlewareAction<T extends string, P> {
  type: T;
  payload: P;
}
export interface ExecuteAction extends MiddlewareAction<"promptrelay/execute", { request: ExecuteRequest }> {}
export interface CancelAction extends MiddlewareAction<"promptrelay/cancel", { taskId: string }> {}
export interface FollowAction extends MiddlewareAction<"promptrelay/follow", { taskId: string; afterSeq: number; text: string; reasoning: string }> {}
export interface ToolResultAction extends MiddlewareAction<"promptrelay/toolResult", { taskId: string; callId: string; output: string }> {}
export interface LoadRunAction extends MiddlewareAction<"promptrelay/loadRun", { runId: string }> {}

/** What the middleware adds to `dispatch`: the store's `dispatch` (Redux Toolkit's
 * `configureStore` infers it) returns these for the binding's actions. */
export interface PromptrelayDispatch {
  (action: ExecuteAction): TaskHandle;
  (action: FollowAction): TaskHandle;
  (action: CancelAction): Promise<TaskStatus | null>;
  (action: LoadRunAction): Promise<RunView>;
  (action: ToolResultAction): Promise<ToolResultAck>;
}

export const initialState: PromptrelayState;
export function reducer(
  state: PromptrelayState | undefined,
  action: UnknownAction | ExecuteAction | CancelAction | FollowAction | LoadRunAction | ToolResultAction,
): PromptrelayState;
/** Redux middleware: `dispatch(execute(...))` returns the TaskHandle, `dispatch(loadRun(id))`
 * a promise of the run. */
export function createMiddleware(client: Client): Middleware<PromptrelayDispatch>;

export function execute(request: ExecuteRequest): ExecuteAction;
export function cancel(taskId: string): CancelAction;
/** Follow a task from `afterSeq` on, `text` and `reasoning` being what the caller holds up to it. */
export function follow(taskId: string, afterSeq?: number, text?: string, reasoning?: string): FollowAction;
/** Load a past conversation (`GET /v1/runs/{id}`) into the store, for a sidebar. */
export function loadRun(runId: string): LoadRunAction;
/** Send a tool call's result (and keep it in the store); resolves to the ack. */
export function toolResult(taskId: string, callId: string, output: string): ToolResultAction;
export function runLoaded(run: RunView): Action<"promptrelay/runLoaded", RunView>;
export function taskStarted(p: { taskId: string; runId?: string | null; status?: TaskStatus; requestId?: string | null; request?: ExecuteRequest | null; lastSeq?: number; text?: string; reasoning?: string }): Action;
export function taskChunk(p: { taskId: string; seq: number; text: string }): Action;
/** A piece of the task's reasoning, in the task's one sequence with its chunks. */
export function taskReasoning(p: { taskId: string; seq: number; text: string }): Action;
export function taskDone(p: TaskDone): Action;
export function taskFailed(p: { taskId?: string | null; requestId?: string | null; error: ErrorBody }): Action;

export const EXECUTE: "promptrelay/execute";
export const CANCEL: "promptrelay/cancel";
export const FOLLOW: "promptrelay/follow";
export const TASK_STARTED: "promptrelay/taskStarted";
export const TASK_CHUNK: "promptrelay/taskChunk";
export const TASK_DONE: "promptrelay/taskDone";
export const TASK_FAILED: "promptrelay/taskFailed";
export const LOAD_RUN: "promptrelay/loadRun";
export const RUN_LOADED: "promptrelay/runLoaded";
export const TASK_TOOL_CALL: "promptrelay/taskToolCall";
export const TOOL_RESULT: "promptrelay/toolResult";
export const TOOL_RESULT_SENT: "promptrelay/toolResultSent";
export const TASK_REASONING: "promptrelay/taskReasoning";

type Root = PromptrelayState | { promptrelay: PromptrelayState };
export function selectTask(state: Root, taskId: string): TaskState | undefined;
export function selectTaskText(state: Root, taskId: string): string;
/** The task's reasoning so far, apart from its text ("" when none). */
export function selectTaskReasoning(state: Root, taskId: string): string;
export function selectTaskStatus(state: Root, taskId: string): TaskStatus | undefined;
export function selectFailure(state: Root, requestId: string): ErrorBody | undefined;
export function makeSelectRunMessages(): (state: Root, runId: string) => RunMessage[];
export const selectRunMessages: (state: Root, runId: string) => RunMessage[];
export type { TaskHandle };
