/**
 * `taskserver bench`: its options, through the one bench flow of
 * `shared/bench_command.ts` (`--study`, `--scale`, `--out`, `--json`,
 * progress, errors, SIGINT/SIGTERM). Without `--study` it measures the
 * free-form tables (`bench.ts` measureBench, `study_report.ts` benchReport).
 * The benchmark and its table libraries load only when `bench` runs, which
 * keeps `taskserver call` quick to start (start.sh runs it 100 times at once).
 *
 * @module
 */
import type { Command } from "commander";
import {
  addBenchCommand as addSharedBenchCommand,
  type BenchFlags,
} from "../shared/bench_command.ts";
import { intOption } from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { parseModeList } from "../shared/mode.ts";
import { runStudy } from "../shared/study_harness.ts";
import { taskserverStudy } from "./study.ts";
import { engineArg } from "./ffi_libc.ts";

type TaskserverBenchFlags = BenchFlags & {
  modes: string;
  clients: string;
  delay: number;
  workers: number;
  perClient: boolean;
  clientsInProcess: boolean;
  throughput: string;
  duration: number;
  python: boolean;
  generatorWorkers: number;
  engine: string;
};

/** A comma-separated list of counts from 1 to 100,000 (`''`: none). */
export function parseCounts(text: string, option: string): number[] {
  if (text.trim() === "") return [];
  const parts = text.split(",").map((part) => part.trim()).filter((part) => part !== "");
  const counts = parts.map(Number);
  if (counts.length === 0 || counts.some((n) => !Number.isSafeInteger(n) || n < 1 || n > 100_000)) {
    throw new UsageError(
      `Invalid ${option} '${text}': expected a comma-separated list of integers from 1 to 100000`,
    );
  }
  return counts;
}

/** Adds `bench` to the program; `setExit` receives its exit code. */
export function addBenchCommand(program: Command, setExit: (code: number) => void): void {
  addSharedBenchCommand<TaskserverBenchFlags>(program, {
    tool: "taskserver",
    description:
      "concurrent clients against --delay (the study's table), and a no-delay throughput run",
    stoppable: true,
    options: (command) =>
      command
        .option(
          "--modes <list>",
          "modes to measure (per-client thread/process are added as thread-per-client, process-per-client)",
          "sequential,async,thread,process",
        )
        .option(
          "--clients <list>",
          "client counts for the delay table",
          "10,20,30,40,50,60,70,80,90,100",
        )
        .option("--delay <ms>", "server delay for the table", intOption(0, 60_000), 3000)
        .option("--workers <n>", "pool size for pooled thread and process", intOption(1, 64), 2)
        .option("--no-per-client", "skip the worker-per-client thread and process servers")
        .option(
          "--clients-in-process",
          "clients from an in-process load generator (default: start.sh-style processes)",
          false,
        )
        .option(
          "--throughput <list>",
          "persistent clients for the no-delay run ('' to skip)",
          "1,10,100,1000",
        )
        .option("--duration <ms>", "length of each throughput run", intOption(100, 600_000), 2000)
        .option("--no-python", "skip the Python thread-per-client baseline")
        .option(
          "--generator-workers <n>",
          "load-generator workers for the throughput runs (0: this process)",
          intOption(0, 16),
          0,
        )
        .option(
          "--engine <engine>",
          "servers' and one-request clients' engine: auto (ffi where it can run), ffi " +
            "(libc sockets and epoll) or deno (Deno.Conn)",
          "auto",
        ),
    study: (context) =>
      runStudy(taskserverStudy(), context.scale, {
        progress: context.progress,
        signal: context.signal,
      }),
    bench: async (context, flags) => {
      const settings = {
        modes: parseModeList(flags.modes),
        clients: parseCounts(flags.clients, "--clients"),
        delayMs: flags.delay,
        workers: flags.workers,
        perClient: flags.perClient !== false,
        inProcess: flags.clientsInProcess === true,
        throughput: parseCounts(flags.throughput, "--throughput"),
        durationMs: flags.duration,
        python: flags.python !== false,
        generatorWorkers: flags.generatorWorkers,
        engine: engineArg(flags.engine),
      };
      const { measureBench } = await import("./bench.ts");
      const { benchReport, pythonRatios } = await import("./study_report.ts");
      const raw = await measureBench({
        ...settings,
        onProgress: context.progress,
        signal: context.signal,
      });
      const ratios = pythonRatios(raw.throughput);
      const json = {
        options: settings,
        delay: raw.delay,
        throughput: raw.throughput,
        ratios,
        ...(raw.interrupted ? { interrupted: true } : {}),
      };
      const { text, report } = benchReport(raw, settings, json);
      return { results: json, text, report, options: settings };
    },
  }, setExit);
}
