// Errors with the server's stable codes (see ErrorCode in ../protocol.d.ts).

/** Codes worth retrying later: the same request may succeed then. */
const RETRYABLE = new Set(["rate_limited", "run_busy", "provider_unavailable", "service_unavailable", "timeout", "internal"]);

export class PromptrelayError extends Error {
  constructor(code, message, details = null) {
    super(message || code);
    this.name = "PromptrelayError";
    this.code = code;
    this.details = details;
  }

  get retryable() {
    return RETRYABLE.has(this.code);
  }

  /** From an error ack's or HTTP body's `error`, or a connect_error's `data`. */
  static from(body) {
    const error = body && typeof body === "object" ? body : {};
    return new PromptrelayError(
      typeof error.code === "string" ? error.code : "internal",
      typeof error.message === "string" ? error.message : "unknown error",
      error.details ?? null,
    );
  }
}

/** The client gave up: closed, or no answer within the ack timeout after every retry. */
export class ClientClosedError extends PromptrelayError {
  constructor(message = "the client was closed") {
    super("client_closed", message);
    this.name = "ClientClosedError";
  }
}
