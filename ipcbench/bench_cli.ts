/**
 * `ipcbench bench`: its options, and the text, tables and files it prints or
 * writes. The flow around it (`--study`, `--scale`, `--out`, `--json`, errors)
 * is shared/bench_command.ts; the measuring is bench.ts and study.ts.
 *
 * On SIGINT or SIGTERM the matrix stops: the case under way is abandoned (its
 * children killed), the cases measured so far are printed (text, or the one JSON
 * document with `interrupted: true`), and the exit status is 130 or 143.
 *
 * @module
 */
import type { Command } from "commander";
import {
  addBenchCommand as addSharedBenchCommand,
  type BenchFlags as SharedBenchFlags,
  type BenchOutcome,
} from "../shared/bench_command.ts";
import { exitCodeAfter, intOption, warn, watchStopSignals, writeStderr } from "../shared/cli.ts";
import { startProgress } from "../shared/progress.ts";
import { renderTable } from "../shared/report.ts";
import { runStudy } from "../shared/study_harness.ts";
import { type BenchResult, DEFAULT_SIZES, runBench } from "./bench.ts";
import { benchPlots, benchTable } from "./bench_table.ts";
import { RoundTripLog } from "./log.ts";
import { parsePins, parseSizes } from "./parse.ts";
import { parseHostPort } from "./peer.ts";
import { ipcbenchStudy } from "./study.ts";
import { CPU_VS_WALL_NOTE } from "./study_plans.ts";
import { parseTransports, TRANSPORT_NAMES, TRANSPORTS } from "./transports.ts";

/** Flags of `ipcbench bench`. */
export interface IpcbenchBenchFlags extends SharedBenchFlags {
  transports: string;
  sizes: string;
  roundTrips: number;
  warmup: number;
  warmupMs: number;
  runs: number;
  pin: string;
  maxBytes: number;
  timeout: number;
  anchors: boolean;
  log?: string;
  peer?: string;
}

const TRANSPORT_HELP = "\nTransports:\n" +
  TRANSPORT_NAMES.map((t) =>
    `  ${t.padEnd(16)}${TRANSPORTS[t].kind.padEnd(12)}${TRANSPORTS[t].label}`
  ).join("\n") + "\n";

function caseBar(flags: SharedBenchFlags) {
  let bar: ReturnType<typeof startProgress> | null = null;
  return {
    onProgress: (index: number, total: number, label: string) => {
      bar ??= startProgress(total, "cases", !flags.json && !flags.quiet);
      bar.update(index);
      if (flags.verbose) writeStderr(`measuring ${label}\n`);
    },
    stop: () => bar?.stop(),
  };
}

/** Adds `bench` to the program; `setExit` receives its exit code. */
export function addBenchCommand(program: Command, setExit: (code: number) => void): void {
  addSharedBenchCommand<IpcbenchBenchFlags>(program, {
    tool: "ipcbench",
    description: "measure round trips of a counter over each transport, size and placement " +
      "(--study: the study's experiment for the lab)",
    defaultScale: "smoke",
    scaleHelp: "study scale: smoke, quick or full",
    studyNotes: [CPU_VS_WALL_NOTE],
    options: (command) =>
      command
        .option("--transports <list>", "comma-separated list (below) or all", "all")
        .option("--sizes <list>", "message sizes in bytes (k, m suffixes)", DEFAULT_SIZES.join(","))
        .option("--round-trips <n>", "timed round trips per run", intOption(1, 100_000_000), 10000)
        .option("--warmup <n>", "untimed round trips first", intOption(0, 10_000_000), 1000)
        .option(
          "--warmup-ms <ms>",
          "then more untimed round trips until the warm-up has lasted this long " +
            "(V8 optimizes a fresh channel's per-message code only after thousands of messages)",
          intOption(0, 600_000),
          1000,
        )
        .option("--runs <n>", "runs per case (median and spread)", intOption(1, 1000), 3)
        .option(
          "--pin <list>",
          "placement: same (one CPU), split (two), none; list or all",
          "same,split",
        )
        .option(
          "--max-bytes <n>",
          "bytes one direction may carry per run (caps round trips of large messages)",
          intOption(1),
          256 << 20,
        )
        .option("--timeout <ms>", "longest wait for any answer", intOption(100, 3_600_000), 10000)
        .option("--no-anchors", "skip the C anchors (same ping-pong in C, same placement; gcc)")
        .option(
          "--log <file>",
          "write every timed round trip (CSV: transport,pin,size,run,index,us)",
        )
        .option(
          "--peer <host:port>",
          "measure tcp/udp against `ipcbench serve` on another machine",
        )
        .addHelpText("after", TRANSPORT_HELP),
    study: async ({ scale, progress }, flags) => {
      const bar = caseBar(flags);
      try {
        const study = ipcbenchStudy({ timeoutMs: flags.timeout, onProgress: bar.onProgress });
        return await runStudy(study, scale, { progress });
      } finally {
        bar.stop();
      }
    },
    bench: (_context, flags) => benchMatrix(flags),
  }, setExit);
}

