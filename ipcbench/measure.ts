/**
 * Measures one transport at one message size under one placement: warm-up, then
 * several runs of timed round trips, each checked, each timed, with CPU time of
 * both sides and the CPU pressure around every run. Never prints.
 *
 * @module
 */
import { type Service, spawn } from "../shared/runtime.ts";
import { serviceOf } from "../shared/registry.ts";
import { logHistogram, median, roundSummary, summarize, type Summary } from "../shared/stats.ts";
import {
  HdrHistogram,
  type HdrHistogramData,
  type PercentileSummary,
} from "../shared/hdr_histogram.ts";
import { hdrOf, hdrSummaryUs, type MedianCI, medianConfidence } from "./percentiles.ts";
export { hdrSummaryUs, type MedianCI, medianConfidence } from "./percentiles.ts";
import { TimeoutError } from "../shared/errors.ts";
import {
  counterMismatch,
  newMessage,
  readCounter,
  RUN_EPOCH,
  stampCounter,
  touchAll,
} from "./message.ts";
import {
  type Pin,
  pinCpus,
  pinMainThread,
  type Placement,
  type PressureWindow,
  pressureWindow,
  processCpuMs,
  readPressure,
  threadCpuMs,
  threadCpuSource,
  threadPlacement,
  wasBusy,
} from "./system.ts";
import { openPeerLink } from "./peer.ts";
import {
  type EchoReport,
  type Link,
  type LinkOptions,
  openLink,
  portLink,
  startEcho,
  type Transport,
  TRANSPORTS,
} from "./transports.ts";

/** What to measure. */
export interface CasePlan {
  transport: Transport;
  size: number;
  /** Timed round trips per run. */
  roundTrips: number;
  /** Untimed round trips before the first run. */
  warmup: number;
  /**
   * Then more untimed round trips until the warm-up has lasted this long, ms
   * (default 0): V8 optimizes the per-message code of a fresh channel only
   * after thousands of messages (a shared-memory channel ran its first
   * ~15,000 round trips at about 0.6x its steady rate), so a count that suits
   * one transport is too short or too long for another.
   */
  warmupMs?: number;
  runs: number;
  pin: Pin;
  /** Milliseconds any single wait may take. */
  timeoutMs: number;
  /** Module that registers the services (the tool's main.ts, or a test fixture). */
  entry?: string | URL;
  /** For tests: the echo side exits after this many messages. */
  dieAfter?: number;
  /** For tests: the echo side answers wrongly after this many messages. */
  corruptAfter?: number;
  /** The CPU list the measuring side was pinned to (set while measuring, for the report). */
  pinnedTo?: string;
  /** Called with every timed round trip of each run, microseconds (`--log`). */
  onRoundTrips?: (run: number, samples: Float64Array) => void;
  /** A remote `ipcbench serve` to measure against (tcp and udp only). */
  peer?: { hostname: string; port: number };
}

/** One timed run. */
export interface RunResult {
  roundTrips: number;
  /** Wall time of the timed (clocked) pass, milliseconds. */
  wallMs: number;
  /**
   * Wall time of a second pass without reading the clock per round trip (spinning
   * transports only: there the clock read costs as much as the round trip).
   */
  clockFreeWallMs: number | null;
  roundTripsPerSec: number;
  oneWayPerSec: number;
  /** Bytes moved in both directions per second of wall time, in MB (10^6). */
  mbPerSec: number;
  /** The study's figure: round trips (= transfers / 2) over the parent process's CPU seconds. */
  studyMetric: number;
  /** CPU milliseconds of the measuring thread, of its whole process, and of the echo thread. */
  cpuMs: { measuring: number; process: number; echo: number | null };
  /** Round-trip latency in microseconds, over every round trip of the run. */
  latencyUs: Summary;
  /** The same from an HDR histogram (≤ 0.8 % error): p99.9 and p99.99 too, microseconds. */
  hdrUs: PercentileSummary;
  histogram: { edges: number[]; counts: number[] };
  pressure: PressureWindow;
  busy: boolean;
}

