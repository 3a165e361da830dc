/**
 * Command-line conventions shared by every tool, on top of `commander`:
 * `--json` prints one document on stdout, results go to stdout and diagnostics to
 * stderr, exit codes are 0 (ok), 1 (failure) and 2 (usage).
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { errorMessage, UsageError } from "./errors.ts";
import { red } from "./colors.ts";
import { VERSION } from "./version.ts";
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  jsonDocument,
  outputState,
  toolArgs,
  wantsJson,
  writeStderr,
  writeStdout,
} from "./cli_run.ts";
import {
  DEFAULT_BACKLOG,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PER_CONNECTION_WORKERS,
} from "./server.ts";

export * from "./cli_run.ts";

/**
 * Creates the root `commander` program for a tool, set up so that usage errors
 * exit 2 with a message naming the bad value, and `--version` prints the toolkit version.
 */
export function createProgram(name: string, description: string): Command {
  const program = new Command(name);
  program
    .description(description)
    .version(VERSION, "-V, --version", "print the version and exit")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (text) => writeStdout(text),
      writeErr: (text) => writeStderr(text),
    })
    .exitOverride()
    // Which command runs, for the failure document of a usage error (see runMain).
    .hook("preSubcommand", (_program, sub) => {
      outputState.runningCommand = sub.name();
    });
  return program;
}

/** Adds `--json`, `--verbose` and `--quiet` to a command. */
export function addOutputOptions(command: Command): Command {
  return command
    .option("--json", "print one JSON document on stdout instead of text", false)
    .option("-v, --verbose", "log more detail on stderr", false)
    .option("-q, --quiet", "log nothing but errors on stderr", false);
}

/** `commander` argument parser for an integer in `[min, max]`; the error names the value. */
export function intOption(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        `'${value}' is not an integer from ${min} to ${
          max === Number.MAX_SAFE_INTEGER ? "∞" : max
        }.`,
      );
    }
    return n;
  };
}

/** `commander` argument parser for a number in `(min, max]` (or `[min, max]` if `inclusive`). */
export function numberOption(min: number, max = Infinity, inclusive = false) {
  return (value: string): number => {
    const n = Number(value);
    const ok = value.trim() !== "" && Number.isFinite(n) && (inclusive ? n >= min : n > min) &&
      n <= max;
    if (!ok) {
      throw new InvalidArgumentError(
        `'${value}' is not a number ${inclusive ? "≥" : ">"} ${min}${
          max === Infinity ? "" : ` and ≤ ${max}`
        }.`,
      );
    }
    return n;
  };
}

/**
 * Runs a tool's `main`, mapping outcomes to exit codes: commander's own exits
 * (help, version) keep their code, {@linkcode UsageError} and commander usage
 * errors exit 2, any other error prints `<tool>: <message>` and exits 1.
 *
 * Under `--json` (in `args`, default the tool's arguments) every failure prints
 * exactly one JSON document with `error` set: the command's own when it printed
 * one, else one built here (usage errors, and commands that only logged).
 */
export async function runMain(
  tool: string,
  main: () => Promise<number | void>,
  args: readonly string[] = toolArgs(),
): Promise<never> {
  const started = performance.now();
  let code: number;
  let failure: unknown = null;
  try {
    code = (await main()) ?? EXIT_OK;
  } catch (error) {
    code = exitCodeFor(tool, error);
    if (code !== EXIT_OK) failure = error;
  }
  if (code !== EXIT_OK && !outputState.documentWritten && wantsJson(args)) {
    const error = failure instanceof CommanderError
      ? failure.message.replace(/^error:\s*/, "")
      : failure ?? outputState.lastErrorLine ?? `${tool} exited with status ${code}`;
    const command = outputState.runningCommand ?? args.find((arg) => !arg.startsWith("-")) ?? "";
    writeStdout(
      JSON.stringify(jsonDocument(tool, command, {}, null, performance.now() - started, error)) +
        "\n",
    );
  }
  Deno.exit(code);
}

/** Maps an error to an exit code, printing its message on stderr. */
export function exitCodeFor(tool: string, error: unknown): number {
  if (error instanceof CommanderError) {
    if (error.code === "commander.helpDisplayed" || error.code === "commander.version") {
      return EXIT_OK;
    }
    if (error.code === "commander.help") return EXIT_OK;
    return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (error instanceof UsageError) {
    writeStderr(`${red(`${tool}: error:`)} ${error.message}\n`);
    return EXIT_USAGE;
  }
  writeStderr(`${red(`${tool}: error:`)} ${errorMessage(error)}\n`);
  return EXIT_FAILURE;
}

/** Server limits given on the command line (see {@linkcode addServerLimitOptions}). */
export interface ServerLimitFlags {
  backlog?: number;
  maxConnections?: number;
}

/**
 * Adds `--max-connections` (and `--backlog` unless `backlog: false`) to a server
 * command, for `serve()`'s `maxConnections` and `backlog`.
 */
export function addServerLimitOptions(command: Command, which = { backlog: true }): Command {
  if (which.backlog) {
    command.option(
      "--backlog <n>",
      "listen-queue capacity for bursts (511 per listener, reusePort above)",
      intOption(1, 65_536),
      DEFAULT_BACKLOG,
    );
  }
  return command.option(
    "--max-connections <n>",
    `most connections served at once; more are told so and closed (default ${DEFAULT_MAX_CONNECTIONS}, ` +
      `${DEFAULT_MAX_PER_CONNECTION_WORKERS} with a worker or child per connection)`,
    intOption(1, 1 << 20),
  );
}
