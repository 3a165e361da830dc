/**
 * Command-line conventions shared by every tool, on top of `commander`:
 * `--json` prints one document on stdout, results go to stdout and diagnostics to
 * stderr, exit codes are 0 (ok), 1 (failure) and 2 (usage).
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { errorMessage, UsageError } from "./errors.ts";
import { red, yellow } from "./colors.ts";
import { VERSION } from "./version.ts";
import { killAllChildren } from "./runtime.ts";
import {
  DEFAULT_BACKLOG,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PER_CONNECTION_WORKERS,
} from "./server.ts";

/** Exit status for success. */
export const EXIT_OK = 0;
/** Exit status for a failed run (a connection refused, a checksum mismatch, ...). */
export const EXIT_FAILURE = 1;
/** Exit status for bad command-line input. */
export const EXIT_USAGE = 2;
/** Exit status for a run stopped by SIGINT (128 + 2), after it printed what it had. */
export const EXIT_INTERRUPTED = 130;
/** Exit status for a run stopped by SIGTERM (128 + 15), after it printed what it had. */
export const EXIT_TERMINATED = 143;

/** The single JSON document a tool prints with `--json`. */
export interface JsonDocument {
  tool: string;
  version: string;
  command: string;
  options: Record<string, unknown>;
  results: unknown;
  elapsed_ms: number;
  error: string | null;
}

/** Builds a JSON document (see {@linkcode JsonDocument}). */
export function jsonDocument(
  tool: string,
  command: string,
  options: Record<string, unknown>,
  results: unknown,
  elapsedMs: number,
  error: unknown = null,
): JsonDocument {
  return {
    tool,
    version: VERSION,
    command,
    options,
    results,
    elapsed_ms: Math.round(elapsedMs * 1000) / 1000,
    error: error === null ? null : errorMessage(error),
  };
}

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
      runningCommand = sub.name();
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

// What runMain needs to print a failure document under --json when the command
// did not: whether a document went out, the last error line, and the command.
let documentWritten = false;
let lastErrorLine: string | null = null;
let runningCommand: string | null = null;

/** Writes text to stdout without a trailing newline being added. */
export function writeStdout(text: string): void {
  if (text.startsWith('{"tool":')) documentWritten = true;
  Deno.stdout.writeSync(new TextEncoder().encode(text));
}

/** Writes text to stderr without a trailing newline being added. */
export function writeStderr(text: string): void {
  // deno-lint-ignore no-control-regex
  const error = /error:\s*(?:\x1b\[[0-9;]*m)?\s*(.+)/.exec(text);
  if (error) lastErrorLine = error[1].trim();
  Deno.stderr.writeSync(new TextEncoder().encode(text));
}

/** True when `args` ask for `--json` (before any `--` that ends the options). */
export function wantsJson(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).includes("--json");
}

