// The promptrelay client: one Socket.IO connection, any number of tasks, and the hard
// parts of the protocol done once: chunks that arrive before the execute ack, repeats and
// gaps, resubscribing after a reconnect or a draining node, idempotent retries of execute.

import { ClientClosedError, PromptrelayError } from "./errors.js";
import { libraryMethods } from "./library.js";
import { TaskHandle } from "./task.js";

const DEFAULTS = { ackTimeoutMs: 20000, executeAttempts: 5, reconnectionDelayMax: 2000, rateLimitRetries: 4 };
// The longest wait a rate_limited retry_after_ms is honoured for.
const RETRY_AFTER_MAX_MS = 30000;
// An execute this big may be dropped with its connection by the server's transport (past
// twice MAX_PAYLOAD_BYTES, which is at least 1024, plus 64 KiB) instead of being answered.
const TRANSPORT_LIMIT_FLOOR = 2 * 1024 + 64 * 1024;
// How many ended tasks the client still recognises (for their anomalies); the oldest goes first.
const ENDED_KEPT = 100;

function newRequestId() {
  const crypto = globalThis.crypto;
  // randomUUID exists only in secure contexts (https, localhost); a page on plain http
  // elsewhere still has getRandomValues.
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function loadIo(given) {
  if (given) return given;
  if (typeof globalThis.io === "function") return globalThis.io; // the browser bundle
  try {
    const module = await import("socket.io-client");
    return module.io;
  } catch (err) {
    // A package installed as a link (`npm install ../path`) resolves its dependencies from
    // its own folder, where npm installed none.
    throw new PromptrelayError("unavailable", "socket.io-client cannot be imported: install this package with "
      + "`npm install --install-links <folder>` or from its `npm pack` tarball, or pass `io` to createClient "
      + `(${err?.code || err})`);
  }
}

/** createClient({url, token}) -> Client. `token`: a string, or a function (sync or async)
 * returning one, asked at every connect and reconnect. `io` may be passed (else the global or the package). */
export function createClient(options) {
  return new Client(options);
}

export class Client {
  constructor({ url, token, io = null, socketOptions = {}, runsChanged = false, ...rest }) {
    this.options = { ...DEFAULTS, ...rest };
    this.url = url;
    this.token = token;
    this.authError = null; // a PromptrelayError once no valid token is left
    this._sentToken = null;
    this._refusedToken = null;
    this._sessionEnded = null;
    this.runsChanged = runsChanged === true;
    this.socket = null;
    this.closed = false;
    this.live = new Map(); // task_id -> handle, until task_done
    // The last tasks that ended, so what the server still sends for them is on record
    // (handle.anomalies, "after_done") instead of silently dropped.
    this.ended = new Map();
    this.early = new Map(); // task_id -> events that came before their execute ack
    this.pendingExecutes = 0;
    this.connects = 0;
    // What the client absorbed for the application (for tests and diagnostics).
    this.stats = { early: 0, repeats: 0, gaps: 0, resubscribes: 0, executeRetries: 0, rateLimited: 0 };
    this._listeners = new Map();
    this._waiters = new Set();
    const make = (ioFn) => this._open(ioFn, socketOptions);
    const ready = typeof io === "function" ? make(io)
      : typeof globalThis.io === "function" ? make(globalThis.io) : null;
    this.ready = ready ? Promise.resolve(ready) : loadIo(null).then(make);
    this.ready.catch(() => {});
  }

  /** on("connect" | "disconnect" | "connect_error" | "draining" | "runs_changed" | "auth_error", fn) */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this._listeners.get(event).delete(fn);
  }

  _emit(event, ...args) {
    for (const fn of this._listeners.get(event) || []) fn(...args);
  }

  _open(ioFn, socketOptions) {
    const url = this.url;
    const socket = (url ? ioFn.bind(null, url) : ioFn)({
      // Asked at every connect, so a token provider gives a fresh token to each reconnect.
      auth: (give) => { this._auth().then(give); },
      reconnectionDelayMax: this.options.reconnectionDelayMax,
      forceNew: true,
      ...socketOptions,
    });
    this.socket = socket;
    socket.on("connect", () => this._onConnect());
    socket.on("disconnect", (reason) => this._onDisconnect(socket, reason));
    socket.on("session_ended", (body) => { this._sessionEnded = PromptrelayError.from(body); });
    socket.on("connect_error", (err) => this._onConnectError(err));
    socket.on("task_chunk", (chunk) => this._route("task_chunk", chunk));
    socket.on("task_tool_call", (piece) => this._route("task_tool_call", piece));
    socket.on("task_reasoning", (piece) => this._route("task_reasoning", piece));
    socket.on("task_done", (done) => this._route("task_done", done));
    socket.on("server_draining", () => this._onDraining());
    socket.on("runs_changed", (change) => this._emit("runs_changed", change));
    return socket;
  }

  async _auth() {
    let token = this._sentToken;
    if (typeof this.token === "function") {
      try {
        token = String(await this.token());
      } catch (err) {
        this._authFailed(new PromptrelayError("unauthorized", `the token provider failed: ${err?.message || err}`));
      }
    } else {
      token = this.token;
    }
    if (token === this._refusedToken) {
      this._authFailed(new PromptrelayError("unauthorized", "the token provider gave the refused token"));
    }
    this._sentToken = token;
    // runs_changed is sent only to sockets that ask for it
    return this.runsChanged ? { token, runs_changed: true } : { token };
  }

  _onDisconnect(socket, reason) {
    const ended = this._sessionEnded;
    this._sessionEnded = null;
    if (ended && !this.closed) {
      // Ended for authentication: the server will not take this token again.
      this._refusedToken = this._sentToken;
      if (typeof this.token === "function") socket.connect();
      else this._authFailed(ended);
    }
    this._emit("disconnect", reason, socket.active);
  }

  /** No valid token: every pending task and call settles with `error`, reported once. */
  _authFailed(error) {
    if (this.authError) return;
    this.authError = error;
    this._failAll(error);
    if (this.socket) this.socket.disconnect(); // no more reconnects with a refused token
    this._emit("auth_error", error);
  }

  _onConnect() {
    this.connects += 1;
    for (const wake of this._waiters) wake();
    this._waiters.clear();
    // After a reconnect (or a draining node), pick every live task up where it was.
    if (this.connects > 1) for (const handle of this.live.values()) this._resubscribe(handle);
    this._emit("connect", { reconnected: this.connects > 1 });
  }

  _onConnectError(err) {
    const data = err && err.data;
    if (data && data.code) {
      // Refused by the server (bad token, too many connections): it will not retry.
      const error = PromptrelayError.from(data);
      this._emit("connect_error", error);
      if (error.code === "unauthorized") {
        this._refusedToken = this._sentToken;
        this._authFailed(error);
      } else if (!this.socket.active) this._failAll(error);
      return;
    }
    this._emit("connect_error", new PromptrelayError("unavailable", err?.message || "cannot connect"));
  }

  _onDraining() {
    // The node is shutting down: reconnect now (the load balancer picks another node);
    // the reconnect resubscribes every live task after its last seq.
    this._emit("draining");
    const engine = this.socket.io.engine;
    if (engine) engine.close();
  }

  _route(name, payload) {
    const handle = this.live.get(payload.task_id);
    if (handle) {
      name === "task_done" ? this._finish(handle, payload) : handle._chunk(payload, name);
      return;
    }
    const ended = this.ended.get(payload.task_id);
    if (ended) {
      name === "task_done" ? ended._done(payload) : ended._chunk(payload, name);
      return;
    }
    // The server subscribes the socket before it answers execute, so events may come first.
    if (this.pendingExecutes > 0) {
      this.stats.early += 1;
      const queue = this.early.get(payload.task_id) || [];
      queue.push([name, payload]);
      this.early.set(payload.task_id, queue);
    }
  }

  _finish(handle, done) {
    this.live.delete(handle.taskId);
    this.ended.set(handle.taskId, handle);
    if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.keys().next().value);
    handle._done(done);
  }

  _failAll(error) {
    for (const handle of this.live.values()) handle._fail(error);
    this.live.clear();
    for (const wake of this._waiters) wake();
    this._waiters.clear();
  }

  async _connected() {
    const socket = await this.ready;
    while (!socket.connected) {
      if (this.closed) throw new ClientClosedError();
      if (this.authError) throw this.authError;
      if (!socket.active) throw new PromptrelayError("unauthorized", "the server refused the connection");
      await new Promise((resolve) => this._waiters.add(resolve));
    }
    return socket;
  }

  /** The ack, null when the connection dropped or no ack came (the caller retries), or the
   * error. `rate_limited` with `retry_after_ms` is sent again after that wait, at most
   * `rateLimitRetries` times (an execute is safe to repeat: its request_id). */
  async _call(event, payload) {
    for (let retry = 0; ; retry += 1) {
      try {
        return await this._callOnce(event, payload);
      } catch (err) {
        const wait = err?.details?.retry_after_ms;
        if (err?.code !== "rate_limited" || !Number.isInteger(wait) || retry >= this.options.rateLimitRetries) throw err;
        this.stats.rateLimited += 1;
        await new Promise((resolve) => setTimeout(resolve, Math.min(wait, RETRY_AFTER_MAX_MS)));
      }
    }
  }

  async _callOnce(event, payload) {
    const socket = await this._connected();
    let ack;
    try {
      ack = await socket.timeout(this.options.ackTimeoutMs).emitWithAck(event, payload);
    } catch (err) {
      return null; // disconnected or timed out: the caller decides whether to retry
    }
    if (!ack || ack.ok !== true) throw PromptrelayError.from(ack && ack.error);
    return ack;
  }

  /** Start a task; returns its handle at once. A request_id is added if missing, so the
   * retries this client makes after a lost connection never run the request twice. */
  execute(request) {
    const payload = { ...request, request_id: request.request_id || newRequestId() };
    const handle = new TaskHandle(this, payload.request_id);
    this._execute(handle, payload);
    return handle;
  }

  async _execute(handle, payload) {
    this.pendingExecutes += 1;
    const large = new TextEncoder().encode(JSON.stringify(payload)).length >= TRANSPORT_LIMIT_FLOOR;
    let dropped = 0;
    try {
      for (let attempt = 1; ; attempt += 1) {
        const connects = this.connects;
        const ack = await this._call("execute", payload);
        if (ack) {
          this._adopt(handle, ack);
          return;
        }
        if (large && (!this.socket.connected || this.connects !== connects)) dropped += 1;
        if (dropped >= 2) {
          // The connection fell with this payload, twice: the transport refused its size.
          throw new PromptrelayError("payload_too_large", "the server closed the connection on this payload");
        }
        if (attempt >= this.options.executeAttempts) {
          throw new PromptrelayError("timeout", "no answer to execute from the server");
        }
        this.stats.executeRetries += 1;
      }
    } catch (err) {
      handle._fail(err instanceof PromptrelayError ? err : PromptrelayError.from(null));
    } finally {
      this.pendingExecutes -= 1;
      if (this.pendingExecutes === 0) this.early.clear();
    }
  }

  _adopt(handle, ack) {
    handle._start(ack);
    this.live.set(ack.task_id, handle);
    const queued = this.early.get(ack.task_id) || [];
    this.early.delete(ack.task_id);
    for (const [name, payload] of queued) this._route(name, payload);
  }

  /** Follow a task started elsewhere (another tab, a server job, an earlier page). `afterSeq`,
   * `text` and `reasoning`: what the caller already has (e.g. kept across a reload). */
  subscribe(taskId, { afterSeq = 0, text = "", reasoning = "" } = {}) {
    const existing = this.live.get(taskId);
    if (existing) return existing;
    const handle = new TaskHandle(this);
    handle.taskId = taskId;
    handle.lastSeq = afterSeq;
    handle.text = text;
    handle.reasoning = reasoning;
    this.live.set(taskId, handle);
    this._resubscribe(handle).then((ack) => ack && handle._start({ task_id: taskId, ...ack }));
    return handle;
  }

  async _resubscribe(handle) {
    for (let attempt = 1; attempt <= this.options.executeAttempts; attempt += 1) {
      if (handle.result || handle.error) return null;
      this.stats.resubscribes += 1;
      try {
        const ack = await this._call("subscribe", { task_id: handle.taskId, after_seq: handle.lastSeq });
        if (ack) return ack;
      } catch (err) {
        this.live.delete(handle.taskId);
        handle._fail(err);
        return null;
      }
    }
    return null; // still disconnected: the next connect resubscribes again
  }

  async _cancel(taskId) {
    const ack = await this._call("cancel", { task_id: taskId });
    if (!ack) throw new PromptrelayError("timeout", "no answer to cancel from the server");
    return ack.status;
  }

  /** Stop following a task (it goes on running on the server). */
  async unsubscribe(taskId) {
    this.live.delete(taskId);
    await this._call("unsubscribe", { task_id: taskId });
  }

  /** Send one tool call's result (docs/tools.md); the ack names the continuation
   * (`next_task_id`) and the step's calls still `pending`. */
  async toolResult(taskId, callId, output) {
    const ack = await this._call("tool_result", { task_id: taskId, call_id: callId, output });
    if (!ack) throw new PromptrelayError("timeout", "no answer to tool_result from the server");
    return ack;
  }

  /** `GET /v1/runs/{id}`: a past conversation with its messages and tasks. */
  async getRun(runId) {
    return this._http(`/v1/runs/${encodeURIComponent(runId)}`);
  }

  /** One HTTP call with the client's token: the answer's JSON (null for 204), or its
   * error as a PromptrelayError. */
  async _http(path, { method = "GET", body } = {}) {
    const token = typeof this.token === "function" ? await this.token() : this.token;
    const base = this.url || globalThis.location?.origin;
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(new URL(path, base), {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new PromptrelayError("unavailable", `cannot reach the server: ${err?.message || err}`);
    }
    const answer = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw PromptrelayError.from(answer && answer.error);
    return answer;
  }

  close() {
    this.closed = true;
    this._failAll(new ClientClosedError());
    this.ready.then((socket) => socket.disconnect(), () => {});
  }
}

// The prompt library, template gallery, organization and agent routes (src/library.js).
Object.assign(Client.prototype, libraryMethods);
