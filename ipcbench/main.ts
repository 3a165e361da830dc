/**
 * `ipcbench`: message-passing speed between threads and processes.
 *
 * @module
 */
import {
  addOutputOptions,
  createProgram,
  intOption,
  jsonDocument,
  runMain,
  toolArgs,
  warn,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { enterRole } from "../shared/runtime.ts";
import { UsageError } from "../shared/errors.ts";
import { renderTable, studyText, writeReport, writeStudyReport } from "../shared/report.ts";
import { startProgress } from "../shared/progress.ts";
import { parseScale } from "../shared/study.ts";
import {
  benchPlots,
  benchTable,
  buildStudyReport,
  CPU_VS_WALL_NOTE,
  DEFAULT_SIZES,
  runBench,
  runStudyCases,
  studyCorrectedTable,
  studyLines,
} from "./bench.ts";
import { MAX_SIZE, MIN_SIZE } from "./message.ts";
import { RoundTripLog } from "./log.ts";
import { parseStreamTransports, runStreams, STREAM_TRANSPORTS, streamTable } from "./stream.ts";
import { type Pin, PINS } from "./system.ts";
import { parseTransports, TRANSPORT_NAMES, TRANSPORTS } from "./transports.ts";

/** Parses `--sizes` (bytes; `k` and `m` suffixes are KiB and MiB); the error names the bad value. */
export function parseSizes(text: string): number[] {
  const parts = text.split(",").map((part) => part.trim()).filter((part) => part !== "");
  if (parts.length === 0) throw new UsageError(`Invalid --sizes '${text}': the list is empty`);
  return [
    ...new Set(parts.map((part) => {
      const match = /^(\d+)([kKmM]?)$/.exec(part);
      const size = match
        ? Number(match[1]) * (match[2] === "" ? 1 : /k/i.test(match[2]) ? 1024 : 1 << 20)
        : NaN;
      if (!Number.isSafeInteger(size) || size < MIN_SIZE || size > MAX_SIZE) {
        throw new UsageError(
          `Invalid --sizes '${part}': expected a byte count from ${MIN_SIZE} to ${MAX_SIZE} ` +
            `(64 MiB; the counter takes 4 bytes)`,
        );
      }
      return size;
    })),
  ];
}

/** Parses `--pin` (one of same, split, none, a comma list, or `all`). */
export function parsePins(text: string): Pin[] {
  const parts = text.split(",").map((part) => part.trim().toLowerCase()).filter((p) => p !== "");
  if (parts.includes("all")) return [...PINS];
  if (parts.length === 0 || parts.some((part) => !(PINS as readonly string[]).includes(part))) {
    throw new UsageError(`Invalid --pin '${text}': expected same, split, none, a list, or all`);
  }
  return [...new Set(parts)] as Pin[];
}

interface BenchFlags {
  transports: string;
  sizes: string;
  roundTrips: number;
  warmup: number;
  runs: number;
  pin: string;
  maxBytes: number;
  timeout: number;
  anchors: boolean;
  out?: string;
  log?: string;
  study: boolean;
  scale: string;
  json: boolean;
  verbose: boolean;
  quiet: boolean;
}

async function benchCommand(flags: BenchFlags): Promise<number> {
  const started = performance.now();
  const progress = (total: number) => startProgress(total, "cases", !flags.json && !flags.quiet);
  if (flags.study) {
    const scale = parseScale(flags.scale);
    let bar: ReturnType<typeof progress> | null = null;
    const report = await buildStudyReport(scale, {
      timeoutMs: flags.timeout,
      onCase: (i, n) => {
        bar ??= progress(n);
        bar.update(i);
      },
    });
    (bar as ReturnType<typeof progress> | null)?.stop();
    const options = { study: true, scale, timeout: flags.timeout, out: flags.out ?? null };
    if (flags.out) await writeStudyReport(flags.out, report, [CPU_VS_WALL_NOTE]);
    if (flags.json) {
      const doc = jsonDocument("ipcbench", "bench", options, report, performance.now() - started);
      writeStdout(JSON.stringify(doc) + "\n");
      return 0;
    }
    writeStdout(studyText(report, [CPU_VS_WALL_NOTE]));
    return 0;
  }
  const options = {
    transports: parseTransports(flags.transports),
    sizes: parseSizes(flags.sizes),
    roundTrips: flags.roundTrips,
    warmup: flags.warmup,
    runs: flags.runs,
    pins: parsePins(flags.pin),
    maxBytes: flags.maxBytes,
    timeoutMs: flags.timeout,
    anchors: flags.anchors,
  };
  let bar: ReturnType<typeof progress> | null = null;
  const log = flags.log ? await RoundTripLog.open(flags.log) : null;
  let result: Awaited<ReturnType<typeof runBench>>;
  try {
    result = await runBench({
      ...options,
      onCase: (i, n, label) => {
        bar ??= progress(n);
        bar.update(i);
        if (flags.verbose) writeStderr(`measuring ${label}\n`);
      },
      onRoundTrips: log ? (item, run, samples) => log.write(item, run, samples) : undefined,
    });
    await log?.commit();
  } finally {
    log?.discard();
  }
  (bar as ReturnType<typeof progress> | null)?.stop();
  const table = benchTable(result);
  if (flags.out) {
    const written = await writeReport(flags.out, {
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
      tables: [table],
      plots: benchPlots(result.cases),
      json: result,
    });
    if (!flags.quiet && !flags.json) writeStderr(`wrote ${written.join(", ")}\n`);
  }
  if (flags.json) {
    const doc = jsonDocument("ipcbench", "bench", options, result, performance.now() - started);
    writeStdout(JSON.stringify(doc) + "\n");
    return 0;
  }
  writeStdout(renderTable(table) + "\n");
  writeStdout(`\n${CPU_VS_WALL_NOTE}\n`);
  if (!flags.quiet) {
    for (const skip of result.skipped) writeStderr(`skipped: ${skip}\n`);
    if (flags.verbose) { for (const warning of result.warnings) warn(warning); }
    else if (result.warnings.length > 0) {
      const busy = result.cases.filter((c) => c.warnings.length > 0).length;
      warn(
        `${busy} of ${result.cases.length} cases ran on a busy machine (CPU pressure above ` +
          `10%; -v lists them, the JSON has every reading)`,
      );
    }
  }
  return 0;
}

interface StreamFlags {
  transports: string;
  sizes: string;
  messages: number;
  maxBytes: number;
  runs: number;
  pin: string;
  underLoad: number;
  window: number;
  timeout: number;
  json: boolean;
  quiet: boolean;
}

async function streamCommand(flags: StreamFlags): Promise<number> {
  const started = performance.now();
  const options = {
    transports: parseStreamTransports(flags.transports),
    sizes: parseSizes(flags.sizes),
    messages: flags.messages,
    maxBytes: flags.maxBytes,
    runs: flags.runs,
    pins: parsePins(flags.pin),
    pingEvery: flags.underLoad,
    window: flags.window,
    timeoutMs: flags.timeout,
  };
  let bar: ReturnType<typeof startProgress> | null = null;
  const results = await runStreams({
    ...options,
    onCase: (i, n) => {
      bar ??= startProgress(n, "cases", !flags.json && !flags.quiet);
      bar.update(i);
    },
  });
  (bar as ReturnType<typeof startProgress> | null)?.stop();
  if (flags.json) {
    const doc = jsonDocument(
      "ipcbench",
      "stream",
      options,
      { results },
      performance.now() - started,
    );
    writeStdout(JSON.stringify(doc) + "\n");
  } else writeStdout(renderTable(streamTable(results)) + "\n");
  return 0;
}

interface StudyFlags {
  roundTrips: number;
  repeats: number;
  pin: string;
  timeout: number;
  json: boolean;
  quiet: boolean;
}

async function studyCommand(flags: StudyFlags): Promise<number> {
  const started = performance.now();
  const pins = parsePins(flags.pin);
  if (pins.length !== 1) throw new UsageError(`Invalid --pin '${flags.pin}': the study runs one`);
  const runs = await runStudyCases({
    roundTrips: flags.roundTrips,
    repeats: flags.repeats,
    pin: pins[0],
    timeoutMs: flags.timeout,
  });
  const options = { roundTrips: flags.roundTrips, repeats: flags.repeats, pin: pins[0] };
  if (flags.json) {
    const results = {
      printout: studyLines(runs),
      corrected: studyCorrectedTable(runs),
      note: CPU_VS_WALL_NOTE,
      runs,
    };
    writeStdout(
      JSON.stringify(
        jsonDocument("ipcbench", "study", options, results, performance.now() - started),
      ) +
        "\n",
    );
    return 0;
  }
  writeStdout(`OS: ${Deno.build.os}\nNum of cores: ${navigator.hardwareConcurrency}\n`);
  writeStdout(studyLines(runs).join("\n") + "\n\n");
  writeStdout(renderTable(studyCorrectedTable(runs)) + "\n\n" + CPU_VS_WALL_NOTE + "\n");
  return 0;
}

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram("ipcbench", "message-passing speed between threads and processes");
  let code = 0;
  const transportHelp = "\nTransports:\n" +
    TRANSPORT_NAMES.map((t) =>
      `  ${t.padEnd(16)}${TRANSPORTS[t].kind.padEnd(12)}${TRANSPORTS[t].label}`
    )
      .join("\n") +
    "\n";
  addOutputOptions(
    program.command("bench")
      .description(
        "measure round trips of a counter over each transport, size and placement " +
          "(--study: the study's experiment for the lab)",
      )
      .option("--transports <list>", "comma-separated list (below) or all", "all")
      .option("--sizes <list>", "message sizes in bytes (k, m suffixes)", DEFAULT_SIZES.join(","))
      .option("--round-trips <n>", "timed round trips per run", intOption(1, 100_000_000), 10000)
      .option("--warmup <n>", "untimed round trips first", intOption(0, 10_000_000), 1000)
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
      .option("--out <dir>", "write Markdown, CSV, JSON and SVG plots into DIR")
      .option("--log <file>", "write every timed round trip (CSV: transport,pin,size,run,index,us)")
      .option("--study", "run the study's experiment and print a StudyReport", false)
      .option("--scale <scale>", "study scale: smoke, quick or full", "smoke")
      .addHelpText("after", transportHelp),
  ).action(async (flags: BenchFlags) => {
    code = await benchCommand(flags);
  });
  addOutputOptions(
    program.command("stream")
      .description(
        "one-way throughput (MB/s, msg/s) per transport and size, and with --under-load K the " +
          "round trips of every K-th message while the stream flows (sockperf under-load)",
      )
      .option("--transports <list>", `${STREAM_TRANSPORTS.join(", ")} or all`, "all")
      .option("--sizes <list>", "message sizes in bytes (k, m suffixes)", "64,4096,65536")
      .option("--messages <n>", "messages per run", intOption(1, 100_000_000), 20000)
      .option("--max-bytes <n>", "bytes a run may carry (caps messages)", intOption(1), 64 << 20)
      .option("--runs <n>", "runs per case (median, CI)", intOption(1, 1000), 3)
      .option("--pin <list>", "placement: same, split, none; list or all", "same,split")
      .option("--under-load <k>", "every K-th message is answered (0: none)", intOption(0), 0)
      .option("--window <n>", "child channel: messages per acknowledgement", intOption(1), 64)
      .option("--timeout <ms>", "longest wait for any answer", intOption(100, 3_600_000), 10000),
  ).action(async (flags: StreamFlags) => {
    code = await streamCommand(flags);
  });
  addOutputOptions(
    program.command("study")
      .description(
        "run exactly the study's two cases (child pipes and TCP) and print them as the study " +
          "did, next to the corrected figures",
      )
      .option("--round-trips <n>", "round trips per case", intOption(1, 100_000_000), 10000)
      .option("--repeats <n>", "times to run both cases", intOption(1, 100), 3)
      .option("--pin <pin>", "placement: same, split or none", "none")
      .option("--timeout <ms>", "longest wait for any answer", intOption(100, 3_600_000), 10000),
  ).action(async (flags: StudyFlags) => {
    code = await studyCommand(flags);
  });
  // `deno task ipcbench -- bench ...` passes the `--` through.
  if (args[0] === "--") args = args.slice(1);
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  await program.parseAsync(args, { from: "user" });
  return code;
}

// The entry is also the worker and child entry: in those roles it serves its parent.
if (import.meta.main && !enterRole()) await runMain("ipcbench", () => main(toolArgs()));
