// One task as the client sees it: chunks in seq order with no gap and no repeat, the text
// so far, the reasoning so far (apart from the text), and the final task_done. Fed by the
// client; read by the application.

export class TaskHandle {
  constructor(client, requestId = null) {
    this.client = client;
    this.requestId = requestId;
    this.taskId = null;
    this.runId = null;
    this.lastSeq = 0;
    this.text = "";
    this.result = null; // the task_done payload once it arrived
    this.error = null; // a PromptrelayError when the task could not be started or followed
    this.chunks = [];
    // Tool calls as the model writes them (task_tool_call), by call_id in order of arrival:
    // { callId, index, name, arguments } with `arguments` the argument text so far.
    this.toolCalls = {};
    this.toolPieces = []; // each task_tool_call kept: { seq, callId, index, name, delta }
    // The model's reasoning (task_reasoning), never part of `text`: the text so far and
    // each piece { seq, text }, in the task's one sequence with the chunks.
    this.reasoning = "";
    this.reasoningPieces = [];
    // What the server sent out of order, kept on record as the client repaired it:
    // { kind: "repeat" | "gap" | "after_done" | "missing", seq, held } (held: lastSeq then).
    this.anomalies = [];
    this._listeners = new Set();
    this._resyncing = false;
    this.started = new Promise((resolve, reject) => {
      this._resolveStarted = resolve;
      this._rejectStarted = reject;
    });
    this.done = new Promise((resolve, reject) => {
      this._resolveDone = resolve;
      this._rejectDone = reject;
    });
    // Either promise may go unobserved (an app that only iterates); never an unhandled rejection.
    this.started.catch(() => {});
    this.done.catch(() => {});
  }

  get status() {
    if (this.result) return this.result.status;
    if (this.error) return "failed";
    return this.taskId ? "running" : "starting";
  }

  /** Called with ("chunk", chunk), ("reasoning", piece), ("tool_call", call), ("done", taskDone)
   * or ("error", error); returns an unsubscriber. */
  listen(fn) {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  }

  async cancel() {
    await this.started;
    if (this.result) return this.result.status;
    return this.client._cancel(this.taskId);
  }

  [Symbol.asyncIterator]() {
    let index = 0;
    let wake = null;
    const stop = this.listen(() => wake && wake());
    return {
      next: async () => {
        for (;;) {
          if (index < this.chunks.length) return { value: this.chunks[index++], done: false };
          if (this.error) { stop(); throw this.error; }
          if (this.result) { stop(); return { value: undefined, done: true }; }
          await new Promise((resolve) => { wake = resolve; });
          wake = null;
        }
      },
      return: async () => { stop(); return { value: undefined, done: true }; },
      [Symbol.asyncIterator]() { return this; },
    };
  }

  _emit(kind, value) {
    for (const fn of [...this._listeners]) fn(kind, value);
  }

  _start(ack) {
    this.taskId = ack.task_id;
    this.runId = ack.run_id ?? this.runId;
    this._resolveStarted(ack);
  }

  /** A task_chunk, task_reasoning or task_tool_call (`kind`, the event's name; one
   * sequence): kept if it is the next seq; a repeat is dropped; a gap asks again. */
  _chunk(chunk, kind = "task_chunk") {
    if (this.result || chunk.seq <= this.lastSeq) {
      this._anomaly(this.result ? "after_done" : "repeat", chunk.seq);
      this.client.stats.repeats += 1;
      return;
    }
    if (chunk.seq !== this.lastSeq + 1) {
      this._anomaly("gap", chunk.seq);
      if (!this._resyncing) {
        this.client.stats.gaps += 1;
        this._resyncing = true;
        this.client._resubscribe(this).finally(() => { this._resyncing = false; });
      }
      return;
    }
    this.lastSeq = chunk.seq;
    if (kind === "task_reasoning") {
      this._addReasoning({ seq: chunk.seq, text: chunk.text });
      return;
    }
    if ("arguments_delta" in chunk) { // a task_tool_call: the same sequence as chunks
      const call = this.toolCalls[chunk.call_id]
        || (this.toolCalls[chunk.call_id] = { callId: chunk.call_id, index: chunk.index, name: chunk.name, arguments: "" });
      call.arguments += chunk.arguments_delta;
      const piece = { seq: chunk.seq, callId: call.callId, index: call.index, name: call.name, delta: chunk.arguments_delta };
      this.toolPieces.push(piece);
      this._emit("tool_call", piece);
      return;
    }
    this.text += chunk.text;
    const kept = { seq: chunk.seq, text: chunk.text };
    this.chunks.push(kept);
    this._emit("chunk", kept);
  }

  _done(done) {
    if (this.result) {
      this._anomaly("after_done", done.last_seq);
      return;
    }
    const reasoning = done.reasoning ?? "";
    if (done.last_seq !== this.lastSeq || done.text !== this.text || reasoning !== this.reasoning) {
      this._anomaly("missing", done.last_seq);
    }
    // The same for the reasoning: its rest arrives as one last piece.
    if (reasoning.length > this.reasoning.length && reasoning.startsWith(this.reasoning)) {
      this._addReasoning({ seq: done.last_seq, text: reasoning.slice(this.reasoning.length) });
    }
    this.reasoning = reasoning || this.reasoning;
    // task_done carries the whole text: if history had expired before a resume, the rest
    // arrives here as one last chunk, so the chunks always add up to the final text.
    if (done.text.length > this.text.length && done.text.startsWith(this.text)) {
      const rest = { seq: done.last_seq, text: done.text.slice(this.text.length) };
      this.chunks.push(rest);
      this._emit("chunk", rest);
    }
    this.text = done.text;
    this.lastSeq = done.last_seq;
    this.result = done;
    this._resolveDone(done);
    this._emit("done", done);
  }

  _addReasoning(piece) {
    this.reasoning += piece.text;
    this.reasoningPieces.push(piece);
    this._emit("reasoning", piece);
  }

  _anomaly(kind, seq) {
    this.anomalies.push({ kind, seq, held: this.lastSeq });
  }

  _fail(error) {
    if (this.result || this.error) return;
    this.error = error;
    this._rejectStarted(error);
    this._rejectDone(error);
    this._emit("error", error);
  }
}
