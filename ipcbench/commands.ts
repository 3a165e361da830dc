/**
 * The bodies of ipcbench's commands: each validates its flags, runs the core and
 * returns what `runCommand` prints (`results` for --json, `text` otherwise);
 * progress and warnings go to stderr.
 *
 * @module
 */
import { type CommandOutput, warn, writeStderr } from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { renderTable, studyText, writeReport, writeStudyReport } from "../shared/report.ts";
import { startProgress } from "../shared/progress.ts";
import { parseScale } from "../shared/study.ts";
import {
  benchPlots,
  benchTable,
  buildStudyReport,
  CPU_VS_WALL_NOTE,
  runBench,
  runStudyCases,
  studyCorrectedTable,
  studyLines,
} from "./bench.ts";
import { RoundTripLog } from "./log.ts";
import { parseHostPort, serve } from "./peer.ts";
import { parseStreamTransports, runStreams, streamTable } from "./stream.ts";
import { parseTransports } from "./transports.ts";
import { parsePins, parseSizes } from "./parse.ts";

/** Flags of one command. */
export interface BenchFlags {
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
  peer?: string;
  study: boolean;
  scale: string;
  json: boolean;
  verbose: boolean;
  quiet: boolean;
}

/** `ipcbench bench`. */
export async function benchCommand(flags: BenchFlags): Promise<CommandOutput> {
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
    if (flags.out) await writeStudyReport(flags.out, report, [CPU_VS_WALL_NOTE]);
    return { results: report, text: studyText(report, [CPU_VS_WALL_NOTE]) };
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
    peer: flags.peer ? parseHostPort(flags.peer, "--peer") : undefined,
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
  if (!flags.quiet && !flags.json) {
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
  return { results: result, text: `${renderTable(table)}\n\n${CPU_VS_WALL_NOTE}\n` };
}

/** Flags of one command. */
export interface StreamFlags {
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

/** `ipcbench stream`. */
export async function streamCommand(flags: StreamFlags): Promise<CommandOutput> {
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
  return { results: { cases: results }, text: renderTable(streamTable(results)) };
}

/** Flags of one command. */
export interface ServeFlags {
  listen: string;
  maxConnections: number;
  idleTimeout: number;
  once: boolean;
  json: boolean;
  quiet: boolean;
}

/** `ipcbench serve`; `interrupted` is set when a signal stopped it. */
export async function serveCommand(
  flags: ServeFlags,
  interrupted: { value: boolean },
): Promise<CommandOutput> {
  const address = parseHostPort(flags.listen, "--listen");
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const report = await serve({
      ...address,
      maxConnections: flags.maxConnections,
      idleMs: flags.idleTimeout,
      connections: flags.once ? 1 : undefined,
      signal: controller.signal,
      onListening: (a) => {
        if (!flags.quiet) {
          writeStderr(`ipcbench serve: listening on ${a.hostname}:${a.port} (tcp, udp)\n`);
        }
      },
      onError: (message) => flags.quiet || writeStderr(`ipcbench serve: ${message}\n`),
    });
    interrupted.value = controller.signal.aborted;
    return {
      results: report,
      text: `served ${report.connections} connection(s), ${report.messages} messages, ` +
        `${report.datagrams} datagrams; rejected ${report.rejected}`,
    };
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

/** Flags of one command. */
export interface StudyFlags {
  roundTrips: number;
  repeats: number;
  pin: string;
  timeout: number;
  json: boolean;
  quiet: boolean;
}

/** `ipcbench study`. */
export async function studyCommand(flags: StudyFlags): Promise<CommandOutput> {
  const pins = parsePins(flags.pin);
  if (pins.length !== 1) throw new UsageError(`Invalid --pin '${flags.pin}': the study runs one`);
  const runs = await runStudyCases({
    roundTrips: flags.roundTrips,
    repeats: flags.repeats,
    pin: pins[0],
    timeoutMs: flags.timeout,
  });
  const results = {
    printout: studyLines(runs),
    corrected: studyCorrectedTable(runs),
    note: CPU_VS_WALL_NOTE,
    runs,
  };
  const text = `OS: ${Deno.build.os}\nNum of cores: ${navigator.hardwareConcurrency}\n` +
    studyLines(runs).join("\n") + "\n\n" + renderTable(studyCorrectedTable(runs)) + "\n\n" +
    CPU_VS_WALL_NOTE;
  return { results, text };
}
