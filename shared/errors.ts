/**
 * Error types shared by every tool. Each carries enough context to print a
 * message that says what failed and why.
 *
 * @module
 */

/** Bad command-line input: the tool prints the message and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A frame or field announced a length larger than the decoder's cap. */
export class FrameTooLargeError extends Error {
  constructor(
    /** The length announced on the wire. */
    readonly length: number,
    /** The largest length the decoder accepts. */
    readonly max: number,
    what = "Frame",
  ) {
    super(`${what} of ${length} bytes exceeds the limit of ${max} bytes`);
    this.name = "FrameTooLargeError";
  }
}

/** Input that does not follow the protocol (bad UTF-8, bad JSON, wrong shape). */
export class ProtocolError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

/** The stream ended in the middle of a frame. */
export class UnexpectedEofError extends Error {
  constructor(
    /** Bytes the frame still needed. */
    readonly missing: number,
    what = "frame",
  ) {
    // `what` may bring its own article ("the rest of a request").
    const article = /^(a|an|the) /.test(what) ? "" : "a ";
    super(`Connection closed in the middle of ${article}${what} (${missing} more bytes expected)`);
    this.name = "UnexpectedEofError";
  }
}

/** A wait ran past its deadline. */
export class TimeoutError extends Error {
  constructor(
    /** What was being waited for. */
    readonly what: string,
    /** The deadline, in milliseconds. */
    readonly ms: number,
  ) {
    super(`Timed out after ${ms} ms waiting for ${what}`);
    this.name = "TimeoutError";
  }
}

/** A task threw: the error carries its input and where it ran. */
export class TaskError extends Error {
  constructor(
    /** Name of the task that failed. */
    readonly task: string,
    /** The input the task was running on. */
    readonly input: unknown,
    /** Where it ran, e.g. `thread worker 2 (pid 1234)`. */
    readonly where: string,
    cause: unknown,
  ) {
    super(
      `Task '${task}' failed on input ${safeJson(input)} in ${where}: ${errorMessage(cause)}`,
      { cause },
    );
    this.name = "TaskError";
  }
}

/** A worker or child process ended while it still had work. */
export class WorkerCrashError extends Error {
  constructor(
    /** Where it ran, e.g. `child process 3 (pid 4321)`. */
    readonly where: string,
    detail: string,
  ) {
    super(`${where} died: ${detail}`);
    this.name = "WorkerCrashError";
  }
}

/** Returns `error.message` for errors and a string for anything else thrown. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Plain, serialisable description of an error (for sending across workers and processes). */
export interface ErrorInfo {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  /** The error's own JSON-serialisable fields (`length`, `max`, `where`, `input`, ...). */
  fields?: Record<string, unknown>;
}

// deno-lint-ignore no-explicit-any
type ErrorClass = abstract new (...args: any[]) => Error;

// Classes rebuilt by name on the receiving side, so that `instanceof` holds the
// same in a worker or a child as in this isolate.
const errorClasses = new Map<string, ErrorClass>(
  ([
    Error,
    RangeError,
    TypeError,
    SyntaxError,
    ReferenceError,
    EvalError,
    URIError,
    UsageError,
    FrameTooLargeError,
    ProtocolError,
    UnexpectedEofError,
    TimeoutError,
    TaskError,
    WorkerCrashError,
  ] as ErrorClass[]).map((type) => [type.name, type]),
);

/**
 * Makes errors of `type` keep their class across a worker or a child (the
 * project's errors, the built-in ones and `Deno.errors.*` already do). The
 * class's instances must set `name` to the class name.
 */
export function registerErrorClass(type: ErrorClass): void {
  errorClasses.set(type.name, type);
}

function errorClassNamed(name: string): ErrorClass {
  const known = errorClasses.get(name);
  if (known) return known;
  const denoError = (Deno.errors as unknown as Record<string, ErrorClass | undefined>)[name];
  return typeof denoError === "function" ? denoError : Error;
}

const STANDARD_KEYS = new Set(["name", "message", "stack", "code", "cause"]);

/** Turns any thrown value into an {@linkcode ErrorInfo}. */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(error)) {
      if (STANDARD_KEYS.has(key)) continue;
      try {
        if (JSON.stringify(value) !== undefined) fields[key] = value;
      } catch {
        // Not serialisable: left out.
      }
    }
    return {
      name: error.name,
      message: error.message,
      stack: error.stack,
      ...(typeof code === "string" ? { code } : {}),
      ...(Object.keys(fields).length > 0 ? { fields } : {}),
    };
  }
  return { name: "Error", message: String(error) };
}

/**
 * Rebuilds an Error from an {@linkcode ErrorInfo}, of the same class when the
 * class is known here (built-in errors, `Deno.errors.*`, the project's errors
 * and those given to {@linkcode registerErrorClass}), with its fields.
 */
export function fromErrorInfo(info: ErrorInfo): Error {
  // Built without running the constructor, whose parameters differ per class.
  const error = Object.create(errorClassNamed(info.name).prototype) as Error;
  Object.defineProperty(error, "message", {
    value: info.message,
    writable: true,
    configurable: true,
    enumerable: false,
  });
  if (error.name !== info.name) error.name = info.name;
  if (info.stack) {
    Object.defineProperty(error, "stack", {
      value: info.stack,
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
  if (info.code) (error as { code?: string }).code = info.code;
  if (info.fields) Object.assign(error, info.fields);
  return error;
}

/**
 * Short, lower-case reason for a socket error, as `nmap` and `curl` word it:
 * `connection refused`, `timed out`, `host unreachable`, ...
 */
export function socketReason(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (error instanceof Deno.errors.ConnectionReset) return "connection reset";
  if (error instanceof Deno.errors.ConnectionAborted) return "connection aborted";
  if (error instanceof Deno.errors.TimedOut || error instanceof TimeoutError) return "timed out";
  if (error instanceof Deno.errors.AddrInUse) return "address in use";
  if (error instanceof Deno.errors.AddrNotAvailable) return "address not available";
  if (error instanceof Deno.errors.NotConnected) return "not connected";
  if (error instanceof Deno.errors.BrokenPipe) return "broken pipe";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) return "not allowed (missing --allow-net?)";
  const message = errorMessage(error);
  if (/unreachable/i.test(message)) {
    return /network/i.test(message) ? "network unreachable" : "host unreachable";
  }
  if (/too many open files/i.test(message)) return "too many open files";
  return message.replace(/\s*\(os error \d+\)$/, "").toLowerCase();
}

/** Error for a failed connect, worded `Cannot connect to 127.0.0.1:9: connection refused`. */
export function connectError(host: string, port: number, cause: unknown): Error {
  const shown = host.includes(":") ? `[${host}]` : host;
  return new Error(`Cannot connect to ${shown}:${port}: ${socketReason(cause)}`, { cause });
}

function safeJson(value: unknown): string {
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return String(value);
    return text.length > 200 ? text.slice(0, 200) + "…" : text;
  } catch {
    return String(value);
  }
}

/**
 * Error for a failed listen, worded `Cannot listen on 127.0.0.1:65432: address
 * already in use`, as a server prints it before exiting 1.
 */
export function listenError(host: string, port: number, cause: unknown): Error {
  const shown = host.includes(":") ? `[${host}]` : host;
  const reason = cause instanceof Deno.errors.AddrInUse
    ? "address already in use"
    : socketReason(cause);
  return new Error(`Cannot listen on ${shown}:${port}: ${reason}`, { cause });
}
