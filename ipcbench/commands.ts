/**
 * The bodies of ipcbench's `stream`, `serve` and `study` commands (`bench` is
 * bench_cli.ts): each validates its flags, runs the core and returns what
 * `runCommand` prints (`results` for --json, `text` otherwise); progress goes
 * to stderr.
 *
 * @module
 */
import { claimStopSignals, type CommandOutput, writeStderr } from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { renderTable } from "../shared/report.ts";
import { startProgress } from "../shared/progress.ts";
import { parseHostPort, serve } from "./peer.ts";
import { parseStreamTransports, runStreams, streamTable } from "./stream.ts";
import { runStudyCases } from "./study.ts";
import { studyCorrectedTable, studyLines } from "./study_report.ts";
import { CPU_VS_WALL_NOTE } from "./study_plans.ts";
import { parsePins, parseSizes } from "./parse.ts";

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
    onProgress: (i, n) => {
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
  const release = claimStopSignals();
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
    release();
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
