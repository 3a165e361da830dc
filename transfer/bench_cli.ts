/**
 * The `transfer bench` command line: parses options, runs the benchmark or the
 * study from bench.ts, and prints (a table, or one JSON document) or writes
 * `--out` files. The measuring code in bench.ts never prints.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { exitCodeAfter, intOption, watchStopSignals } from "../shared/cli.ts";
import {
  addBenchCommand as addSharedBenchCommand,
  type BenchContext,
  type BenchFlags,
  type BenchOutcome,
} from "../shared/bench_command.ts";
import { UsageError } from "../shared/errors.ts";
import { parseModeList } from "../shared/mode.ts";
import { DEFAULT_BLOCK_SIZE, parseSize } from "./protocol.ts";
import type { BenchOptions } from "./bench.ts";

type TransferBenchFlags = BenchFlags & Omit<BenchOptions, "entry" | "onProgress"> & {
  /** `--defaults`: issue 15's default-upload, download and lockstep targets. */
  defaults: boolean;
  size: number;
  lockstepSize: number;
  dir?: string;
};

function listOption<T>(parse: (text: string) => T, option: string) {
  return (value: string): T[] => {
    const parts = value.split(",").map((part) => part.trim()).filter((part) => part !== "");
    if (parts.length === 0) throw new UsageError(`Invalid ${option} '${value}': the list is empty`);
    return parts.map((part) => {
      try {
        return parse(part);
      } catch (error) {
        throw new UsageError(`Invalid ${option} '${value}': ${(error as Error).message}`);
      }
    });
  };
}

/** Adds the `bench` command (the flow around it is shared/bench_command.ts). */
export function addBenchCommand(program: Command, setExit: (code: number) => void): void {
  addSharedBenchCommand<TransferBenchFlags>(program, {
    tool: "transfer",
    description: "measure upload and download throughput beside a raw TCP copy (the ceiling)",
    defaultScale: "smoke",
    scaleHelp: "study scale: smoke, quick or full",
    options: (command) =>
      command
        .addOption(
          new Option("--sizes <list>", "file sizes")
            .argParser(listOption(parseSize, "--sizes"))
            .default([1e6, 1e7, 1e8, 1e9], "1MB,10MB,100MB,1GB"),
        )
        .addOption(
          new Option("--modes <list>", "client modes")
            .argParser((v: string) => parseModeList(v))
            .default(
              ["sequential", "async", "thread", "process"],
              "sequential,async,thread,process",
            ),
        )
        .option("--streams <n>", "connections in thread and process modes", intOption(1, 64), 2)
        .option("--window <w>", "blocks in flight per connection", intOption(1, 1024), 8)
        .addOption(
          new Option("--block-sizes <list>", "block sizes")
            .argParser(listOption(parseSize, "--block-sizes"))
            .default([DEFAULT_BLOCK_SIZE, 1 << 20], "20480,1MiB"),
        )
        .option(
          "--runs <n>",
          "runs per configuration (the median is reported)",
          intOption(1, 100),
          3,
        )
        .addOption(
          new Option("--directions <list>", "what to time")
            .argParser(listOption((v) => {
              if (v !== "upload" && v !== "download") {
                throw new Error(`'${v}' is not upload or download`);
              }
              return v as "upload" | "download";
            }, "--directions"))
            .default(["upload", "download"], "upload,download"),
        )
        .option("--no-iperf", "skip the iperf3 comparison")
        .option(
          "--defaults",
          "time default upload and download processes against dd conv=fdatasync and md5sum, " +
            "and lockstep against the Python pair (issue 15's targets)",
          false,
        )
        .option(
          "--size <bytes>",
          "--defaults: large file size",
          (v: string) => parseSize(v),
          2 ** 30,
        )
        .option(
          "--lockstep-size <bytes>",
          "--defaults: lockstep comparison size",
          (v: string) => parseSize(v),
          1e8,
        )
        .option("--dir <dir>", "--defaults: where the files go (the disk measured)"),
    study: async ({ scale, progress }) => {
      const { runStudy } = await import("../shared/study_harness.ts");
      const { transferStudy } = await import("./study.ts");
      return await runStudy(transferStudy, scale, { progress });
    },
    bench: async (context, flags) => {
      // SIGINT/SIGTERM: stop the step running, print what was measured, exit 130/143.
      const stop = watchStopSignals();
      try {
        const outcome = await measureBench(context, flags, stop.abort);
        return { ...outcome, exitCode: exitCodeAfter(stop.signal) };
      } finally {
        stop.dispose();
      }
    },
  }, setExit);
}

async function measureBench(
  { progress }: BenchContext,
  flags: TransferBenchFlags,
  signal: AbortSignal,
): Promise<BenchOutcome> {
  if (flags.defaults) {
    const { defaultBenchText, runDefaultBench } = await import("./bench_default.ts");
    const result = await runDefaultBench({
      size: flags.size,
      lockstepSize: flags.lockstepSize,
      dir: flags.dir,
      onProgress: flags.quiet ? undefined : progress,
      signal,
    });
    return { results: result, text: defaultBenchText(result) };
  }
  const { benchPlots, benchTable, runBench } = await import("./bench.ts");
  const { renderTable } = await import("../shared/report.ts");
  const result = await runBench({
    sizes: flags.sizes,
    modes: flags.modes,
    streams: flags.streams,
    window: flags.window,
    blockSizes: flags.blockSizes,
    runs: flags.runs,
    directions: flags.directions,
    iperf: flags.iperf,
    onProgress: flags.quiet ? undefined : progress,
    signal,
  });
  const table = benchTable(result);
  const rss = `${result.serverPeakRssMb ?? "unknown"} MB`;
  return {
    results: result,
    text: `${renderTable(table)}\nserver peak RSS: ${rss}\n`,
    report: {
      name: "transfer-bench",
      title: "transfer bench",
      notes: [`Server peak RSS: ${rss}.`, ...result.skipped.map((s) => `Skipped: ${s}`)],
      tables: [table],
      plots: benchPlots(result),
      json: result,
    },
  };
}
