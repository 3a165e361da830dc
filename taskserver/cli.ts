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
  createProgram,
  EXIT_OK,
  intOption,
  type OutputFlags,
  runCommand,
  writeStdout,
} from "../shared/cli.ts";
import { addServeCommand, operationArg } from "./serve_cli.ts";
import { call, interactive, stdinConsole } from "./client.ts";
import { addBenchCommand } from "./bench_cli.ts";
import { addLoadCommand } from "./load_cli.ts";

const TOOL = "taskserver";
/** The study's port. */

/** Runs a command body and prints its output (see `runCommand` in shared/cli.ts). */

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

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram(
    "taskserver",
    "task server (change case, evaluate, reverse), its clients and load benchmark",
  );
  let code = EXIT_OK;

  addServeCommand(program, (c) => void (code = c));

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
      code = await runCommand(TOOL, "call", { ...flags }, async () => {
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
    code = await runCommand(TOOL, "client", {}, async () => {
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