async function benchMatrix(flags: IpcbenchBenchFlags): Promise<BenchOutcome> {
  const options = {
    transports: parseTransports(flags.transports),
    sizes: parseSizes(flags.sizes),
    roundTrips: flags.roundTrips,
    warmup: flags.warmup,
    warmupMs: flags.warmupMs,
    runs: flags.runs,
    pins: parsePins(flags.pin),
    maxBytes: flags.maxBytes,
    timeoutMs: flags.timeout,
    anchors: flags.anchors,
    peer: flags.peer ? parseHostPort(flags.peer, "--peer") : undefined,
  };
  const bar = caseBar(flags);
  const log = flags.log ? await RoundTripLog.open(flags.log) : null;
  const stop = watchStopSignals();
  let result: BenchResult;
  try {
    result = await runBench({
      ...options,
      signal: stop.abort,
      onProgress: bar.onProgress,
      onRoundTrips: log ? (item, run, samples) => log.write(item, run, samples) : undefined,
    });
    if (!result.interrupted) await log?.commit();
  } finally {
    log?.discard();
    bar.stop();
    stop.dispose();
  }
  if (!flags.quiet && !flags.json) printNotes(result, flags.verbose);
  return {
    results: result,
    text: benchText(result),
    report: benchFiles(result),
    exitCode: result.interrupted ? exitCodeAfter(stop.signal) : undefined,
  };
}

/** What `bench` prints without `--json`. */
export function benchText(result: BenchResult): string {
  const stopped = result.interrupted
    ? `Interrupted: ${result.cases.length} case(s) measured before the signal.\n\n`
    : "";
  return `${stopped}${renderTable(benchTable(result))}\n\n${CPU_VS_WALL_NOTE}\n`;
}

/** The `--out` files of `bench`. */
export function benchFiles(result: BenchResult) {
  return {
    name: "ipcbench-bench",
    title: "ipcbench: message passing between threads and processes",
    notes: [
      `Machine: CPUs ${result.machine.cpus.join(",")}, ${result.machine.os}, Deno ` +
      `${result.machine.deno}; CPU pressure (PSI some avg10) at start: ` +
      `${result.machine.pressureAtStart?.avg10 ?? "n/a"}%.`,
      CPU_VS_WALL_NOTE,
      ...result.skipped.map((s) => `Skipped: ${s}.`),
      ...result.warnings.map((w) => `Warning: ${w}.`),
    ],
    tables: [benchTable(result)],
    plots: benchPlots(result.cases),
    json: result,
  };
}

function printNotes(result: BenchResult, verbose: boolean): void {
  for (const skip of result.skipped) writeStderr(`skipped: ${skip}\n`);
  if (verbose) { for (const warning of result.warnings) warn(warning); }
  else if (result.warnings.length > 0) {
    const busy = result.cases.filter((c) => c.warnings.length > 0).length;
    warn(
      `${busy} of ${result.cases.length} cases ran on a busy machine (CPU pressure above ` +
        `10%; -v lists them, the JSON has every reading)`,
    );
  }
}
