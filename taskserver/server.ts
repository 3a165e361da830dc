/**
 * Starts the task server in any mode through `shared/server.ts` (the
 * connection handler is `handler.ts`; what `serve` prints is `serve_cli.ts`).
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
