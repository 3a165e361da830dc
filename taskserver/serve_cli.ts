/**
 * `taskserver serve`: its options, the run (listen, announce, stop on
 * SIGINT/SIGTERM with 130/143) and the formatters of what it prints (the design
 * line, the `--verbose` log lines in the study's words).
 *
 * @module
 */
import type { Command } from "commander";
import {
  addOutputOptions,
  addServerLimitOptions,
  exitCodeAfter,
  intOption,
  jsonDocument,
  type OutputFlags,
  watchStopSignals,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { type Mode, parseMode } from "../shared/mode.ts";
import { DEFAULT_PORT } from "./fast_call.ts";
import { type Operation, parseOperation } from "./ops.ts";
import { DEFAULT_INIT, type TaskEvent } from "./protocol.ts";
import { startTaskServer } from "./server.ts";
import { engineArg } from "./ffi_libc.ts";

const TOOL = "taskserver";

/** An operation argument (`swapcase`, `eval`, `reverse` or 1, 2, 3); a usage error otherwise. */
export function operationArg(value: string): Operation {
  const op = parseOperation(value);
  if (!op) {
    throw new UsageError(
      `Invalid operation '${value}': expected swapcase, eval or reverse (or 1, 2, 3)`,
    );
  }
  return op;
}

interface ServeFlags extends OutputFlags {
  host: string;
  port: number;
  mode: string;
  workers: number;
  perClient: boolean;
  backlog: number;
  maxConnections?: number;
  delay: number;
  idleTimeout: number;
  pause: number;
  maxLine: number;
  defaultOp?: string;
  engine: string;
}

async function serveCommand(flags: ServeFlags): Promise<number> {
  const mode = parseMode(flags.mode);
  if (flags.perClient && (mode === "sequential" || mode === "async")) {
    throw new UsageError(`--per-client needs --mode thread or process (not ${mode})`);
  }
  const defaultOp = flags.defaultOp === undefined ? null : operationArg(flags.defaultOp);
  const engine = engineArg(flags.engine);
  const log = !flags.quiet;
  // Listen for signals before announcing the address: a script may stop the
  // server as soon as it reads it.
  const stop = watchStopSignals();
  const signalled = stop.received;
  const server = await startTaskServer({
    host: flags.host,
    port: flags.port,
    mode,
    workers: flags.workers,
    perClient: flags.perClient,
    backlog: flags.backlog,
    maxConnections: flags.maxConnections,
    engine,
    init: {
      delayMs: flags.delay,
      idleTimeoutMs: flags.idleTimeout,
      pauseMs: flags.pause,
      maxLine: flags.maxLine,
      defaultOp,
      verbose: flags.verbose === true,
    },
    onEvent: flags.verbose
      ? (event, where) => writeStderr(formatEvent(event, where) + "\n")
      : undefined,
  });
  const design = describeDesign(mode, flags.perClient, flags.workers) +
    (server.engine === "ffi" ? " (FFI engine: libc sockets and epoll)" : "");
  const listening = {
    host: server.hostname,
    port: server.port,
    mode,
    perClient: flags.perClient,
    design,
    engine: server.engine,
  };
  if (flags.json) {
    writeStdout(JSON.stringify(jsonDocument(TOOL, "serve", { ...flags }, listening, 0)) + "\n");
  } else if (log) {
    writeStderr(
      `${TOOL} (pid ${Deno.pid}) listening on ${server.hostname}:${server.port}\n-- ${design} --\n`,
    );
  }
  const signal = await Promise.race([signalled, server.finished.then(() => null)]);
  if (log && signal) writeStderr(`${TOOL}: ${signal}: closing\n`);
  await server.close();
  stop.dispose();
  return exitCodeAfter(signal);
}

/** Adds `serve` to the program; `setExit` receives its exit code. */
export function addServeCommand(program: Command, setExit: (code: number) => void): void {
  addOutputOptions(addServerLimitOptions(
    program.command("serve")
      .description(
        "serve the tasks: `1|text` swap case, `2|expr` evaluate, `3|text` reverse; one request per line",
      )
      .option("--host <host>", "address to listen on", "127.0.0.1")
      .option("--port <port>", "port (0 picks a free one)", intOption(0, 65535), DEFAULT_PORT)
      .option("--mode <mode>", "sequential (single), async, thread or process", "async")
      .option("--workers <n>", "pool size for thread and process modes", intOption(1, 256), 2)
      .option(
        "--per-client",
        "thread/process: a new worker or child per client (the study's design)",
        false,
      )
      .option("--delay <ms>", "answer each request after this delay", intOption(0, 3_600_000), 0)
      .option(
        "--idle-timeout <ms>",
        "close clients silent this long (0: never)",
        intOption(0),
        DEFAULT_INIT.idleTimeoutMs,
      )
      .option(
        "--pause <ms>",
        "a request without newline is complete after this pause (0: off)",
        intOption(0, 60_000),
        DEFAULT_INIT.pauseMs,
      )
      .option(
        "--max-line <bytes>",
        "longest request line",
        intOption(16, 16 << 20),
        DEFAULT_INIT.maxLine,
      )
      .option(
        "--default-op <op>",
        "operation for requests without '|' (the study's benchmark: reverse)",
      )
      .option(
        "--engine <engine>",
        "auto (ffi where it can run: async or a pool, Linux, IPv4, --allow-ffi, no --verbose), " +
          "ffi (libc sockets and epoll) or deno (Deno.Conn)",
        "auto",
      ),
  )).action(async (flags: ServeFlags) => void setExit(await serveCommand(flags)));
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
