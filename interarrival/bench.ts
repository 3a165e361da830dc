/**
 * `interarrival bench`: timing accuracy and throughput of the generator and the
 * server, against a client and a server written in the study's style (Python,
 * stdlib only) run in the same process tree, and `--study`: the study's three
 * attempts re-run on this machine, as a {@linkcode StudyReport} for the lab.
 *
 * @module
 */
import type { Report, ReportTable } from "../shared/report.ts";
import { pressureLine } from "../shared/pressure.ts";
import type { Mode } from "../shared/mode.ts";
import { roundMs } from "../shared/clock.ts";
import { percentile } from "../shared/stats.ts";
import { parseDistribution } from "./distributions.ts";
import { fitGaps } from "./fit.ts";
import { dataGaps, measureReception } from "./server.ts";
import {
  type KsRow,
  ksRun,
  ksTable,
  udpRate,
  type UdpRateRow,
  udpRateTable,
} from "./bench_precision.ts";
import { runClient } from "./client.ts";
import { type PreparedPeer, preparePeer, startPeer, stopProcess } from "../shared/peer.ts";
import { STUDY_CLIENT_PEER, STUDY_SERVER_PEER } from "./peers.ts";

export const SEED_FILE = "004_4039e11e3db31957.txt";
let pythonPeers: Promise<PreparedPeer[]> | undefined;

/** The study-style Python programs (interarrival/peers.ts), written out on first use. */
async function pythonScripts(): Promise<{ client: string; server: string }> {
  pythonPeers ??= Promise.all([preparePeer(STUDY_CLIENT_PEER), preparePeer(STUDY_SERVER_PEER)])
    .then((peers) => {
      globalThis.addEventListener("unload", () => {
        for (const peer of peers) Deno.removeSync(peer.dir, { recursive: true });
      });
      return peers;
    });
  const [client, server] = await pythonPeers;
  return { client: client.argv[1], server: server.argv[1] };
}

/** Hooks and placement shared by every bench run. */
export interface BenchHooks {
  log?: (text: string) => void;
  /** Worker and child entry (default: the main module). */
  entry?: string | URL;
}

/** Options for {@linkcode runBench}. */
export interface BenchOptions extends BenchHooks {
  rate: number;
  workers: number;
  seconds: number;
  threads: number;
  events: number;
  modes: Mode[];
  python: boolean;
  /** Datagrams per second of the UDP precision run (0 skips it). */
  udpRate?: number;
  /** Seconds of the UDP precision run (default `seconds`). */
  udpSeconds?: number;
}

/** One accuracy run: one client, exponential gaps, measured by the server. */
export interface AccuracyRow {
  client: string;
  meanMs: number;
  events: number;
  /** Achieved mean gap vs the mean of the drawn gaps. */
  achievedMeanError: number;
  /** Send time − absolute deadline (ms). */
  errorP50: number;
  errorP99: number;
  /** |achieved gap − drawn gap| (ms). */
  gapErrorP50: number;
  gapErrorP99: number;
  serverKsP: number | null;
  received: number;
  sent: number;
}

/** One throughput run. */
export interface ThroughputRow {
  client: string;
  serverMode: Mode;
  workers: number;
  ratePerWorker: number;
  seconds: number;
  sent: number;
  received: number;
  lost: number;
  /** Connections whose count differs from what their worker sent. */
  miscounted: number;
  /** Messages per second over the sending phase. */
  achievedRate: number;
  errorP50: number;
  errorP99: number;
}

/** Everything `bench` measured. */
export interface BenchResult {
  accuracy: AccuracyRow[];
  throughput: ThroughputRow[];
  /** The study-style server's count of receptions vs the messages sent to it. */
  pythonServer: { sent: number; receptions: number; messages: number } | null;
  udp: UdpRateRow[];
  ks: KsRow[];
  skipped: string[];
  pressure: string | null;
  elapsedMs: number;
}

function cumulativeErrors(gapsMs: number[], sendsMs: number[]): number[] {
  // Deadlines of a sleep-after-send client: the first send plus the drawn gaps.
  const errors = [0];
  let deadline = sendsMs[0];
  for (let i = 0; i < gapsMs.length; i++) {
    deadline += gapsMs[i];
    errors.push(sendsMs[i + 1] - deadline);
  }
  return errors;
}

function gapErrors(requested: number[], achieved: number[]): number[] {
  return requested.map((gap, i) => Math.abs(achieved[i] - gap));
}