/** Everything measured for one transport, size and placement. */
export interface CaseResult {
  transport: Transport;
  kind: string;
  size: number;
  pin: Pin;
  /** The CPU lists asked for, and where each side actually was. */
  placement: {
    requested: { measuring?: string; echo?: string };
    measuring: Placement;
    echo: Placement | null;
  };
  runs: RunResult[];
  /**
   * Where CPU times come from: `schedstat` (per thread, ns; needs --allow-all),
   * `rusage-ticks` (per thread, 10 ms ticks), `process` (a child's getrusage).
   */
  cpuSource: { measuring: string; echo: string | null };
  /** For child processes: the channel kind that ran (and why, if a fallback). */
  channel?: string;
  /** Messages the echo side answered (warm-up included); `null` in-process. */
  echoHandled: number | null;
  /** Medians over the runs, and the spread of round trips per second. */
  median: {
    roundTripsPerSec: number;
    oneWayPerSec: number;
    mbPerSec: number;
    p50Us: number;
    p99Us: number;
    maxUs: number;
    studyMetric: number;
  };
  spread: { roundTripsPerSecMin: number; roundTripsPerSecMax: number };
  /** Percentiles over every timed round trip of every run (HDR histogram), microseconds. */
  allRunsUs: PercentileSummary;
  /** That histogram, in nanoseconds (merge several with `HdrHistogram.fromJSON`). */
  hdrNs: HdrHistogramData;
  /**
   * Distribution-free confidence interval on the median of the runs' round trips
   * per second (order statistics, as netperf's -I reports one on the mean), and
   * the level it reaches with this many runs (e.g. 75 % for 3 runs, 97.9 % for 8).
   */
  medianCI: MedianCI;
  warnings: string[];
}

/** Result of the measuring side's loop (in this isolate or in a measuring worker). */
type MeasuredRun = Omit<RunResult, "cpuMs"> & {
  cpuMs: { measuring: number; process: number };
  hdrNs: HdrHistogramData;
};
interface LinkMeasurement {
  runs: MeasuredRun[];
  placement: Placement;
  cpuSource: string;
}

const SPINNING: ReadonlySet<Transport> = new Set(["sab-spin"]);

/**
 * Message counts at which the echo side reads its CPU time (the run
 * boundaries), counted from the first timed message (the one stamped
 * {@linkcode RUN_EPOCH}).
 */
export function runMarks(plan: CasePlan): number[] {
  const passes = SPINNING.has(plan.transport) ? 2 : 1;
  return Array.from({ length: plan.runs + 1 }, (_, r) => r * plan.roundTrips * passes);
}

/** Round trips per look at the clock during a timed warm-up. */
const WARMUP_CHUNK = 500;

let sink = 0;

/** The running sum of the bytes the measuring side read (kept so the reads cannot be optimised away). */
export function touchedSum(): number {
  return sink;
}

/** Runs `count` round trips; stores each one's microseconds in `samples` when given. */
async function loop(
  link: Link,
  state: { message: Uint8Array; value: number; done: number },
  size: number,
  count: number,
  samples: Float64Array | null,
): Promise<void> {
  let message = state.message;
  let value = state.value;
  const touch = link.touch;
  if (link.roundTripSync) {
    const trip = link.roundTripSync;
    for (let i = 0; i < count; i++) {
      const t0 = samples ? performance.now() : 0;
      message = trip(message);
      if (samples) samples[i] = (performance.now() - t0) * 1000;
      const got = readCounter(message, size);
      if (got !== ((value + 1) >>> 0)) throw counterMismatch(state.done + i + 1, value, got);
      value = (got + 1) >>> 0;
      stampCounter(message, value);
    }
  } else {
    const trip = link.roundTrip!;
    for (let i = 0; i < count; i++) {
      const t0 = samples ? performance.now() : 0;
      message = await trip(message);
      if (samples) samples[i] = (performance.now() - t0) * 1000;
      if (touch) sink ^= touchAll(message);
      const got = readCounter(message, size);
      if (got !== ((value + 1) >>> 0)) throw counterMismatch(state.done + i + 1, value, got);
      value = (got + 1) >>> 0;
      stampCounter(message, value);
    }
  }
  state.message = message;
  state.value = value;
  state.done += count;
}

/**
 * A watchdog for async links: if no round trip completes for `timeoutMs`, the
 * link is aborted (a peer that hangs alive would otherwise hang the run).
 */
function watchdog(link: Link, state: { done: number }, timeoutMs: number): () => void {
  let last = -1;
  const timer = setInterval(() => {
    if (state.done === last) {
      link.abort(new TimeoutError(`any answer from ${link.where}`, timeoutMs));
    }
    last = state.done;
  }, timeoutMs);
  return () => clearInterval(timer);
}

