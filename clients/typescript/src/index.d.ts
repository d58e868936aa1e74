import type {
  AgentCreate, AgentExecutionPage, AgentPage, AgentTemplateCreate, AgentTemplatePage, AgentTemplateView,
  AgentUpdate, AgentView, ErrorBody, ExecuteAck, ExecuteRequest, ExecutionAccepted, ForkBody, OrgCreate,
  OrgCreated, OrgPage, PromptCreate, PromptPage, PromptUpdate, PromptView, RunsChanged, RunView,
  SubscribeAck, TaskDone, TemplatePage, TemplatePublish, TemplateStats, TemplateView, ToolResultAck,
} from "../protocol.js";

export type { ExecuteRequest, TaskDone } from "../protocol.js";
export type ErrorCode = ErrorBody["code"];
export type TaskStatus = ExecuteAck["status"];

/** An error with one of the server's stable codes, or `client_closed` / `unavailable`. */
export class PromptrelayError extends Error {
  readonly code: ErrorCode | "client_closed" | "unavailable";
  readonly details: Record<string, unknown> | null;
  /** True for codes where the same request may succeed later. */
  readonly retryable: boolean;
  static from(body: unknown): PromptrelayError;
}
export class ClientClosedError extends PromptrelayError {}

export interface Chunk {
  seq: number;
  text: string;
}

/** A tool call as the model writes it: `arguments` is the argument text so far (the parsed
 * call comes in task_done's `tool_calls`). */
export interface ToolCallStream {
  callId: string;
  index: number;
  name: string;
  arguments: string;
}
/** One `task_tool_call` event, numbered in the task's sequence with the chunks. */
export interface ToolCallPiece {
  seq: number;
  callId: string;
  index: number;
  name: string;
  delta: string;
}

/** A piece of the model's reasoning (`task_reasoning`), never part of the text. */
export interface ReasoningPiece {
  seq: number;
  text: string;
}

export type TaskEvent =
  | ["chunk", Chunk]
  | ["reasoning", ReasoningPiece]
  | ["tool_call", ToolCallPiece]
  | ["done", TaskDone]
  | ["error", PromptrelayError];

/** Something the server sent out of order, kept on record as the client repaired it:
 * a chunk it already held (`repeat`), one past a gap (`gap`; the client asked again), one
 * after `task_done` (`after_done`), or a `task_done` whose text had chunks that never came
 * (`missing`). `held` is the task's `lastSeq` at that moment. */
export interface Anomaly {
  kind: "repeat" | "gap" | "after_done" | "missing";
  seq: number;
  held: number;
}

/** One task: iterate it for chunks (in seq order, no gap, no repeat). */
export class TaskHandle implements AsyncIterable<Chunk> {
  readonly requestId: string | null;
  readonly taskId: string | null;
  readonly runId: string | null;
  /** The text so far (the whole text once done). */
  readonly text: string;
  readonly lastSeq: number;
  readonly chunks: readonly Chunk[];
  /** Tool calls the model wrote, by call_id in order of arrival. */
  readonly toolCalls: Readonly<Record<string, ToolCallStream>>;
  readonly toolPieces: readonly ToolCallPiece[];
  /** The model's reasoning so far (the whole of it once done), apart from `text`; "" when none. */
  readonly reasoning: string;
  readonly reasoningPieces: readonly ReasoningPiece[];
  readonly anomalies: readonly Anomaly[];
  readonly status: TaskStatus | "starting";
  readonly result: TaskDone | null;
  readonly error: PromptrelayError | null;
  /** The execute (or subscribe) ack; rejects with a PromptrelayError. */
  readonly started: Promise<ExecuteAck | (SubscribeAck & { task_id: string })>;
  /** The task's task_done (also when it failed or was cancelled); rejects only when the
   * task could not be started or followed. */
  readonly done: Promise<TaskDone>;
  cancel(): Promise<TaskStatus>;
  listen(fn: (...event: TaskEvent) => void): () => void;
  [Symbol.asyncIterator](): AsyncIterator<Chunk>;
}

export type TokenProvider = () => string | Promise<string>;

export interface ClientOptions {
  /** Server URL; omit in a page served by the server itself. */
  url?: string;
  /** An API key or a JWT, or a function (sync or async) returning one, asked at every
   * connect and reconnect: a connection ended because its JWT expired comes back with a
   * fresh token and every running task resumes after its last seq. */
  token: string | TokenProvider;
  /** socket.io-client's `io` (default: the global `io`, else `import("socket.io-client")`). */
  io?: (...args: any[]) => any;
  /** Passed to `io()` (e.g. `transports`). */
  socketOptions?: Record<string, unknown>;
  ackTimeoutMs?: number;
  executeAttempts?: number;
  /** How many times a call refused `rate_limited` (with `retry_after_ms`) is sent again
   * after the server's wait (default 4; 0: never). */
  rateLimitRetries?: number;
  reconnectionDelayMax?: number;
  /** Hear `runs_changed` (a conversation sidebar): the client's `runs_changed` event. */
  runsChanged?: boolean;
}

