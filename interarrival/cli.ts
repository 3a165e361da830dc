/**
 * The `interarrival` command line (loaded by main.ts once it is not a worker):
 * parses and validates options, calls the cores, prints through shared/cli.ts.
 * `serve` and `client` are in serve_command.ts and client_command.ts with their
 * formatters, `bench` in bench_command.ts; `check` and `decode` here (their
 * reports are in check.ts and decode.ts).
 *
 * - `serve`: receiver (TCP or UDP): inter-arrival times, delay, jitter, loss per flow.
 * - `client`: generator of messages (flow, sequence, send time) with drawn gaps and sizes.
 * - `decode`: per-interval series from a saved `serve --out` log.
 * - `check`: runs both and tests the measured gaps against the distribution.
 * - `bench`: timing accuracy and throughput (and `--study` for the lab).
 *
 * @module
 */
import type { Command } from "commander";
import {
  addOutputOptions,
  createProgram,
  EXIT_OK,
  intOption,
  numberOption,
  runCommand,
} from "../shared/cli.ts";
import { parseMode } from "../shared/mode.ts";
import { UsageError } from "../shared/errors.ts";
import { csvTable, renderTable, writeReport } from "../shared/report.ts";
import { randomSeed } from "./distributions.ts";
import { checkReport, runCheck } from "./check.ts";
import { decodeLog, decodeReport, parseInterval, seriesTable } from "./decode.ts";
import { addBenchCommand } from "./bench_command.ts";
import { addServeCommand } from "./serve_command.ts";
import { addClientCommand } from "./client_command.ts";
import {
  collect,
  distFrom,
  priorityOption,
  progressLine,
  protocolOption,
  TOOL,
  unwrapTask,
} from "./cli_options.ts";

function addCheckCommand(program: Command, exit: { code: number }): void {
  const command = program
    .command("check")
    .description("run a server and a client and test the measured gaps against the distribution")
    .option("-d, --dist <name>", "distribution (as client)", "e")
    .option("-p, --param <x>", "distribution parameter (repeat for two)", collect, [] as string[])
    .option("-n, --intervals <n>", "intervals per worker", intOption(1, 10_000_000), 2000)
    .option("-w, --workers <n>", "client workers", intOption(1, 1000), 1)
    .option("-m, --mode <mode>", "server mode", "async")
    .addOption(protocolOption())
    .option("--seed <n>", "seed", intOption(0, 0xffff_ffff))
    .option("--alpha <a>", "significance level of the KS test", numberOption(0, 1), 0.01)
    .addOption(priorityOption("normal"))
    .option("--out <dir>", "write CSV, JSON and SVG plots to DIR");
  addOutputOptions(command).action(async (opts) => {
    const dist = distFrom(opts);
    const mode = parseMode(opts.mode);
    const seed = opts.seed ?? randomSeed();
    exit.code = await runCommand(TOOL, "check", { ...opts, seed }, async () => {
      const result = await runCheck({
        dist,
        intervals: opts.intervals,
        workers: opts.workers,
        mode,
        protocol: opts.protocol,
        seed,
        alpha: opts.alpha,
        priority: opts.priority,
      }).catch(unwrapTask);
      const report = checkReport(result, dist);
      if (opts.out) {
        const files = await writeReport(opts.out, report);
        progressLine(opts, `wrote ${files.join(", ")}`);
      }
      return {
        results: result,
        text: [...(report.notes ?? []), ...report.tables.map(renderTable)].join("\n"),
        ok: result.passed,
      };
    });
  });
}

function addDecodeCommand(program: Command, exit: { code: number }): void {
  const command = program
    .command("decode")
    .argument("<log>", "a `serve --out FILE.csv` log")
    .description(
      "per-interval bitrate, packet rate, delay, jitter and loss from a saved log (as ITGDec)",
    )
    .option("-i, --interval <time>", "interval length: 1s, 250ms, 0.5 (seconds)", "1s")
    .option("--csv", "print the series as CSV", false)
    .option("--out <dir>", "write Markdown, CSV, JSON and SVG plots to DIR");
  addOutputOptions(command).action(async (log: string, opts) => {
    const intervalMs = parseInterval(opts.interval);
    if (Number.isNaN(intervalMs)) {
      throw new UsageError(`Invalid --interval '${opts.interval}': expected 1s, 250ms or 0.5`);
    }
    exit.code = await runCommand(TOOL, "decode", { log, ...opts, intervalMs }, async () => {
      const result = await decodeLog(log, intervalMs);
      const report = decodeReport(result);
      if (opts.out) {
        const files = await writeReport(opts.out, report);
        progressLine(opts, `wrote ${files.join(", ")}`);
      }
      const text = opts.csv
        ? csvTable(seriesTable(result))
        : [...(report.notes ?? []), ...report.tables.map(renderTable)].join("\n");
      return { results: result, text };
    });
  });
}

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram(TOOL, "traffic generator and inter-arrival-time server");
  // Commander ignores what actions return, so `check` reports its verdict here.
  const exit = { code: EXIT_OK };
  addServeCommand(program, exit);
  addClientCommand(program, exit);
  addCheckCommand(program, exit);
  addDecodeCommand(program, exit);
  addBenchCommand(program, (code) => exit.code = code);
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  await program.parseAsync(args, { from: "user" });
  return exit.code;
}
