/**
 * The part of shared/cli.ts that does not need `commander`: exit codes, the
 * `--json` document, stdout/stderr writers, {@linkcode runCommand} and the stop
 * signals. A fast path that parses a plain command line itself (without
 * commander, whose Node compatibility imports cost ~75 ms of a process start
 * here) prints exactly what the full command line would through these.
 * shared/cli.ts re-exports everything here.
 *
 * @module
 */
import { errorMessage, UsageError } from "./errors.ts";
import { red, yellow } from "./colors.ts";
import { VERSION } from "./version.ts";
import { killAllChildren } from "./runtime.ts";

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

// What runMain needs to print a failure document under --json when the command
// did not: whether a document went out, the last error line, and the command.
/** For shared/cli.ts's `runMain` (not for commands): what went out so far. */
export const outputState = {
  documentWritten: false,
  lastErrorLine: null as string | null,
  runningCommand: null as string | null,
};

/** Writes text to stdout without a trailing newline being added. */
export function writeStdout(text: string): void {
  if (text.startsWith('{"tool":')) outputState.documentWritten = true;
  Deno.stdout.writeSync(new TextEncoder().encode(text));
}

/** Writes text to stderr without a trailing newline being added. */
export function writeStderr(text: string): void {
  // deno-lint-ignore no-control-regex
  const error = /error:\s*(?:\x1b\[[0-9;]*m)?\s*(.+)/.exec(text);
  if (error) outputState.lastErrorLine = error[1].trim();
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
