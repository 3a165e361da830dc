/**
 * The one `bench` command every tool has: `--study` (the seed study, a
 * {@linkcode StudyReport} for the lab), `--scale`, `--out DIR`, `--json`,
 * progress on stderr and errors as one JSON document. A tool gives its own
 * options and two functions (the study, and optionally a free-form benchmark);
 * this module owns the flow around them.
 *
 * ```ts
 * addBenchCommand(program, {
 *   tool: "transfer",
 *   description: "measure upload and download throughput",
 *   options: (command) => command.option("--runs <n>", "runs", intOption(1, 100), 3),
 *   study: async (context) => (await import("./bench.ts")).runStudy(context.scale, ...),
 *   bench: async (context, flags) => ({ results, text, report }),
 * }, setExit);
 * ```
 *
 * Reports (tables, and plots with vega) load only when one is printed or written.
 *
 * @module
 */
import type { Command } from "commander";
import {
  addOutputOptions,
  exitCodeAfter,
  runCommand,
  watchStopSignals,
  writeStderr,
} from "./cli.ts";
import { UsageError } from "./errors.ts";
import type { Report } from "./report.ts";
import { parseScale, type StudyName, type StudyReport, type StudyScale } from "./study.ts";

/** The flags the builder defines; a tool's own options are added beside them. */
export interface BenchFlags {
  study: boolean;
  scale: string;
  out?: string;
  json: boolean;
  verbose: boolean;
  quiet: boolean;
  [option: string]: unknown;
}

/** What the study and bench functions receive. */
export interface BenchContext {
  scale: StudyScale;
  /** Writes one progress line on stderr (nothing with `--quiet`). */
  progress: (line: string) => void;
  /** With `stoppable`: aborted by the first SIGINT or SIGTERM. */
  signal?: AbortSignal;
}

/** What a free-form (non-study) benchmark returns. */
export interface BenchOutcome {
  /** `results` of the `--json` document. */
  results: unknown;
  /** What is printed without `--json`. */
  text: string;
  /** Files for `--out DIR`. */
  report?: Report;
  /** `options` of the `--json` document (default: the flags). */
  options?: Record<string, unknown>;
  /** `false` exits 1 after printing. */
  ok?: boolean;
  /** Exit code after printing (e.g. 130 when a signal stopped the bench); wins over `ok`. */
  exitCode?: number;
}

/** A tool's bench: its options and functions; the builder does the rest. */
export interface BenchSpec<Flags extends BenchFlags = BenchFlags> {
  tool: StudyName;
  description: string;
  /** Default `--scale` (default `quick`). */
  defaultScale?: StudyScale;
  /** Help text of `--scale`. */
  scaleHelp?: string;
  /** Prefix of progress lines (e.g. `bench: `); default none. */
  progressPrefix?: string;
  /** Adds the tool's own options to the command. */
  options?: (command: Command) => Command;
  /**
   * The study and bench stop at `context.signal` (SIGINT/SIGTERM) and return
   * what they measured: it is printed (or written), then the exit code is
   * 130/143. Without it the signals keep their default (the process ends).
   */
  stoppable?: boolean;
  /**
   * Runs first: returns an exit code to stop here (e.g. after re-running the same
   * bench inside a private namespace with `args`), or `null` to go on.
   */
  relaunch?: (flags: Flags, args: string[]) => Promise<number | null>;
  /** Notes printed under the study's text and written with its `--out` files. */
  studyNotes?: string[];
  /** The seed study (`--study`). */
  study: (context: BenchContext, flags: Flags) => Promise<StudyReport>;
  /** The free-form benchmark (without `--study`); without it, `bench` runs the study. */
  bench?: (context: BenchContext, flags: Flags) => Promise<BenchOutcome>;
}

/** Adds `bench` to `program`; `setExit` receives its exit code. */
export function addBenchCommand<Flags extends BenchFlags>(
  program: Command,
  spec: BenchSpec<Flags>,
  setExit: (code: number) => void,
): Command {
  let command = program.command("bench").description(spec.description)
    .option(
      "--study",
      "run the seed study and print its StudyReport (with --json, for the lab)",
      false,
    )
    .option(
      "--scale <scale>",
      spec.scaleHelp ?? "smoke (CI, < 30 s), quick (< 1 min) or full (the study's sizes)",
      spec.defaultScale ?? "quick",
    )
    .option("--out <dir>", "write Markdown, CSV, JSON and SVG files to DIR");
  if (spec.options) command = spec.options(command);
  addOutputOptions(command).action(async (flags: Flags, cmd: Command) => {
    setExit(await runBench(spec, flags, commandArgs(cmd)));
  });
  return command;
}

/**
 * Runs a bench with parsed flags: the study or the free-form benchmark, `--out`
 * files, then one JSON document or text. Usage errors propagate (exit 2, and
 * `runMain` prints the document under `--json`).
 */
export async function runBench<Flags extends BenchFlags>(
  spec: BenchSpec<Flags>,
  flags: Flags,
  args: string[] = [],
): Promise<number> {
  const scale = parseScale(flags.scale);
  const prefix = spec.progressPrefix ?? "";
  const context: BenchContext = {
    scale,
    progress: (line) => {
      if (!flags.quiet) writeStderr(`${prefix}${line}\n`);
    },
  };
  const relaunched = spec.relaunch ? await spec.relaunch(flags, args) : null;
  if (relaunched !== null) return relaunched;
  const studyMode = flags.study || spec.bench === undefined;
  const stop = spec.stoppable ? watchStopSignals() : undefined;
  context.signal = stop?.abort;
  // After a stop signal, what was measured is printed, then the exit says why it ended.
  const stopCode = (ok = true) => stop?.signal ? exitCodeAfter(stop.signal) : ok ? 0 : 1;
  try {
    return await runCommand(spec.tool, "bench", flags, async () => {
      if (studyMode) {
        const report = await spec.study(context, flags);
        const { studyText, writeStudyReport } = await import("./report.ts");
        if (flags.out) {
          const written = await writeStudyReport(flags.out, report, spec.studyNotes);
          context.progress(`wrote ${written.join(", ")}`);
        }
        return {
          results: report,
          text: studyText(report, spec.studyNotes),
          options: { study: true, scale },
          exitCode: stopCode(),
        };
      }
      const outcome = await spec.bench!(context, flags);
      if (flags.out) {
        if (!outcome.report) throw new UsageError(`${spec.tool} bench has no --out files`);
        const { writeReport } = await import("./report.ts");
        context.progress(`wrote ${(await writeReport(flags.out, outcome.report)).join(", ")}`);
      }
      // A bench that stops itself on a signal says its exit code; else the watcher's.
      return { ...outcome, exitCode: outcome.exitCode ?? stopCode(outcome.ok !== false) };
    });
  } finally {
    stop?.dispose();
  }
}

/**
 * The options given on the command line, as arguments again (`--scale quick
 * --json`), to re-run the same bench elsewhere (a namespace, a child).
 */
export function commandArgs(cmd: Command): string[] {
  const args: string[] = [];
  const values = cmd.opts();
  for (const option of cmd.options) {
    const key = option.attributeName();
    if (cmd.getOptionValueSource(key) !== "cli") continue;
    const value = values[key];
    const name = option.long ?? option.short!;
    // A flag given on the command line (`--study`, `--no-iperf`) is repeated as given.
    if (typeof value === "boolean") args.push(name);
    else if (Array.isArray(value)) args.push(name, value.join(","));
    else if (value !== undefined) args.push(name, String(value));
  }
  return args;
}
