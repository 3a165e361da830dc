/**
 * `ipcbench bench`: measures the transport matrix (every transport, size and
 * placement, with its C and Python anchors). Measurement only: it returns data;
 * the tables are in bench_table.ts, the study in study*.ts.
 *
 * @module
 */
import { killAllChildren } from "../shared/runtime.ts";
import { type CaseResult, measureCase } from "./measure.ts";
import { allowedCpus, type Pin, type Pressure, readPressure } from "./system.ts";
import { sizeSkipReason, type Transport, TRANSPORTS } from "./transports.ts";
import { type QueueAnchor, runQueueAnchor } from "./anchor.ts";
import { type CAnchor, compileCAnchor } from "./anchor_c.ts";

/** Default message sizes, bytes. */
export const DEFAULT_SIZES = [4, 64, 4096, 65536, 1048576];

/** Options for {@linkcode runBench}. */
export interface BenchOptions {
  transports: Transport[];
  sizes: number[];
  /** Timed round trips per run (fewer for large messages, see `maxBytes`). */
  roundTrips: number;
  warmup: number;
  /** Warm-up milliseconds at least (after `warmup` round trips; default 0). */
  warmupMs?: number;
  runs: number;
  pins: Pin[];
  /** Bytes one direction may carry per run: caps round trips for large messages. */
  maxBytes: number;
  timeoutMs: number;
  /** Also run the C anchor of each transport under the same placement (needs gcc). */
  anchors?: boolean;
  entry?: string | URL;
  /** Called before each case, with its index and the count. */
  onProgress?: (index: number, total: number, label: string) => void;
  /**
   * Stops the run: the case under way is abandoned (its children killed) and the
   * result holds the cases measured before, with `interrupted` set.
   */
  signal?: AbortSignal;
  /** A remote `ipcbench serve`: only tcp and udp run, without anchors. */
  peer?: { hostname: string; port: number };
  /** Called with every timed round trip of each run, microseconds (`--log`). */
  onRoundTrips?: (
    item: { transport: Transport; size: number; pin: Pin },
    run: number,
    samples: Float64Array,
  ) => void;
}

/**
 * One measured case with its C anchor (same placement and size) and, for
 * transports between processes, the study's Python `multiprocessing.Queue`
 * ping-pong at the same placement, when run.
 */
export type BenchCase = CaseResult & { anchor: CAnchor | null; pythonQueue?: QueueAnchor | null };

/** What `bench` returns. */
export interface BenchResult {
  cases: BenchCase[];
  skipped: string[];
  warnings: string[];
  machine: MachineInfo;
  /** Set when a signal stopped the run: `cases` are those measured before it. */
  interrupted?: boolean;
}

/** The machine the figures were measured on. */
export interface MachineInfo {
  cpus: number[];
  os: string;
  deno: string;
  pressureAtStart: Pressure | null;
}

// `Deno.osRelease` needs --allow-sys; /proc needs only the read permission the tool has.
function kernelRelease(): string {
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/osrelease").trim();
  } catch {
    return "";
  }
}

/** This machine, for the report. */
export function machineInfo(): MachineInfo {
  return {
    cpus: allowedCpus(),
    os: `${Deno.build.os} ${kernelRelease()}`.trim(),
    deno: Deno.version.deno,
    pressureAtStart: readPressure(),
  };
}

/** Round trips for one size: the requested count, capped so a run moves at most `maxBytes`. */
export function roundTripsFor(size: number, roundTrips: number, maxBytes: number): number {
  return Math.max(1, Math.min(roundTrips, Math.floor(maxBytes / size)));
}

/** Why a transport cannot run under a placement, or `null` when it can. */
export function skipReason(transport: Transport, pin: Pin, cpus: number[]): string | null {
  if (pin === "split" && cpus.length < 2) return "--pin split needs two CPUs";
  if ((transport === "sab-spin" || transport === "shm-spin") && pin === "same") {
    return "two spinning sides on one vCPU only progress when the scheduler preempts one " +
      "(milliseconds per round trip)";
  }
  return null;
}

