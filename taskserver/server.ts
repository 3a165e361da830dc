/**
 * Starts the task server in any mode through `shared/server.ts` (the
 * connection handler is `handler.ts`; what `serve` prints is `serve_cli.ts`).
 *
 * @module
 */
import {
  DEFAULT_BACKLOG,
  DEFAULT_MAX_CONNECTIONS,
  RefusalTally,
  type RunningServer,
  serve,
} from "../shared/server.ts";
import type { Mode } from "../shared/mode.ts";
import { handlerOf, serviceOf } from "../shared/registry.ts";
import { describeWhere } from "../shared/runtime.ts";
import { UsageError } from "../shared/errors.ts";
import { type Engine, type EngineChoice, ffiEngineUnavailable } from "./ffi_libc.ts";
import { FfiTaskServer } from "./ffi_server.ts";
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
  /**
   * `ffi`: libc sockets and epoll (`ffi_server.ts`; pools: `ffi_pool.ts` in
   * every worker); `deno`: `Deno.Conn`s through `shared/server.ts`; `auto`
   * (default): `ffi` where it can run (async mode or a pool, Linux, IPv4,
   * `--allow-ffi`, no `--verbose` log), else `deno`.
   * Both answer alike.
   */
  engine?: EngineChoice;
}

/** A running task server, and the engine it runs on. */
export interface TaskServer extends RunningServer {
  engine: Engine;
}

/** Why the FFI engine cannot serve these options, or null when it can. */
export function ffiServerUnavailable(options: TaskServerOptions): string | null {
  if (options.mode === "sequential") return "the FFI engine serves async mode and pools";
  if (options.perClient) return "the FFI engine serves async mode and pools (not --per-client)";
  if (options.init?.verbose) return "the FFI engine writes no --verbose log";
  return ffiEngineUnavailable(options.host);
}

/** Default listen-queue capacity: a burst of this many connections gets no SYN retry. */
export { DEFAULT_BACKLOG } from "../shared/server.ts";

/** What a client above `--max-connections` reads before its connection closes. */
export const BUSY_REPLY = "Error: server busy: too many connections, try again later\n";

/** Starts the server; resolves once it accepts connections. */
export async function startTaskServer(options: TaskServerOptions): Promise<TaskServer> {
  const init: TaskServerInit = { ...DEFAULT_INIT, ...options.init };
  const choice = options.engine ?? "auto";
  if (choice !== "deno") {
    const why = ffiServerUnavailable(options);
    if (why === null && options.mode === "async") return startFfi(options, init);
    if (why !== null && choice === "ffi") throw new UsageError(`--engine ffi: ${why}`);
  }
  // Pools on the FFI engine: every pooled worker runs `ffi_pool.ts` instead of the accept loop.
  const engine = choice !== "deno" && ffiServerUnavailable(options) === null ? "ffi" : "deno";
  const server = await serve<TaskServerInit>({
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
    poolService: engine === "ffi" ? serviceOf(registry, "taskserver.ffi_pool") : undefined,
    signal: options.signal,
    onEvent: options.onEvent
      ? (event, source) => options.onEvent!(event as TaskEvent, source.where)
      : undefined,
  });
  return { ...server, engine };
}

function startFfi(options: TaskServerOptions, init: TaskServerInit): TaskServer {
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const tally = new RefusalTally(describeWhere("main", 0, Deno.pid), maxConnections);
  const server = FfiTaskServer.start({
    hostname: options.host,
    port: options.port,
    init,
    backlog: options.backlog ?? DEFAULT_BACKLOG,
    maxConnections,
    refusal: BUSY_REPLY,
    graceMs: Math.max(1000, init.delayMs + 500),
    onRefuse: () => tally.add(1),
  });
  let closing: Promise<void> | null = null;
  const close = () => (closing ??= server.close().then(() => tally.flush()));
  options.signal?.addEventListener("abort", () => void close(), { once: true });
  return {
    hostname: options.host,
    port: server.port,
    mode: options.mode,
    close,
    finished: server.finished.then(() => closing ?? undefined),
    refusedConnections: () => tally.total,
    engine: "ffi",
  };
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
