/**
 * The task server's wire rules, as pure code: the settings every worker and
 * child receives, the events of `--verbose`, and the answer to one request line.
 * The connection handler that applies them is `handler.ts`.
 *
 * Framing rule: a request ends at a newline (`\n`, an optional `\r` before it is
 * dropped), or when the client pauses for `pauseMs` with bytes pending (the
 * study's Python client sends no newline and waits for the answer), or at the
 * end of the client's data. Every reply is one line. A request longer than
 * `maxLine` bytes is answered `Error: request longer than N bytes` and skipped up
 * to its newline, so the connection stays in sync and memory stays bounded.
 *
 * @module
 */
import { decodeUtf8Strict, LineOverflow } from "../shared/codec.ts";
import { type Operation, processRequest } from "./ops.ts";

/** Server settings every worker and child receives (JSON-serialisable). */
export interface TaskServerInit {
  /** Milliseconds to wait before each answer (the study's benchmark used 3000). */
  delayMs: number;
  /** Close a connection after this many milliseconds without a byte from the client (0: never). */
  idleTimeoutMs: number;
  /** A pending request without newline is complete after this pause (0: only newline or EOF). */
  pauseMs: number;
  /** Longest request line, in bytes. */
  maxLine: number;
  /** Operation for a request without `|` (the study's benchmark server reversed everything). */
  defaultOp: Operation | null;
  /** Emit connection and request events (for `--verbose`). */
  verbose: boolean;
}

/** Defaults: no delay, 30 s idle timeout, 20 ms pause, 64 KiB lines. */
export const DEFAULT_INIT: TaskServerInit = {
  delayMs: 0,
  idleTimeoutMs: 30_000,
  pauseMs: 20,
  maxLine: 64 * 1024,
  defaultOp: null,
  verbose: false,
};

/** An event the handler emits when `verbose` is on. */
export type TaskEvent =
  | { type: "connect"; remote: string; connection: number; at: number }
  | { type: "request"; remote: string; request: string; reply: string }
  | { type: "disconnect"; remote: string; requests: number; reason: string; at: number };

/** Answers one request line (bytes without the newline); never throws. */
export function answerLine(line: Uint8Array | LineOverflow, init: TaskServerInit): string {
  if (line instanceof LineOverflow) {
    return `Error: request longer than ${init.maxLine} bytes`;
  }
  let text: string;
  try {
    text = decodeUtf8Strict(line, "request");
  } catch {
    return "Error: request is not valid UTF-8";
  }
  return processRequest(text, { defaultOp: init.defaultOp ?? undefined });
}
