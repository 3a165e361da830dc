/**
 * `interarrival bench`'s measurements: timing accuracy and throughput of the
 * generator and the server, against a client and a server written in the
 * study's style (Python, stdlib only) run in the same process tree. Only
 * measuring: the tables are in bench_tables.ts, the study in study*.ts.
 *
 * @module
 */
import { pressureLine } from "../shared/pressure.ts";
import type { Mode } from "../shared/mode.ts";
import { roundMs } from "../shared/clock.ts";
import { percentile } from "../shared/stats.ts";
import { parseDistribution } from "./distributions.ts";
import { fitGaps } from "./fit.ts";
import { dataGaps, measureReception } from "./server.ts";
import { type KsRow, ksRun, udpRate, type UdpRateRow } from "./bench_precision.ts";
import { runClient } from "./client.ts";
import { type PreparedPeer, preparePeer, startPeer, stopProcess } from "../shared/peer.ts";
import { STUDY_CLIENT_PEER, STUDY_SERVER_PEER } from "./peers.ts";
import { describePriority, type SenderPriority } from "./priority.ts";

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
  onProgress?: (line: string) => void;
  /** Worker and child entry (default: the main module). */
  entry?: string | URL;
  /** Aborting stops the run in progress (its clients, servers and children). */
  signal?: AbortSignal;
  /** This tool's sending threads' CPU priority (default `normal`; the command's `realtime`). */
  priority?: SenderPriority;
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
  /** What this tool's sending threads ran at (priority.ts), in words. */
  priority?: string;
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
  /** Set when a signal stopped the bench: the rows are what was measured before it. */
  interrupted?: string;
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
  signal?: AbortSignal,
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
    signal,
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

/**
 * Timing accuracy at an exponential mean of `meanMs`, one flow measured by this
 * tool's server: of this tool's client, or of the study-style Python client.
 */
export async function accuracyRun(
  client: "interarrival" | "python (study style)",
  meanMs: number,
  events: number,
  seed: number,
  hooks: BenchHooks,
): Promise<AccuracyRow> {
  const dist = parseDistribution("e", [1000 / meanMs]);
  const { sent: gaps, received: stopped } = await measureReception(
    { mode: "async", entry: hooks.entry },
    1,
    async (port): Promise<ClientGaps> => {
      if (client !== "interarrival") {
        const run = await runPythonClient(port, 1, events, "e", 1000 / meanMs, seed, hooks.signal);
        const w = run.workers[0];
        return {
          requested: w.gaps,
          achieved: w.sends.slice(1).map((s, i) => s - w.sends[i]),
          errors: cumulativeErrors(w.gaps, w.sends),
          sent: w.sends.length,
        };
      }
      const run = await runClient({
        host: "127.0.0.1",
        port,
        workers: 1,
        intervals: events,
        dist,
        seed,
        entry: hooks.entry,
        signal: hooks.signal,
        keepRecords: events + 1,
        priority: hooks.priority,
      });
      const sender = run.senders[0];
      return {
        requested: sender.requested,
        achieved: sender.achieved,
        errors: sender.errors,
        sent: sender.messages,
      };
    },
  );
  return accuracyRow(client, meanMs, events, dist, stopped, gaps);
}

/** What a client's own records say about its gaps. */
interface ClientGaps {
  requested: number[];
  achieved: number[];
  /** Send time − deadline (ms). */
  errors: number[];
  sent: number;
}

function accuracyRow(
  client: string,
  meanMs: number,
  events: number,
  dist: ReturnType<typeof parseDistribution>,
  stopped: Awaited<ReturnType<typeof measureReception>>["received"],
  gaps: ClientGaps,
): AccuracyRow {
  const ge = gapErrors(gaps.requested, gaps.achieved);
  return {
    client,
    meanMs,
    events,
    achievedMeanError: relative(gaps.achieved, gaps.requested),
    errorP50: roundMs(percentile(gaps.errors, 50)),
    errorP99: roundMs(percentile(gaps.errors, 99)),
    gapErrorP50: roundMs(percentile(ge, 50)),
    gapErrorP99: roundMs(percentile(ge, 99)),
    serverKsP: fitGaps(dataGaps(stopped.connections), dist).ks?.pValue ?? null,
    received: stopped.summary.messages,
    sent: gaps.sent,
  };
}

/** What a throughput run's client reports about its sending. */
interface Sending {
  priority?: string;
  sent: number;
  /** From the first send to the last, ms. */
  spanMs: number;
  errorP50: number;
  errorP99: number;
}

/**
 * Throughput at `workers` × `rate` messages/s for `seconds`, against this tool's
 * server in `mode`: of this tool's client (`threads` Web Workers) or of the
 * study-style Python client (a thread per worker).
 */