/** Runs every transport × size × placement; fails on the first wrong or lost message. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const machine = machineInfo();
  const skipped: string[] = [];
  const plan: { transport: Transport; size: number; pin: Pin }[] = [];
  for (const pin of options.pins) {
    for (const transport of options.transports) {
      const reason = options.peer && transport !== "tcp" && transport !== "udp"
        ? "with --peer only tcp and udp run (the other transports join two processes on one machine)"
        : skipReason(transport, pin, machine.cpus);
      if (reason) {
        skipped.push(`${transport} with --pin ${pin}: ${reason}`);
        continue;
      }
      for (const size of options.sizes) {
        const why = sizeSkipReason(transport, size);
        if (why) skipped.push(`${transport} ${size} B with --pin ${pin}: ${why}`);
        else plan.push({ transport, size, pin });
      }
    }
  }
  // Anchors run on this machine: against a remote peer they would not compare.
  const anchors = options.anchors && !options.peer;
  const anchor = anchors ? await compileCAnchor() : null;
  if (anchor && "skipped" in anchor) skipped.push(anchor.skipped);
  const cases: BenchCase[] = [];
  const queues = new Map<string, Promise<QueueAnchor | null>>();
  const queueAnchor = (pin: Pin, roundTrips: number) => {
    const [a, b] = pin === "none"
      ? [-1, -1]
      : pin === "same"
      ? [machine.cpus[0], machine.cpus[0]]
      : [machine.cpus[0], machine.cpus[1]];
    const key = `${pin} ${roundTrips}`;
    if (!queues.has(key)) queues.set(key, runQueueAnchor(roundTrips, a, b));
    return queues.get(key)!;
  };
  const stopped = options.signal ? abortedPromise(options.signal) : null;
  stopped?.catch(() => {}); // Seen through `step`, or not at all once the run is over.
  // Each step of a case races the signal: an interrupted run does not wait for it.
  const step = <T>(work: Promise<T>): Promise<T> => {
    if (!stopped) return work;
    work.catch(() => {}); // Abandoned on a signal: its failure is of no interest.
    return Promise.race([work, stopped]);
  };
  let interrupted = false;
  try {
    for (const [index, item] of plan.entries()) {
      if (options.signal?.aborted) break;
      options.onProgress?.(
        index,
        plan.length,
        `${item.transport} ${item.size} B --pin ${item.pin}`,
      );
      const roundTrips = roundTripsFor(item.size, options.roundTrips, options.maxBytes);
      const result = await step(measureCase({
        ...item,
        roundTrips,
        warmup: roundTripsFor(item.size, options.warmup, options.maxBytes),
        warmupMs: options.warmupMs,
        runs: options.runs,
        timeoutMs: options.timeoutMs,
        entry: options.entry,
        peer: options.peer,
        onRoundTrips: options.onRoundTrips
          ? (run, samples) => options.onRoundTrips!(item, run, samples)
          : undefined,
      }));
      const c = anchor && !("skipped" in anchor)
        ? await step(
          anchor.measure(item.transport, item.size, item.pin, machine.cpus, roundTrips),
        )
        : null;
      const pythonQueue = anchors && TRANSPORTS[item.transport].kind === "process"
        ? await step(queueAnchor(item.pin, Math.min(roundTrips, options.roundTrips)))
        : undefined;
      cases.push({ ...result, anchor: c, ...(pythonQueue !== undefined ? { pythonQueue } : {}) });
    }
  } catch (error) {
    if (!(error instanceof BenchStopped)) throw error;
  } finally {
    interrupted = options.signal?.aborted ?? false;
    if (interrupted) killAllChildren();
    if (anchor && !("skipped" in anchor)) await anchor.close();
  }
  const result = { cases, skipped, warnings: cases.flatMap((c) => c.warnings), machine };
  return interrupted ? { ...result, interrupted } : result;
}

class BenchStopped extends Error {}

function abortedPromise(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    const stop = () => reject(new BenchStopped("stopped"));
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  });
}