/** The measuring loop: warm-up, then the runs. */
export async function measureLink(link: Link, plan: CasePlan): Promise<LinkMeasurement> {
  const state = { message: newMessage(plan.size, 1), value: 1, done: 0 };
  const stopWatchdog = watchdog(link, state, plan.timeoutMs);
  const samples = new Float64Array(plan.roundTrips);
  const runs: LinkMeasurement["runs"] = [];
  try {
    const warmupStart = performance.now();
    await loop(link, state, plan.size, plan.warmup, null);
    while (performance.now() - warmupStart < (plan.warmupMs ?? 0)) {
      await loop(link, state, plan.size, WARMUP_CHUNK, null);
    }
    // The timed runs start at a known counter (the echo side's run marks count from it).
    state.value = RUN_EPOCH;
    stampCounter(state.message, RUN_EPOCH);
    for (let r = 0; r < plan.runs; r++) {
      const before = readPressure();
      const thread0 = threadCpuMs();
      const process0 = processCpuMs();
      const t0 = performance.now();
      await loop(link, state, plan.size, plan.roundTrips, samples);
      const t1 = performance.now();
      let clockFreeWallMs: number | null = null;
      if (SPINNING.has(plan.transport)) {
        await loop(link, state, plan.size, plan.roundTrips, null);
        clockFreeWallMs = performance.now() - t1;
      }
      const wallAll = performance.now() - t0;
      const thread1 = threadCpuMs();
      const process1 = processCpuMs();
      const pressure = pressureWindow(before, readPressure(), wallAll);
      const wallMs = t1 - t0;
      const rate = plan.roundTrips / ((clockFreeWallMs ?? wallMs) / 1000);
      const passes = clockFreeWallMs === null ? 1 : 2;
      const latency = summarize(samples);
      const hdr = hdrOf(samples);
      plan.onRoundTrips?.(r, samples);
      runs.push({
        roundTrips: plan.roundTrips,
        wallMs: round(wallMs),
        clockFreeWallMs: clockFreeWallMs === null ? null : round(clockFreeWallMs),
        roundTripsPerSec: Math.round(rate),
        oneWayPerSec: Math.round(2 * rate),
        mbPerSec: round((2 * plan.size * rate) / 1e6),
        studyMetric: Math.round((plan.roundTrips * passes) / ((process1 - process0) / 1000)),
        cpuMs: { measuring: round(thread1 - thread0), process: round(process1 - process0) },
        latencyUs: roundSummary(latency),
        hdrUs: hdrSummaryUs(hdr),
        hdrNs: hdr.toJSON(),
        histogram: logHistogram(samples, 5),
        pressure,
        busy: wasBusy(pressure),
      });
    }
  } finally {
    stopWatchdog();
  }
  return {
    runs,
    placement: threadPlacement(plan.pinnedTo ?? "unpinned"),
    cpuSource: threadCpuSource(),
  };
}

function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Number.isFinite(value) ? Math.round(value * f) / f : value;
}

interface PingerInit {
  plan: CasePlan;
  port1: MessagePort;
  echoWhere: string;
}

// The measuring side of `messagechannel`, run in a worker of its own so that the
// messages go from worker to worker without the parent.
export const pingerService: Service = async (_channel, rawInit) => {
  const init = rawInit as PingerInit;
  const link = portLink(init.port1, init.echoWhere);
  try {
    return await measureLink(link, init.plan);
  } finally {
    await link.finish();
  }
};

async function measureMessageChannel(
  plan: CasePlan,
  options: LinkOptions,
  cpus: { pinger?: string; echo?: string },
): Promise<{ measurement: LinkMeasurement; echo: EchoReport }> {
  const { port1, port2 } = new MessageChannel();
  const echo = await startEcho(options, { port2 }, [port2]);
  try {
    const { entry: _entry, ...portablePlan } = plan;
    // The measuring worker inherits the main thread's CPUs at its creation.
    const restore = cpus.pinger !== undefined ? await pinMainThread(cpus.pinger) : undefined;
    let pinger: Awaited<ReturnType<typeof spawn>>;
    try {
      pinger = await spawn("thread", {
        // The registry is loaded at call time: it imports this module.
        service: serviceOf((await import("./registry.ts")).registry, "ipcbench.pinger"),
        init: { plan: { ...portablePlan, pinnedTo: cpus.pinger }, port1, echoWhere: echo.where },
        entry: plan.entry,
        id: 1,
        transfer: [port1],
      });
    } finally {
      if (restore !== undefined) await pinMainThread(restore);
    }
    const measured = Promise.race([
      pinger.done,
      // The echo ends normally only after the measuring worker's "end": then wait for it.
      echo.done.then(() => pinger.done, (error) => {
        throw new Error(`the echo side (${echo.where}) failed mid-run: ${error.message}`);
      }),
    ]);
    const measurement = await measured.finally(() => pinger.kill()) as LinkMeasurement;
    const report = await echo.done as EchoReport;
    return { measurement, echo: report };
  } catch (error) {
    echo.kill();
    throw error;
  }
}