function relative(achieved: number[], requested: number[]): number {
  const a = achieved.reduce((x, y) => x + y, 0);
  const r = requested.reduce((x, y) => x + y, 0);
  return Math.round(((a - r) / r) * 1e6) / 1e6;
}

/** Whether python3 can run the study-style scripts. */
export async function pythonAvailable(): Promise<boolean> {
  try {
    await pythonScripts();
    const out = await new Deno.Command("python3", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

interface PythonClientOutput {
  elapsed: number;
  workers: { gaps: number[]; sends: number[] }[];
}

async function runPythonClient(
  port: number,
  workers: number,
  intervals: number,
  dist: string,
  param: number,
  seed: number,
): Promise<PythonClientOutput> {
  const out = await new Deno.Command("python3", {
    args: [
      (await pythonScripts()).client,
      "127.0.0.1",
      String(port),
      String(workers),
      String(intervals),
      dist,
      String(param),
      String(seed),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`python study client failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  const parsed = JSON.parse(new TextDecoder().decode(out.stdout)) as PythonClientOutput;
  for (const w of parsed.workers) {
    w.gaps = w.gaps.map((g) => g * 1000);
    w.sends = w.sends.map((s) => s * 1000);
  }
  return parsed;
}

/** Accuracy of this tool's client at an exponential mean of `meanMs`. */
export async function accuracyOurs(
  meanMs: number,
  events: number,
  seed: number,
  hooks: BenchHooks,
): Promise<AccuracyRow> {
  const dist = parseDistribution("e", [1000 / meanMs]);
  const { sent: client, received: stopped } = await measureReception(
    { mode: "async", entry: hooks.entry },
    1,
    (port) =>
      runClient({
        host: "127.0.0.1",
        port,
        workers: 1,
        intervals: events,
        dist,
        seed,
        entry: hooks.entry,
        keepRecords: events + 1,
      }),
  );
  const sender = client.senders[0];
  const gaps = dataGaps(stopped.connections);
  const ge = gapErrors(sender.requested, sender.achieved);
  return {
    client: "interarrival",
    meanMs,
    events,
    achievedMeanError: relative(sender.achieved, sender.requested),
    errorP50: roundMs(percentile(sender.errors, 50)),
    errorP99: roundMs(percentile(sender.errors, 99)),
    gapErrorP50: roundMs(percentile(ge, 50)),
    gapErrorP99: roundMs(percentile(ge, 99)),
    serverKsP: fitGaps(gaps, dist).ks?.pValue ?? null,
    received: stopped.summary.messages,
    sent: sender.messages,
  };
}

/** Accuracy of the study-style Python client, measured by this tool's server. */
export async function accuracyPython(
  meanMs: number,
  events: number,
  seed: number,
  hooks: BenchHooks,
): Promise<AccuracyRow> {
  const dist = parseDistribution("e", [1000 / meanMs]);
  const { sent: output, received: stopped } = await measureReception(
    { mode: "async", entry: hooks.entry },
    1,
    (port) => runPythonClient(port, 1, events, "e", 1000 / meanMs, seed),
  );
  const w = output.workers[0];
  const achieved = w.sends.slice(1).map((s, i) => s - w.sends[i]);
  const errors = cumulativeErrors(w.gaps, w.sends);
  const ge = gapErrors(w.gaps, achieved);
  return {
    client: "python (study style)",
    meanMs,
    events,
    achievedMeanError: relative(achieved, w.gaps),
    errorP50: roundMs(percentile(errors, 50)),
    errorP99: roundMs(percentile(errors, 99)),
    gapErrorP50: roundMs(percentile(ge, 50)),
    gapErrorP99: roundMs(percentile(ge, 99)),
    serverKsP: fitGaps(dataGaps(stopped.connections), dist).ks?.pValue ?? null,
    received: stopped.summary.messages,
    sent: w.sends.length,
  };
}

/** Throughput of this tool's client against this tool's server in `mode`. */
export async function throughputOurs(
  mode: Mode,
  workers: number,
  rate: number,
  seconds: number,
  threads: number,
  hooks: BenchHooks,
): Promise<ThroughputRow> {
  const intervals = Math.max(1, Math.round(rate * seconds));
  const { sent: client, received: stopped } = await measureReception(
    { mode, workers: 2, entry: hooks.entry },
    workers,
    (port) =>
      runClient({
        host: "127.0.0.1",
        port,
        workers,
        intervals,
        dist: parseDistribution("c", [rate]),
        seed: 1,
        threads,
        entry: hooks.entry,
      }),
  );
  const perConnection = stopped.connections.map((c) => c.messages);
  const span = Math.max(...client.senders.map((s) => s.lastSendMs));
  const sent = client.overall.messages;
  return {
    client: "interarrival",
    serverMode: mode,
    workers,
    ratePerWorker: rate,
    seconds,
    sent,
    received: stopped.summary.messages,
    lost: sent - stopped.summary.messages,
    miscounted: perConnection.filter((n) => n !== intervals + 1).length +
      Math.max(0, workers - perConnection.length),
    achievedRate: Math.round(sent / (span / 1000)),
    errorP50: client.overall.error.p50,
    errorP99: client.overall.error.p99,
  };
}

/** Throughput of the study-style Python client against this tool's async server. */
export async function throughputPython(
  workers: number,
  rate: number,
  seconds: number,
  hooks: BenchHooks,
): Promise<ThroughputRow> {
  const intervals = Math.max(1, Math.round(rate * seconds));
  const { sent: output, received: stopped } = await measureReception(
    { mode: "async", entry: hooks.entry },
    workers,
    (port) => runPythonClient(port, workers, intervals, "d", 1 / rate, 1),
  );
  const errors = output.workers.flatMap((w) => cumulativeErrors(w.gaps, w.sends));
  const sent = output.workers.reduce((sum, w) => sum + w.sends.length, 0);
  const first = Math.min(...output.workers.map((w) => w.sends[0]));
  const last = Math.max(...output.workers.map((w) => w.sends[w.sends.length - 1]));
  return {
    client: "python (study style)",
    serverMode: "async",
    workers,
    ratePerWorker: rate,
    seconds,
    sent,
    received: stopped.summary.messages,
    lost: sent - stopped.summary.messages,
    miscounted: stopped.connections.filter((c) => c.messages !== intervals + 1).length,
    achievedRate: Math.round(sent / ((last - first) / 1000)),
    errorP50: roundMs(percentile(errors, 50)),
    errorP99: roundMs(percentile(errors, 99)),
  };
}

/** Sends to the study-style Python server and reads back what it counted. */
export async function pythonServerCount(
  workers: number,
  intervals: number,
  meanMs: number,
  hooks: BenchHooks,
): Promise<{ sent: number; receptions: number; messages: number }> {
  // It prints its port, then its counts once told to stop (SIGTERM).
  const peer = await startPeer("python3", {
    args: [(await pythonScripts()).server, "0"],
    timeoutMs: 20_000,
  });
  try {
    const { port } = JSON.parse(peer.firstLine);
    const client = await runClient({
      host: "127.0.0.1",
      port,
      workers,
      intervals,
      dist: parseDistribution("e", [1000 / meanMs]),
      seed: 3,
      entry: hooks.entry,
      // The study's server counts lines.
      format: "text",
    });
    peer.child.kill("SIGTERM");
    const counts = JSON.parse((await peer.nextLine(20_000)) ?? "null");
    if (counts === null) throw new Error("python study server ended early");
    return {
      sent: client.overall.messages,
      receptions: counts.receptions,
      messages: counts.messages,
    };
  } finally {
    await stopProcess(peer.child, 0);
  }
}

export function cpuPressure(): string | null {
  return pressureLine();
}

/** Runs the accuracy and throughput benchmarks. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const skipped: string[] = [];
  const python = options.python && (await pythonAvailable());
  if (options.python && !python) {
    skipped.push("Python comparison: python3 is not available");
  }
  if (!options.python) skipped.push("Python comparison: --no-python");
  const accuracy: AccuracyRow[] = [];
  for (const meanMs of [10, 1]) {
    log(`accuracy: exponential, ${meanMs} ms mean, ${options.events} events`);
    accuracy.push(await accuracyOurs(meanMs, options.events, 42, options));
    if (python) accuracy.push(await accuracyPython(meanMs, options.events, 42, options));
  }
  const throughput: ThroughputRow[] = [];
  for (const mode of options.modes) {
    log(
      `throughput: ${options.workers} workers × ${options.rate}/s × ${options.seconds} s, ${mode} server`,
    );
    throughput.push(
      await throughputOurs(
        mode,
        options.workers,
        options.rate,
        options.seconds,
        options.threads,
        options,
      ),
    );
  }
  const udp: UdpRateRow[] = [];
  if ((options.udpRate ?? 100_000) > 0) {
    const rate = options.udpRate ?? 100_000, seconds = options.udpSeconds ?? options.seconds;
    log(`precision: UDP, ${rate} datagrams/s of 64 bytes for ${seconds} s`);
    udp.push(await udpRate(rate, seconds, 64, options));
  }
  const ks: KsRow[] = [];
  for (const protocol of ["udp", "tcp"] as const) {
    log(`precision: KS, exponential 1 ms mean over ${protocol}, ${options.events} events`);
    ks.push(await ksRun(protocol, 1, options.events, options));
  }
  let pythonServer = null;
  if (python) {
    log(`throughput: study-style Python client, ${options.workers} threads`);
    throughput.push(
      await throughputPython(options.workers, options.rate, options.seconds, options),
    );
    log("study-style Python server: counting receptions");
    pythonServer = await pythonServerCount(4, Math.min(500, options.events), 1, options);
  }
  return {
    accuracy,
    throughput,
    pythonServer,
    udp,
    ks,
    skipped,
    pressure: cpuPressure(),
    elapsedMs: roundMs(performance.now() - started),
  };
}

/** The accuracy table. */
export function accuracyTable(rows: AccuracyRow[]): ReportTable {
  return {
    title: "Timing accuracy: exponential gaps, one worker, loopback (ms)",
    columns: [
      "client",
      "mean gap (ms)",
      "events",
      "achieved mean vs drawn",
      "error p50",
      "error p99",
      "gap error p50",
      "gap error p99",
      "server KS p",
      "sent",
      "received",
    ],
    rows: rows.map((r) => [
      r.client,
      r.meanMs,
      r.events,
      `${(r.achievedMeanError * 100).toFixed(3)}%`,
      r.errorP50,
      r.errorP99,
      r.gapErrorP50,
      r.gapErrorP99,
      r.serverKsP === null ? null : Number(r.serverKsP.toPrecision(3)),
      r.sent,
      r.received,
    ]),
  };
}

/** The throughput table. */
export function throughputTable(rows: ThroughputRow[]): ReportTable {
  return {
    title: "Throughput: constant rate per worker, loopback",
    columns: [
      "client",
      "server mode",
      "workers × rate",
      "seconds",
      "sent",
      "received",
      "lost",
      "miscounted connections",
      "achieved msg/s",
      "error p50 (ms)",
      "error p99 (ms)",
    ],
    rows: rows.map((r) => [
      r.client,
      r.serverMode,
      `${r.workers} × ${r.ratePerWorker}/s`,
      r.seconds,
      r.sent,
      r.received,
      r.lost,
      r.miscounted,
      r.achievedRate,
      r.errorP50,
      r.errorP99,
    ]),
  };
}

function ratioNote(rows: AccuracyRow[]): string[] {
  const notes: string[] = [];
  for (const meanMs of [...new Set(rows.map((r) => r.meanMs))]) {
    const ours = rows.find((r) => r.meanMs === meanMs && r.client === "interarrival");
    const py = rows.find((r) => r.meanMs === meanMs && r.client !== "interarrival");
    if (ours && py) {
      notes.push(
        `At a ${meanMs} ms mean the study-style Python client's p99 timing error is ` +
          `${(py.errorP99 / Math.max(ours.errorP99, 1e-3)).toFixed(1)}× this tool's ` +
          `(${py.errorP99} ms vs ${ours.errorP99} ms; per-gap p99 ${py.gapErrorP99} vs ${ours.gapErrorP99} ms).`,
      );
    }
  }
  return notes;
}

/** Report for the terminal and `--out DIR`. */
export function benchReport(result: BenchResult): Report {
  const notes = [...ratioNote(result.accuracy)];
  if (result.pythonServer) {
    const p = result.pythonServer;
    notes.push(
      `The study-style server counted ${p.receptions} receptions for ${p.sent} messages ` +
        `(recv(1024) counts reads, not messages).`,
    );
  }
  if (result.pressure) notes.push(`CPU pressure at the end: ${result.pressure}`);
  return {
    name: "interarrival-bench",
    title: "interarrival bench",
    notes,
    tables: [
      accuracyTable(result.accuracy),
      throughputTable(result.throughput),
      ...(result.udp.length ? [udpRateTable(result.udp)] : []),
      ksTable(result.ks),
    ],
    json: result,
  };
}
