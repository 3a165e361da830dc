/**
 * The `taskserver` command line (commander): `serve`, `call`, `client`, `bench`.
 * Loaded by `main.ts` only when the fast path for a plain `call` does not apply.
 *
 * @module
 */
import type { Command } from "commander";
import { DEFAULT_PORT } from "./fast_call.ts";
import {
  addOutputOptions,
  addServerLimitOptions,
  commandRunner,
  createProgram,
  EXIT_OK,
  exitCodeAfter,
  intOption,
  jsonDocument,
  type OutputFlags,
  watchStopSignals,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { parseMode } from "../shared/mode.ts";
import { type Operation, parseOperation } from "./ops.ts";
import { DEFAULT_INIT } from "./protocol.ts";
import { describeDesign, formatEvent, startTaskServer } from "./server.ts";
import { call, interactive, stdinConsole } from "./client.ts";
import { addBenchCommand } from "./bench_cli.ts";
import { addLoadCommand } from "./load_cli.ts";

const TOOL = "taskserver";
/** The study's port. */

/** Runs a command body and prints its output (see `runCommand` in shared/cli.ts). */
const run = commandRunner(TOOL);

function operationArg(value: string): Operation {
  const op = parseOperation(value);
  if (!op) {
    throw new UsageError(
      `Invalid operation '${value}': expected swapcase, eval or reverse (or 1, 2, 3)`,
    );
  }
  return op;
}

function addTargetOptions(command: Command): Command {
  return command
    .option("--host <host>", "server address", "127.0.0.1")
    .option("--port <port>", "server port", intOption(1, 65535), DEFAULT_PORT)
    .option(
      "--timeout <ms>",
      "milliseconds to wait for the connection and each reply",
      intOption(1),
      30_000,
    );
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
}

async function serveCommand(flags: ServeFlags): Promise<number> {
  const mode = parseMode(flags.mode);
  if (flags.perClient && (mode === "sequential" || mode === "async")) {
    throw new UsageError(`--per-client needs --mode thread or process (not ${mode})`);
  }
  const defaultOp = flags.defaultOp === undefined ? null : operationArg(flags.defaultOp);
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
  const design = describeDesign(mode, flags.perClient, flags.workers);
  const listening = {
    host: server.hostname,
    port: server.port,
    mode,
    perClient: flags.perClient,
    design,
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

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram(
    "taskserver",
    "task server (change case, evaluate, reverse), its clients and load benchmark",
  );
  let code = EXIT_OK;

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
      ),
  )).action(async (flags: ServeFlags) => void (code = await serveCommand(flags)));

  addOutputOptions(
    addTargetOptions(
      program.command("call")
        .description("send one request and print the answer (exit 1 on an `Error:` reply)")
        .argument("<op>", "swapcase, eval or reverse (or 1, 2, 3)")
        .argument("<payload...>", "text or expression (several words are joined with spaces)")
        .option("--repeat <n>", "requests over the same connection", intOption(1, 10_000_000), 1),
    ),
  ).action(
    async (
      opText: string,
      words: string[],
      flags: OutputFlags & { host: string; port: number; timeout: number; repeat: number },
    ) => {
      const op = operationArg(opText);
      const payload = words.join(" ");
      code = await run("call", { ...flags }, async () => {
        const started = performance.now();
        const replies = await call(
          { host: flags.host, port: flags.port, timeoutMs: flags.timeout },
          op,
          payload,
          flags.repeat,
        );
        const errors = replies.filter((reply) => reply.startsWith("Error:")).length;
        const shown = flags.repeat === 1 ? replies[0] : replies.join("\n");
        return {
          results: {
            op,
            payload,
            replies: flags.repeat === 1 ? replies : replies.slice(0, 100),
            requests: replies.length,
            errors,
            ms: performance.now() - started,
          },
          text: shown,
          ok: errors === 0,
        };
      });
    },
  );

  addTargetOptions(
    program.command("client")
      .description(
        "the study's interactive menu (1 Change case, 2 Evaluate, 3 Reverse, 4 Exit); works from a pipe",
      ),
  ).action(async (flags: { host: string; port: number; timeout: number }) => {
    code = await run("client", {}, async () => {
      const answered = await interactive(
        { host: flags.host, port: flags.port, timeoutMs: flags.timeout },
        stdinConsole(writeStdout),
      );
      return { results: { answered }, text: "" };
    });
  });

  addBenchCommand(program, (c) => void (code = c));
  addLoadCommand(program, (c) => void (code = c));

  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  await program.parseAsync(args, { from: "user" });
  return code;
}