/** Prints a warning on stderr. */
export function warn(message: string): void {
  writeStderr(`${yellow("warning:")} ${message}\n`);
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
  if (code !== EXIT_OK && !documentWritten && wantsJson(args)) {
    const error = failure instanceof CommanderError
      ? failure.message.replace(/^error:\s*/, "")
      : failure ?? lastErrorLine ?? `${tool} exited with status ${code}`;
    const command = runningCommand ?? args.find((arg) => !arg.startsWith("-")) ?? "";
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

/**
 * The tool's arguments without the `--` that `deno task <tool> -- args` passes
 * through, so `deno task scanner -- 127.0.0.1 -p 80` means `scanner 127.0.0.1 -p 80`.
 */
export function toolArgs(args: readonly string[] = Deno.args): string[] {
  return args[0] === "--" ? args.slice(1) : [...args];
}

/** The output flags every command has (see {@linkcode addOutputOptions}). */
export interface OutputFlags {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/** {@linkcode runCommand} bound to a tool's name: `const run = commandRunner("transfer")`. */
export function commandRunner(
  tool: string,
): (
  command: string,
  options: OutputFlags & Record<string, unknown>,
  body: () => Promise<CommandOutput>,
) => Promise<number> {
  return (command, options, body) => runCommand(tool, command, options, body);
}

/** What a command body returns to {@linkcode runCommand}. */
export interface CommandOutput {
  /** The `results` of the `--json` document. */
  results: unknown;
  /** What the command prints without `--json`. */
  text: string;
  /** `false` makes the command exit 1 after printing (a mismatch, an `Error:` reply). */
  ok?: boolean;
  /** `options` of the `--json` document, when not the command's flags. */
  options?: Record<string, unknown>;
  /** Exit status to use instead (e.g. {@linkcode EXIT_INTERRUPTED} after a signal). */
  exitCode?: number;
}

/**
 * Runs a command body and prints its output: one JSON document with `--json`
 * (with `error` set and `results` null when the body throws), else its text.
 * Returns the exit code; usage errors propagate so that `runMain` exits 2.
 *
 * A SIGINT or SIGTERM during a command that does not watch the signals itself
 * ({@linkcode watchStopSignals}, {@linkcode claimStopSignals}) ends it the same
 * way as a failure: the document with `error` (`interrupted by SIGINT`), child
 * processes stopped, exit 130 or 143.
 */
export async function runCommand(
  tool: string,
  command: string,
  options: { json?: boolean } & Record<string, unknown>,
  body: () => Promise<CommandOutput>,
): Promise<number> {
  const started = performance.now();
  const interrupt = (signal: StopSignal) => {
    // A command that watches the signals stops itself and prints what it has.
    if (stopSignalOwners > 0) return;
    if (options.json) {
      const error = new Error(`interrupted by ${signal} before the command finished`);
      const elapsed = performance.now() - started;
      writeStdout(
        JSON.stringify(jsonDocument(tool, command, options, null, elapsed, error)) + "\n",
      );
    }
    writeStderr(`${tool}: interrupted by ${signal}\n`);
    killAllChildren();
    Deno.exit(exitCodeAfter(signal));
  };
  const listeners = STOP_SIGNALS.map((signal) => [signal, () => interrupt(signal)] as const);
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);
  try {
    const { results, text, ok, options: shown, exitCode } = await body();
    if (options.json) {
      const elapsed = performance.now() - started;
      writeStdout(
        JSON.stringify(jsonDocument(tool, command, shown ?? options, results, elapsed)) + "\n",
      );
    } else if (text) writeStdout(text.endsWith("\n") ? text : text + "\n");
    if (exitCode !== undefined) return exitCode;
    return ok === false ? EXIT_FAILURE : EXIT_OK;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if (options.json) {
      writeStdout(
        JSON.stringify(
          jsonDocument(tool, command, options, null, performance.now() - started, error),
        ) + "\n",
      );
    }
    writeStderr(`${red(`${tool}: error:`)} ${errorMessage(error)}\n`);
    return EXIT_FAILURE;
  } finally {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  }
}

/** The signals that stop a long-running command cleanly. */
export type StopSignal = "SIGINT" | "SIGTERM";

const STOP_SIGNALS: readonly StopSignal[] = ["SIGINT", "SIGTERM"];

/** Watchers of the stop signals now: while there is one, `runCommand` leaves the signals to it. */
let stopSignalOwners = 0;

/**
 * Tells {@linkcode runCommand} that this command handles SIGINT and SIGTERM
 * itself (with its own `Deno.addSignalListener`), so a signal is not also
 * taken as an interruption; call the returned function when it stops watching.
 * ({@linkcode watchStopSignals} claims them already.)
 */
export function claimStopSignals(): () => void {
  stopSignalOwners++;
  let released = false;
  return () => {
    if (!released) stopSignalOwners--;
    released = true;
  };
}

/** Exit status for a command stopped by `signal` (130 or 143), else `code`. */
export function exitCodeAfter(signal: StopSignal | null | undefined, code = EXIT_OK): number {
  if (signal === "SIGINT") return EXIT_INTERRUPTED;
  if (signal === "SIGTERM") return EXIT_TERMINATED;
  return code;
}

/** What {@linkcode watchStopSignals} returns. */
export interface StopSignals {
  /** Resolves with the first SIGINT or SIGTERM. */
  received: Promise<StopSignal>;
  /** The first signal received, or `null`. */
  readonly signal: StopSignal | null;
  /** Aborted on the first signal: pass it to the work to stop. */
  abort: AbortSignal;
  /** Removes the listeners (the default termination on a signal comes back). */
  dispose(): void;
}

/**
 * Listens for SIGINT and SIGTERM for a long-running command (a server, a scan, a
 * bench, the lab): the first one aborts `abort` so the command stops and prints
 * or writes what it has, then exits with {@linkcode exitCodeAfter}. A second
 * signal while it stops kills every child process and exits at once (130/143).
 * Install it before announcing an address: a script may signal as soon as it reads it.
 */
export function watchStopSignals(): StopSignals {
  const release = claimStopSignals();
  const controller = new AbortController();
  let first: StopSignal | null = null;
  let resolve!: (signal: StopSignal) => void;
  const received = new Promise<StopSignal>((r) => resolve = r);
  const signals: StopSignal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => () => {
    if (first !== null) {
      killAllChildren();
      Deno.exit(exitCodeAfter(signal));
    }
    first = signal;
    controller.abort(new Error(`stopped by ${signal}`));
    resolve(signal);
  });
  signals.forEach((signal, i) => Deno.addSignalListener(signal, handlers[i]));
  return {
    received,
    get signal() {
      return first;
    },
    abort: controller.signal,
    dispose() {
      release();
      signals.forEach((signal, i) => {
        try {
          Deno.removeSignalListener(signal, handlers[i]);
        } catch {
          // Already removed.
        }
      });
    },
  };
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
