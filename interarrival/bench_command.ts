/**
 * The `interarrival bench` command: its options, and the flow around them from
 * shared/bench_command.ts (`--study` runs the study of study.ts for the lab;
 * without it, the accuracy, throughput and precision benchmarks of bench.ts).
 * SIGINT or SIGTERM stops the run in progress, prints what was measured (text,
 * or one JSON document under `--json`) and exits 130 or 143.
 *
 * @module
 */
import type { Command } from "commander";
import { exitCodeAfter, intOption, numberOption, warn, watchStopSignals } from "../shared/cli.ts";
import {
  addBenchCommand as addSharedBenchCommand,
  type BenchFlags,
} from "../shared/bench_command.ts";
import { parseModeList } from "../shared/mode.ts";
import type { BenchOptions } from "./bench.ts";
import { priorityOption } from "./cli_options.ts";

type InterarrivalBenchFlags = BenchFlags & Omit<BenchOptions, "onProgress" | "entry" | "signal">;

/** Adds `bench` to `program`; `setExit` receives its exit code (130/143 after a signal). */
export function addBenchCommand(program: Command, setExit: (code: number) => void): void {
  let stopped: "SIGINT" | "SIGTERM" | null = null;
  addSharedBenchCommand<InterarrivalBenchFlags>(program, {
    tool: "interarrival",
    description: "timing accuracy, throughput and precision against a study-style Python client",
    scaleHelp: "study scale: smoke | quick | full",
    options: (command) =>
      command
        .option("--rate <r>", "events/s per worker for the throughput run", numberOption(0), 1000)
        .option("--workers <n>", "workers for the throughput run", intOption(1, 1000), 100)
        .option("--seconds <s>", "duration of the throughput run", numberOption(0), 10)
        .option("--threads <n>", "client Web Workers for the throughput run", intOption(1, 1000), 2)
        .option("--events <n>", "events for the accuracy runs", intOption(10), 2000)
        .option(
          "--modes <list>",
          "server modes for the throughput run",
          (v: string) => parseModeList(v, "--modes"),
          ["async", "thread"],
        )
        .option("--no-python", "skip the study-style Python comparison")
        .option(
          "--udp-rate <n>",
          "datagrams/s of the UDP precision run (0 skips)",
          intOption(0),
          100_000,
        )
        .option(
          "--udp-seconds <s>",
          "seconds of the UDP precision run (default --seconds)",
          numberOption(0),
        )
        .addOption(priorityOption("realtime")),
    study: async ({ scale, progress }) => {
      const { runStudy } = await import("../shared/study_harness.ts");
      const { interarrivalStudy } = await import("./study.ts");
      return await runStudy(interarrivalStudy, scale, { progress });
    },
    bench: async ({ progress }, flags) => {
      const { runBench } = await import("./bench.ts");
      const { benchReport, benchText } = await import("./bench_tables.ts");
      const signals = watchStopSignals();
      try {
        const result = await runBench({
          rate: flags.rate,
          workers: flags.workers,
          seconds: flags.seconds,
          threads: flags.threads,
          events: flags.events,
          modes: flags.modes,
          python: flags.python,
          udpRate: flags.udpRate,
          udpSeconds: flags.udpSeconds,
          priority: flags.priority,
          onProgress: progress,
          signal: signals.abort,
        });
        stopped = signals.signal;
        for (const s of result.skipped) warn(s);
        const report = benchReport(result);
        return { results: result, text: benchText(report), report };
      } finally {
        signals.dispose();
      }
    },
  }, (code) => setExit(exitCodeAfter(stopped, code)));
}
