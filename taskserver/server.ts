/**
 * Starts the task server in any mode through `shared/server.ts`, and words its
 * `--verbose` log lines the way the study's server printed them.
 *
 * @module
 */
import { type RunningServer, serve } from "../shared/server.ts";
import type { Mode } from "../shared/mode.ts";
import { handlerOf } from "../shared/registry.ts";
import { DEFAULT_INIT, type TaskEvent, type TaskServerInit } from "./protocol.ts";
import { registry } from "./registry.ts";

/** Options for {@linkcode startTaskServer}. */
export interface TaskServerOptions {
  host: string;
  port: number;
  mode: Mode;
  /** Pool size for thread and process modes. */
  workers: number;
  /** Thread and process modes: a worker or child per client (the study's design). */
  perClient: boolean;
  init?: Partial<TaskServerInit>;
  /** Worker and child entry (default: the main module). */
  entry?: string | URL;
  /** Listen-queue capacity for bursts (see `ServeOptions.backlog`; default 16,384). */
  backlog?: number;
  /** Most clients served at once (see `ServeOptions.maxConnections`). */
  maxConnections?: number;
  onEvent?: (event: TaskEvent, where: string) => void;
  signal?: AbortSignal;
}

/** Default listen-queue capacity: a burst of this many connections gets no SYN retry. */
export { DEFAULT_BACKLOG } from "../shared/server.ts";

/** What a client above `--max-connections` reads before its connection closes. */
export const BUSY_REPLY = "Error: server busy: too many connections, try again later\n";

/** Starts the server; resolves once it accepts connections. */
export async function startTaskServer(options: TaskServerOptions): Promise<RunningServer> {
  const init: TaskServerInit = { ...DEFAULT_INIT, ...options.init };
  return await serve<TaskServerInit>({
    handler: handlerOf(registry, "taskserver.tasks"),
    mode: options.mode,
    hostname: options.host,
    port: options.port,
    workers: options.workers,
    perConnection: options.perClient,
    entry: options.entry ?? lightEntry(),
    init,
    backlog: options.backlog,
    maxConnections: options.maxConnections,
    refusal: BUSY_REPLY,
    graceMs: Math.max(1000, init.delayMs + 500),
    signal: options.signal,
    onEvent: options.onEvent
      ? (event, source) => options.onEvent!(event as TaskEvent, source.where)
      : undefined,
  });
}

/**
 * From source, workers and children start from `worker_entry.ts` (the handler
 * alone); in a bundle every module is in the one file, which is the entry.
 */
function lightEntry(): URL | undefined {
  return import.meta.url.endsWith(".ts")
    ? new URL("./worker_entry.ts", import.meta.url)
    : undefined;
}

/** Describes the design a mode runs, in the study's words. */
export function describeDesign(mode: Mode, perClient: boolean, workers: number): string {
  switch (mode) {
    case "sequential":
      return "Single-Process: only handles one client at a time";
    case "async":
      return "Async: every client on one event loop";
    case "thread":
      return perClient
        ? "Multi-Threaded: a new Web Worker for each client"
        : `Thread pool: ${workers} Web Workers sharing the port (reusePort)`;
    default:
      return perClient
        ? "Multi-Process: a new child process for each client"
        : `Process pool: ${workers} child processes sharing the port (reusePort)`;
  }
}

function clock(at: number): string {
  return new Date(at).toISOString().slice(11, 19);
}

/** One `--verbose` log line for an event, like the study's server log. */
export function formatEvent(event: TaskEvent, where: string): string {
  switch (event.type) {
    case "connect":
      return `[${clock(event.at)}] [${where}] Connection from ${event.remote}`;
    case "request":
      return `[${where}] Received request: ${event.request}\n[${where}] Sending response: ${event.reply}`;
    default:
      return `[${clock(event.at)}] [${where}] Client ${event.remote} disconnected ` +
        `(${event.requests} request${event.requests === 1 ? "" : "s"}, ${event.reason})`;
  }
}