/** Measures one case end to end; the peer is stopped (or killed) before it returns. */
export async function measureCase(plan: CasePlan): Promise<CaseResult> {
  const cpus = pinCpus(plan.pin);
  const options: LinkOptions = {
    transport: plan.transport,
    size: plan.size,
    marks: runMarks(plan),
    timeoutMs: plan.timeoutMs,
    echoCpu: cpus.echo,
    entry: plan.entry,
    dieAfter: plan.dieAfter,
    corruptAfter: plan.corruptAfter,
  };
  let measurement: LinkMeasurement;
  let echo: EchoReport | null;
  let channel: string | undefined;
  if (plan.transport === "messagechannel") {
    ({ measurement, echo } = await measureMessageChannel(plan, options, cpus));
  } else {
    const link = plan.peer
      ? await openPeerLink(plan.transport as "tcp" | "udp", plan.peer, plan.size, plan.timeoutMs)
      : await openLink(options);
    channel = link.channel;
    let restore: string | undefined;
    try {
      // Pin after the echo side started: a worker inherits the creating thread's CPUs.
      if (cpus.pinger !== undefined) restore = await pinMainThread(cpus.pinger);
      measurement = await measureLink(link, { ...plan, pinnedTo: cpus.pinger });
    } catch (error) {
      link.kill();
      throw error;
    } finally {
      if (restore !== undefined) await pinMainThread(restore);
    }
    echo = await link.finish();
  }
  const all = new HdrHistogram("ns");
  const runs: RunResult[] = measurement.runs.map(({ hdrNs, ...run }, i) => {
    all.merge(HdrHistogram.fromJSON(hdrNs));
    return { ...run, cpuMs: { ...run.cpuMs, echo: echo ? round(echo.cpuMs[i] ?? NaN) : null } };
  });
  const result = summarizeCase(plan, cpus, measurement.placement, echo?.placement ?? null, runs);
  result.allRunsUs = hdrSummaryUs(all);
  result.hdrNs = all.toJSON();
  result.cpuSource = { measuring: measurement.cpuSource, echo: echo?.cpuSource ?? null };
  result.echoHandled = echo?.handled ?? null;
  if (channel) result.channel = channel;
  return result;
}

function summarizeCase(
  plan: CasePlan,
  cpus: { pinger?: string; echo?: string },
  measuring: Placement,
  echo: Placement | null,
  runs: RunResult[],
): CaseResult {
  const pick = (f: (run: RunResult) => number) => round(median(runs.map(f)));
  const rates = runs.map((run) => run.roundTripsPerSec);
  const warnings: string[] = [];
  const busy = runs.filter((run) => run.busy).length;
  if (busy > 0) {
    const worst = Math.max(...runs.map((run) => run.pressure.stallPct ?? 0));
    warnings.push(
      `${plan.transport} ${plan.size} B: ${busy} of ${runs.length} runs on a busy machine ` +
        `(CPU pressure: tasks waited for a CPU up to ${worst}% of the run)`,
    );
  }
  return {
    transport: plan.transport,
    kind: TRANSPORTS[plan.transport].kind,
    size: plan.size,
    pin: plan.pin,
    placement: { requested: { measuring: cpus.pinger, echo: cpus.echo }, measuring, echo },
    runs,
    cpuSource: { measuring: "", echo: null },
    echoHandled: null,
    median: {
      roundTripsPerSec: Math.round(median(rates)),
      oneWayPerSec: Math.round(2 * median(rates)),
      mbPerSec: pick((run) => run.mbPerSec),
      p50Us: pick((run) => run.latencyUs.p50),
      p99Us: pick((run) => run.latencyUs.p99),
      maxUs: pick((run) => run.latencyUs.max),
      studyMetric: Math.round(median(runs.map((run) => run.studyMetric))),
    },
    spread: {
      roundTripsPerSecMin: Math.min(...rates),
      roundTripsPerSecMax: Math.max(...rates),
    },
    allRunsUs: { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, p9999: 0, max: 0 },
    hdrNs: new HdrHistogram("ns").toJSON(),
    medianCI: medianConfidence(rates),
    warnings,
  };
}