export interface ClientEvents {
  connect: (info: { reconnected: boolean }) => void;
  disconnect: (reason: string, willReconnect: boolean) => void;
  connect_error: (error: PromptrelayError) => void;
  draining: () => void;
  /** No valid token is left (a token refused, or ended by the server with no fresh one):
   * every pending task and call has settled with this error. Sent once. */
  auth_error: (error: PromptrelayError) => void;
  /** Only with `runsChanged: true`. */
  runs_changed: (change: RunsChanged) => void;
}

export class Client {
  readonly socket: any;
  /** Tasks followed until their task_done, by task_id. */
  readonly live: Map<string, TaskHandle>;
  readonly ready: Promise<any>;
  /** Set once no valid token is left; later calls fail with it. */
  readonly authError: PromptrelayError | null;
  on<E extends keyof ClientEvents>(event: E, fn: ClientEvents[E]): () => void;
  /** Start a task. A `request_id` is added when missing; retries reuse it. */
  execute(request: ExecuteRequest): TaskHandle;
  /** Follow a task started elsewhere, from `afterSeq` on (with the `text` and `reasoning`
   * already held). */
  subscribe(taskId: string, options?: { afterSeq?: number; text?: string; reasoning?: string }): TaskHandle;
  unsubscribe(taskId: string): Promise<void>;
  /** `GET /v1/runs/{id}`: a past conversation with its messages and tasks. */
  getRun(runId: string): Promise<RunView>;
  /** Send one tool call's result; the ack names the continuation and the calls pending. */
  toolResult(taskId: string, callId: string, output: string): Promise<ToolResultAck>;
  close(): void;

  // The library, gallery, organization and agent routes (docs/clients.md "Library and agents").
  /** `GET /v1/prompts`: every prompt the caller may read, newest first, one page. */
  listPrompts(filters?: PromptFilters): Promise<PromptPage>;
  createPrompt(body: PromptCreate): Promise<PromptView>;
  /** At its latest version, or at `version`. */
  getPrompt(promptId: string, version?: number): Promise<PromptView>;
  /** Writes a new version. */
  updatePrompt(promptId: string, body: PromptUpdate): Promise<PromptView>;
  /** Make `version` the one `execute` runs unpinned. */
  publishPrompt(promptId: string, version: number): Promise<PromptView>;
  archivePrompt(promptId: string): Promise<PromptView>;
  deletePrompt(promptId: string): Promise<null>;
  /** `GET /v1/templates`: the public gallery, searched and filtered. */
  listTemplates(filters?: TemplateFilters): Promise<TemplatePage>;
  getTemplate(templateId: string): Promise<TemplateView>;
  /** A new draft prompt copied from the template's current version. */
  forkTemplate(templateId: string, body?: ForkBody): Promise<PromptView>;
  /** Publish (or re-point) a version of a prompt the caller administers as a public template. */
  publishTemplate(promptId: string, version: number, body?: TemplatePublish): Promise<TemplateStats>;
  unpublishTemplate(promptId: string): Promise<null>;
  /** The prompt's template with its fork and run counts (admins of the prompt only). */
  templateStats(promptId: string): Promise<TemplateStats>;
  createOrg(body: OrgCreate): Promise<OrgCreated>;
  listOrgs(paging?: Paging): Promise<OrgPage>;
  createAgentTemplate(body: AgentTemplateCreate): Promise<AgentTemplateView>;
  listAgentTemplates(paging?: Paging): Promise<AgentTemplatePage>;
  getAgentTemplate(templateId: string): Promise<AgentTemplateView>;
  createAgent(body: AgentCreate): Promise<AgentView>;
  listAgents(paging?: Paging): Promise<AgentPage>;
  getAgent(agentId: string): Promise<AgentView>;
  updateAgent(agentId: string, body: AgentUpdate): Promise<AgentView>;
  deleteAgent(agentId: string): Promise<null>;
  /** Start the agent's task; answers at once. `subscribe(task_id)` streams it. */
  runAgent(agentId: string, request?: Omit<ExecuteRequest, "agent_id">): Promise<ExecutionAccepted>;
  listAgentExecutions(agentId: string, paging?: Paging): Promise<AgentExecutionPage>;
}

export interface Paging {
  /** 1 to 200 (default 50). */
  limit?: number;
  /** The `next_cursor` of the page before. */
  cursor?: string | null;
}

/** Whose prompts: the caller's own, an organization's, or a project's. */
export type PromptOwner = "me" | `org:${string}` | `project:${string}`;

export interface PromptFilters extends Paging {
  owner?: PromptOwner;
  status?: PromptView["status"];
  tag?: string;
  /** Searches name and description. */
  q?: string;
}

export interface TemplateFilters extends Paging {
  /** Searches name and description. */
  q?: string;
  tag?: string;
  category?: string;
}

/** Every item of a paged list: `for await (const p of eachItem((cursor) => client.listPrompts({ cursor })))`. */
export function eachItem<T>(
  fetchPage: (cursor: string | null) => Promise<{ items: T[]; next_cursor: string | null }>,
): AsyncGenerator<T, void, undefined>;

export function createClient(options: ClientOptions): Client;