export async function throughputRun(
  client: "interarrival" | "python (study style)",
  mode: Mode,
  workers: number,
  rate: number,
  seconds: number,
  threads: number,
  hooks: BenchHooks,
): Promise<ThroughputRow> {
  const intervals = Math.max(1, Math.round(rate * seconds));
  // Only counts and the client's histograms are read here: neither side keeps
  // per-message samples (every message is still counted and timed).
  const { sent: sending, received: stopped } = await measureReception(
    { mode, workers: 2, entry: hooks.entry, keepSamples: false },
    workers,
    async (port): Promise<Sending> => {
      if (client !== "interarrival") {
        const run = await runPythonClient(port, workers, intervals, "d", 1 / rate, 1, hooks.signal);
        const errors = run.workers.flatMap((w) => cumulativeErrors(w.gaps, w.sends));
        const first = Math.min(...run.workers.map((w) => w.sends[0]));
        const last = Math.max(...run.workers.map((w) => w.sends[w.sends.length - 1]));
        return {
          sent: run.workers.reduce((sum, w) => sum + w.sends.length, 0),
          spanMs: last - first,
          errorP50: roundMs(percentile(errors, 50)),
          errorP99: roundMs(percentile(errors, 99)),
        };
      }
      const run = await runClient({
        host: "127.0.0.1",
        port,
        workers,
        intervals,
        dist: parseDistribution("c", [rate]),
        seed: 1,
        threads,
        entry: hooks.entry,
        signal: hooks.signal,
        keepRecords: 0,
        priority: hooks.priority,
      });
      return {
        priority: describePriority(run.senders.map((s) => s.priority)),
        sent: run.overall.messages,
        spanMs: Math.max(...run.senders.map((s) => s.lastSendMs)),
        errorP50: run.overall.error.p50,
        errorP99: run.overall.error.p99,
      };
    },
  );
  const perConnection = stopped.connections.map((c) => c.messages);
  return {
    client,
    serverMode: mode,
    workers,
    ratePerWorker: rate,
    seconds,
    sent: sending.sent,
    received: stopped.summary.messages,
    lost: sending.sent - stopped.summary.messages,
    miscounted: perConnection.filter((n) => n !== intervals + 1).length +
      Math.max(0, workers - perConnection.length),
    achievedRate: Math.round(sending.sent / (sending.spanMs / 1000)),
    errorP50: sending.errorP50,
    errorP99: sending.errorP99,
    ...(sending.priority ? { priority: sending.priority } : {}),
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
      signal: hooks.signal,
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

/**
 * Runs the accuracy, throughput and precision benchmarks. When `signal` aborts,
 * the run in progress stops (its servers and children with it) and the result
 * holds what was measured before, with `interrupted` set.
 */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const started = performance.now();
  const log = options.onProgress ?? (() => {});
  const result: BenchResult = {
    accuracy: [],
    throughput: [],
    pythonServer: null,
    udp: [],
    ks: [],
    skipped: [],
    pressure: null,
    elapsedMs: 0,
  };
  const python = options.python && (await pythonAvailable());
  if (options.python && !python) {
    result.skipped.push("Python comparison: python3 is not available");
  }
  if (!options.python) result.skipped.push("Python comparison: --no-python");
  const steps: [string, () => Promise<void>][] = [];
  for (const meanMs of [10, 1]) {
    steps.push([`accuracy: exponential, ${meanMs} ms mean, ${options.events} events`, async () => {
      result.accuracy.push(await accuracyRun("interarrival", meanMs, options.events, 42, options));
      if (python) {
        result.accuracy.push(
          await accuracyRun("python (study style)", meanMs, options.events, 42, options),
        );
      }
    }]);
  }
  const { workers, rate, seconds, threads } = options;
  for (const mode of options.modes) {
    steps.push([
      `throughput: ${workers} workers × ${rate}/s × ${seconds} s, ${mode} server`,
      async () => {
        result.throughput.push(
          await throughputRun("interarrival", mode, workers, rate, seconds, threads, options),
        );
      },
    ]);
  }
  const udpRateValue = options.udpRate ?? 100_000;
  if (udpRateValue > 0) {
    const udpSeconds = options.udpSeconds ?? seconds;
    steps.push([
      `precision: UDP, ${udpRateValue} datagrams/s of 64 bytes for ${udpSeconds} s`,
      async () => {
        result.udp.push(await udpRate(udpRateValue, udpSeconds, 64, options));
      },
    ]);
  }
  for (const protocol of ["udp", "tcp"] as const) {
    steps.push([
      `precision: KS, exponential 1 ms mean over ${protocol}, ${options.events} events`,
      async () => {
        result.ks.push(await ksRun(protocol, 1, options.events, options));
      },
    ]);
  }
  if (python) {
    steps.push([`throughput: study-style Python client, ${workers} threads`, async () => {
      result.throughput.push(
        await throughputRun("python (study style)", "async", workers, rate, seconds, 1, options),
      );
    }]);
    steps.push(["study-style Python server: counting receptions", async () => {
      result.pythonServer = await pythonServerCount(4, Math.min(500, options.events), 1, options);
    }]);
  }
  for (const [what, step] of steps) {
    if (options.signal?.aborted) break;
    log(what);
    try {
      await step();
    } catch (error) {
      if (!options.signal?.aborted) throw error;
    }
  }
  if (options.signal?.aborted) result.interrupted = String(options.signal.reason?.message ?? "");
  result.pressure = cpuPressure();
  result.elapsedMs = roundMs(performance.now() - started);
  return result;
}
