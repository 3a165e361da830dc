/**
 * `ipcbench bench` and `ipcbench study`: the transport matrix, the study's two
 * cases as the study ran them (next to the corrected figures), and the
 * {@linkcode StudyReport} for the lab. Returns data; never prints.
 *
 * @module
 */
import type { LinePlot, ReportTable } from "../shared/report.ts";
import { median } from "../shared/stats.ts";
import { type CaseResult, measureCase } from "./measure.ts";
export {
  buildStudyReport,
  CPU_VS_WALL_NOTE,
  publishedTable,
  runStudyCases,
  studyCorrectedTable,
  studyFindings,
  studyLines,
  studyScalePlan,
} from "./study.ts";
export type { StudyCaseOptions, StudyCaseRun, StudyScalePlan } from "./study.ts";
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
  runs: number;
  pins: Pin[];
  /** Bytes one direction may carry per run: caps round trips for large messages. */
  maxBytes: number;
  timeoutMs: number;
  /** Also run the C anchor of each transport under the same placement (needs gcc). */
  anchors?: boolean;
  entry?: string | URL;
  /** Called before each case, with its index and the count. */
  onCase?: (index: number, total: number, label: string) => void;
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
  try {
    for (const [index, item] of plan.entries()) {
      options.onCase?.(index, plan.length, `${item.transport} ${item.size} B --pin ${item.pin}`);
      const roundTrips = roundTripsFor(item.size, options.roundTrips, options.maxBytes);
      const result = await measureCase({
        ...item,
        roundTrips,
        warmup: roundTripsFor(item.size, options.warmup, options.maxBytes),
        runs: options.runs,
        timeoutMs: options.timeoutMs,
        entry: options.entry,
        peer: options.peer,
        onRoundTrips: options.onRoundTrips
          ? (run, samples) => options.onRoundTrips!(item, run, samples)
          : undefined,
      });
      const c = anchor && !("skipped" in anchor)
        ? await anchor.measure(item.transport, item.size, item.pin, machine.cpus, roundTrips)
        : null;
      const pythonQueue = anchors && TRANSPORTS[item.transport].kind === "process"
        ? await queueAnchor(item.pin, Math.min(roundTrips, options.roundTrips))
        : undefined;
      cases.push({ ...result, anchor: c, ...(pythonQueue !== undefined ? { pythonQueue } : {}) });
    }
  } finally {
    if (anchor && !("skipped" in anchor)) await anchor.close();
  }
  return { cases, skipped, warnings: cases.flatMap((c) => c.warnings), machine };
}

function r3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** The human table: one row per transport, size and placement. */
export function benchTable(result: Pick<BenchResult, "cases">): ReportTable {
  return {
    title: "Round trips (median of runs; percentiles over every round trip of every run)",
    columns: [
      "transport",
      "channel",
      "pin",
      "size (B)",
      "rt/s",
      "median CI (level)",
      "p50 µs",
      "p99 µs",
      "p99.9 µs",
      "p99.99 µs",
      "max µs",
      "MB/s",
      "CPU µs/rt (measuring / echo)",
      "placement",
      "C rt/s",
      "rt/s ÷ C",
      "Py Queue rt/s",
      "rt/s ÷ Py Queue",
    ],
    rows: result.cases.map((c) => {
      const cpu = c.runs.map((run) => run.cpuMs);
      const perRt = (ms: number) => r3((ms * 1000) / c.runs[0].roundTrips);
      // Without --allow-all a thread's CPU time comes in 10 ms ticks: mark it approximate.
      const mark = (source: string | null) => (source === "rusage-ticks" ? "~" : "");
      const measuring = `${mark(c.cpuSource.measuring)}${
        perRt(median(cpu.map((x) => x.measuring)))
      }`;
      const echoValues = cpu.map((x) => x.echo).filter((x): x is number => x !== null);
      const echo = echoValues.length > 0
        ? `${mark(c.cpuSource.echo)}${perRt(median(echoValues))}`
        : "same thread";
      const where = (p: { lastCpu: number | null; allowed: string }) =>
        p.lastCpu === null ? p.allowed : `cpu ${p.lastCpu}`;
      const all = c.allRunsUs;
      return [
        c.transport,
        c.channel ?? null,
        c.pin,
        c.size,
        c.median.roundTripsPerSec,
        `${c.medianCI.low}–${c.medianCI.high} (${Math.round(c.medianCI.level * 1000) / 10}%)`,
        all.p50,
        all.p99,
        all.p999,
        all.p9999,
        all.max,
        c.median.mbPerSec,
        `${measuring} / ${echo}`,
        `${where(c.placement.measuring)} ↔ ${
          c.placement.echo ? where(c.placement.echo) : "same thread"
        }`,
        c.anchor?.roundTripsPerSec ?? null,
        c.anchor ? r3(c.median.roundTripsPerSec / c.anchor.roundTripsPerSec) : null,
        c.pythonQueue?.roundTripsPerSec ?? null,
        c.pythonQueue ? r3(c.median.roundTripsPerSec / c.pythonQueue.roundTripsPerSec) : null,
      ];
    }),
  };
}

/** Latency by transport on a log scale, and throughput by size. */
export function benchPlots(cases: CaseResult[]): LinePlot[] {
  const series = (c: CaseResult) => `${c.transport} (${c.pin})`;
  return [
    {
      title: "Round-trip latency (median) by message size",
      xLabel: "message size (bytes)",
      yLabel: "p50 round trip (µs)",
      xLog: true,
      yLog: true,
      points: cases.filter((c) => c.median.p50Us > 0).map((c) => ({
        x: c.size,
        y: c.median.p50Us,
        series: series(c),
      })),
    },
    {
      title: "Throughput by message size (both directions)",
      xLabel: "message size (bytes)",
      yLabel: "MB/s",
      xLog: true,
      yLog: true,
      points: cases.filter((c) => c.median.mbPerSec > 0).map((c) => ({
        x: c.size,
        y: c.median.mbPerSec,
        series: series(c),
      })),
    },
  ];
}
