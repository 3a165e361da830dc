/**
 * The `transfer bench` command line: parses options, runs the benchmark or the
 * study from bench.ts, and prints (a table, or one JSON document) or writes
 * `--out` files. The measuring code in bench.ts never prints.
 *
 * @module
 */
import { defaultBenchText, runDefaultBench } from "./bench_default.ts";
import { type Command, Option } from "commander";
import {
  addOutputOptions,
  intOption,
  jsonDocument,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { parseModeList } from "../shared/mode.ts";
import { renderTable, studyText, writeReport, writeStudyReport } from "../shared/report.ts";
import { parseScale } from "../shared/study.ts";
import { DEFAULT_BLOCK_SIZE, parseSize } from "./protocol.ts";
import { benchPlots, benchTable, runBench, runStudy } from "./bench.ts";

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

/** Adds the `bench` command. */
export function addBenchCommand(program: Command, setExit: (code: number) => void): void {
  addOutputOptions(
    program.command("bench")
      .description("measure upload and download throughput beside a raw TCP copy (the ceiling)")
      .addOption(
        new Option("--sizes <list>", "file sizes")
          .argParser(listOption(parseSize, "--sizes"))
          .default([1e6, 1e7, 1e8, 1e9], "1MB,10MB,100MB,1GB"),
      )
      .addOption(
        new Option("--modes <list>", "client modes")
          .argParser((v: string) => parseModeList(v))
          .default(["sequential", "async", "thread", "process"], "sequential,async,thread,process"),
      )
      .option("--streams <n>", "connections in thread and process modes", intOption(1, 64), 2)
      .option("--window <w>", "blocks in flight per connection", intOption(1, 1024), 8)
      .addOption(
        new Option("--block-sizes <list>", "block sizes")
          .argParser(listOption(parseSize, "--block-sizes"))
          .default([DEFAULT_BLOCK_SIZE, 1 << 20], "20480,1MiB"),
      )
      .option("--runs <n>", "runs per configuration (the median is reported)", intOption(1, 100), 3)
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
      .option("--out <dir>", "write Markdown, CSV, JSON and SVG files here")
      .option("--study", "run the seed study instead (a StudyReport)", false)
      .option(
        "--defaults",
        "time default upload and download processes against dd conv=fdatasync and md5sum, " +
          "and lockstep against the Python pair (issue 15's targets)",
        false,
      )
      .option("--size <bytes>", "--defaults: large file size", (v: string) => parseSize(v), 2 ** 30)
      .option(
        "--lockstep-size <bytes>",
        "--defaults: lockstep comparison size",
        (v: string) => parseSize(v),
        1e8,
      )
      .option("--dir <dir>", "--defaults: where the files go (the disk measured)")
      .option("--scale <scale>", "study scale: smoke, quick or full", "smoke"),
  ).action(async (flags) => {
    const started = performance.now();
    // Progress lines go to stderr even with --json (stdout holds only the document).
    const quiet = flags.quiet;
    const onStatus = quiet ? undefined : (line: string) => writeStderr(`${line}\n`);
    if (flags.defaults) {
      const result = await runDefaultBench({
        size: flags.size,
        lockstepSize: flags.lockstepSize,
        dir: flags.dir,
        onStatus,
      });
      if (flags.json) {
        writeStdout(
          JSON.stringify(
            jsonDocument("transfer", "bench", flags, result, performance.now() - started),
          ) + "\n",
        );
      } else writeStdout(defaultBenchText(result));
      setExit(0);
      return;
    }
    if (flags.study) {
      const scale = parseScale(flags.scale);
      const report = await runStudy(scale, { onStatus });
      if (flags.out) await writeStudyReport(flags.out, report);
      if (flags.json) {
        writeStdout(
          JSON.stringify(
            jsonDocument("transfer", "bench", flags, report, performance.now() - started),
          ) +
            "\n",
        );
      } else {
        writeStdout(studyText(report));
      }
      setExit(0);
      return;
    }
    const result = await runBench({
      sizes: flags.sizes,
      modes: flags.modes,
      streams: flags.streams,
      window: flags.window,
      blockSizes: flags.blockSizes,
      runs: flags.runs,
      directions: flags.directions,
      iperf: flags.iperf,
      onStatus,
    });
    const table = benchTable(result);
    if (flags.out) {
      await writeReport(flags.out, {
        name: "transfer-bench",
        title: "transfer bench",
        notes: [
          `Server peak RSS: ${result.serverPeakRssMb ?? "unknown"} MB.`,
          ...result.skipped.map((s) => `Skipped: ${s}`),
        ],
        tables: [table],
        plots: benchPlots(result),
        json: result,
      });
    }
    if (flags.json) {
      writeStdout(
        JSON.stringify(
          jsonDocument("transfer", "bench", flags, result, performance.now() - started),
        ) + "\n",
      );
    } else {
      writeStdout(
        `${renderTable(table)}\nserver peak RSS: ${result.serverPeakRssMb ?? "unknown"} MB\n`,
      );
    }
    setExit(0);
  });
}
