/**
 * `ipcbench bench` and `ipcbench study`: the transport matrix, the study's two
 * cases as the study ran them (next to the corrected figures), and the
 * {@linkcode StudyReport} for the lab. Returns data; never prints.
 *
 * @module
 */
import type { LinePlot, ReportTable } from "../shared/report.ts";
import type { StudyReport, StudyScale } from "../shared/study.ts";
import { median } from "../shared/stats.ts";
import { type CaseResult, measureCase } from "./measure.ts";
import { allowedCpus, type Pin, type Pressure, readPressure } from "./system.ts";
import { sizeSkipReason, type Transport, TRANSPORT_NAMES, TRANSPORTS } from "./transports.ts";
import { type QueueAnchor, runPythonAnchor, runQueueAnchor } from "./anchor.ts";
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
  if (transport === "sab-spin" && pin === "same") {
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
      const reason = skipReason(transport, pin, machine.cpus);
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
  const anchor = options.anchors ? await compileCAnchor() : null;
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
      });
      const c = anchor && !("skipped" in anchor)
        ? await anchor.measure(item.transport, item.size, item.pin, machine.cpus, roundTrips)
        : null;
      const pythonQueue = options.anchors && TRANSPORTS[item.transport].kind === "process"
        ? await queueAnchor(item.pin, Math.min(roundTrips, options.roundTrips))
        : undefined;
      cases.push({ ...result, anchor: c, ...(pythonQueue !== undefined ? { pythonQueue } : {}) });
    }
  } finally {
    if (anchor && !("skipped" in anchor)) await anchor.close();
  }
  return { cases, skipped, warnings: cases.flatMap((c) => c.warnings), machine };
}

function r1(value: number): number {
  return Math.round(value * 10) / 10;
}

function r3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** The human table: one row per transport, size and placement. */
export function benchTable(result: Pick<BenchResult, "cases">): ReportTable {
  return {
    title: "Round trips (median of runs; latency over every round trip)",
    columns: [
      "transport",
      "channel",
      "pin",
      "size (B)",
      "rt/s",
      "rt/s min–max",
      "p50 µs",
      "p99 µs",
      "max µs",
      "MB/s",
      "transfers/2/cpu",
      "CPU µs/rt (measuring / echo)",
      "placement",
      "p50 × async",
      "C p50 µs",
      "p50 × C",
      "C rt/s",
      "rt/s ÷ C",
      "Py Queue rt/s",
      "rt/s ÷ Py Queue",
    ],
    rows: result.cases.map((c) => {
      const baseline = result.cases.find((b) =>
        b.transport === "async" && b.size === c.size && b.pin === c.pin
      );
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
      return [
        c.transport,
        c.channel ?? null,
        c.pin,
        c.size,
        c.median.roundTripsPerSec,
        `${c.spread.roundTripsPerSecMin}–${c.spread.roundTripsPerSecMax}`,
        c.median.p50Us,
        c.median.p99Us,
        c.median.maxUs,
        c.median.mbPerSec,
        c.median.studyMetric,
        `${measuring} / ${echo}`,
        `${where(c.placement.measuring)} ↔ ${
          c.placement.echo ? where(c.placement.echo) : "same thread"
        }`,
        baseline ? r1(c.median.p50Us / baseline.median.p50Us) : null,
        c.anchor?.p50Us ?? null,
        c.anchor ? r3(c.median.p50Us / c.anchor.p50Us) : null,
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

/** Why the study's figure and the wall-time figures differ (printed with every study table). */
export const CPU_VS_WALL_NOTE =
  "The study divided by time.process_time(), the parent's CPU time. While the parent waits " +
  "for its child it is asleep and uses no CPU, so per CPU-second it appears to do more round " +
  "trips than it does per second of wall time; with threads, the CPU time of the whole process " +
  "also counts the other side. transfers/2/cpu is the study's figure (round trips per CPU " +
  "second of the parent process); rt/s and one-way/s are per second of wall time.";

/** One run of one of the study's two cases. */
export interface StudyCaseRun {
  run: number;
  /** `High Level` (the child's pipes, the study's queue) or `Low Level` (TCP). */
  case: "High Level" | "Low Level";
  transport: Transport;
  result: CaseResult;
}

/** Options for {@linkcode runStudyCases}. */
export interface StudyCaseOptions {
  roundTrips: number;
  repeats: number;
  pin: Pin;
  timeoutMs: number;
  entry?: string | URL;
  onCase?: (index: number, total: number, label: string) => void;
}

/** Runs exactly the study's two cases, alternating as it did, `repeats` times. */
export async function runStudyCases(options: StudyCaseOptions): Promise<StudyCaseRun[]> {
  const runs: StudyCaseRun[] = [];
  const cases = [["High Level", "pipes"], ["Low Level", "tcp"]] as const;
  for (let run = 1; run <= options.repeats; run++) {
    for (const [name, transport] of cases) {
      options.onCase?.(runs.length, options.repeats * 2, `${name} ${run}`);
      const result = await measureCase({
        transport,
        size: 4,
        roundTrips: options.roundTrips,
        // The study's only warm-up is its first message (1 → 2) before the clock starts.
        warmup: 1,
        runs: 1,
        pin: options.pin,
        timeoutMs: options.timeoutMs,
        entry: options.entry,
      });
      runs.push({ run, case: name, transport, result });
    }
  }
  return runs;
}

/** The study's printout (`High Level 1: 3479`), with this machine's figures. */
export function studyLines(runs: StudyCaseRun[]): string[] {
  return runs.map((r) => `${r.case} ${r.run}: ${r.result.runs[0].studyMetric}`);
}

/** The corrected figures for the study's cases. */
export function studyCorrectedTable(runs: StudyCaseRun[]): ReportTable {
  return {
    title: "The study's cases, corrected: wall-time rates next to the study's CPU-time figure",
    columns: [
      "case",
      "run",
      "transport",
      "transfers/2/cpu (study)",
      "rt/s (wall)",
      "one-way/s (wall)",
      "wall ms",
      "parent CPU ms",
      "child CPU ms",
      "p50 µs",
      "p99 µs",
    ],
    rows: runs.map((r) => {
      const run = r.result.runs[0];
      return [
        r.case,
        r.run,
        r.transport,
        run.studyMetric,
        run.roundTripsPerSec,
        run.oneWayPerSec,
        run.wallMs,
        run.cpuMs.process,
        run.cpuMs.echo,
        run.latencyUs.p50,
        run.latencyUs.p99,
      ];
    }),
  };
}

// The study's sample run (Windows, 4 cores), transcribed from the seed.
const PUBLISHED = {
  high: [3479, 3442, 2857],
  low: [11431, 8650, 8650],
};

/** The study's own table. */
export function publishedTable(): ReportTable {
  return {
    title: "Published (Windows, 4 cores, Python): transfers/2/process_time",
    columns: ["run", "High Level (queue)", "Low Level (socket)"],
    rows: PUBLISHED.high.map((high, i) => [i + 1, high, PUBLISHED.low[i]]),
  };
}

/** The scale presets of `bench --study`. */
export interface StudyScalePlan {
  studyRoundTrips: number;
  repeats: number;
  matrix: Omit<BenchOptions, "entry" | "onCase" | "timeoutMs">;
  pythonRoundTrips: number;
}

/** What each scale runs (smoke ≤ 20 s, quick ≤ 45 s, full = the study's sizes and more). */
export function studyScalePlan(scale: StudyScale): StudyScalePlan {
  if (scale === "smoke") {
    return {
      studyRoundTrips: 5000,
      repeats: 3,
      pythonRoundTrips: 5000,
      matrix: {
        transports: [...TRANSPORT_NAMES],
        sizes: [64],
        roundTrips: 2000,
        warmup: 100,
        runs: 1,
        pins: ["none"],
        maxBytes: 16 << 20,
        anchors: true,
      },
    };
  }
  if (scale === "quick") {
    return {
      studyRoundTrips: 10000,
      repeats: 3,
      pythonRoundTrips: 10000,
      matrix: {
        transports: [...TRANSPORT_NAMES],
        sizes: [64, 65536],
        roundTrips: 1500,
        warmup: 200,
        runs: 3,
        pins: ["same", "split"],
        maxBytes: 32 << 20,
        anchors: true,
      },
    };
  }
  return {
    studyRoundTrips: 10000,
    repeats: 3,
    pythonRoundTrips: 10000,
    matrix: {
      transports: [...TRANSPORT_NAMES],
      sizes: [...DEFAULT_SIZES],
      roundTrips: 10000,
      warmup: 1000,
      runs: 5,
      pins: ["same", "split", "none"],
      maxBytes: 256 << 20,
      anchors: true,
    },
  };
}

function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(1)}×`;
}

/** Two or three sentences generated from the measured numbers. */
export function studyFindings(
  runs: StudyCaseRun[],
  matrix: BenchCase[],
  python: { high: number; low: number; highWall: number; lowWall: number } | null,
): string[] {
  const metric = (name: string) =>
    median(runs.filter((r) => r.case === name).map((r) => r.result.runs[0].studyMetric));
  const wall = (name: string) =>
    median(runs.filter((r) => r.case === name).map((r) => r.result.runs[0].roundTripsPerSec));
  const high = metric("High Level");
  const low = metric("Low Level");
  const publishedRatio = median(PUBLISHED.low) / median(PUBLISHED.high);
  const findings: string[] = [];
  const agrees = low > high;
  findings.push(
    `The study's table has the socket ${publishedRatio.toFixed(1)}× ahead of the queue ` +
      `(its text says the opposite); here, by its own metric, the TCP socket does ${
        Math.round(low)
      } ` +
      `and the child's pipes ${Math.round(high)} round trips per parent CPU-second ` +
      `(${ratio(low, high)}), so this machine ${agrees ? "agrees with the table" : "disagrees"} ` +
      `and is ${ratio(high, median(PUBLISHED.high))} (queue) and ${
        ratio(low, median(PUBLISHED.low))
      } ` +
      `(socket) faster than the published Windows machine` +
      (python
        ? `; the study's own Python program here gives queue ${Math.round(python.high)} and ` +
          `socket ${Math.round(python.low)}.`
        : "."),
  );
  findings.push(
    `Per second of wall time the same runs manage ${Math.round(wall("High Level"))} (pipes) and ` +
      `${Math.round(wall("Low Level"))} (TCP) round trips, ${
        ratio(high, wall("High Level"))
      } and ` +
      `${ratio(low, wall("Low Level"))} fewer than the study's CPU-time figure claims, because ` +
      `the parent sleeps while its child answers and process_time() does not count sleep.`,
  );
  const same = matrix.filter((c) => c.pin === "same" && c.size <= 64);
  const split = matrix.filter((c) => c.pin === "split" && c.size <= 64);
  const pick = (list: CaseResult[], t: Transport) => list.find((c) => c.transport === t);
  const waitSame = pick(same, "atomics-wait");
  const waitSplit = pick(split, "atomics-wait");
  const spin = pick(split, "sab-spin") ?? pick(matrix.filter((c) => c.size <= 64), "sab-spin");
  const tcp = matrix.find((c) => c.transport === "tcp" && c.anchor && c.size <= 64);
  const vsC = tcp?.anchor
    ? ` Against the same ping-pong in C under the same placement (${tcp.pin}), Deno's TCP round ` +
      `trip takes ${r1(tcp.median.p50Us / tcp.anchor.p50Us)}× as long (${tcp.median.p50Us} vs ` +
      `${tcp.anchor.p50Us} µs).`
    : "";
  if (waitSame && waitSplit) {
    findings.push(
      `Placement dominates: Atomics.wait/notify takes ${waitSame.median.p50Us} µs per round trip ` +
        `with both sides on one vCPU and ${waitSplit.median.p50Us} µs across vCPUs ` +
        `(the cross-vCPU wake-up), while spinning on a SharedArrayBuffer needs ` +
        `${spin?.median.p50Us ?? "–"} µs; any queue or socket pays the wake-up, which is why the ` +
        `study's two cases measure mostly that wake-up rather than the transport.` + vsC,
    );
  } else if (spin) {
    const slowest = matrix.reduce((a, b) => (a.median.p50Us > b.median.p50Us ? a : b));
    findings.push(
      `Without pinning, spinning on a SharedArrayBuffer takes ${spin.median.p50Us} µs per round ` +
        `trip and ${slowest.transport} ${slowest.median.p50Us} µs: every transport that sleeps ` +
        `pays the wake-up of the other side, which dominates both of the study's cases.` + vsC,
    );
  }
  return findings;
}

/** Builds the lab's {@linkcode StudyReport} (runs the study's cases, the Python anchor and a matrix). */
export async function buildStudyReport(
  scale: StudyScale,
  options: { entry?: string | URL; timeoutMs?: number; onCase?: BenchOptions["onCase"] } = {},
): Promise<StudyReport> {
  const started = performance.now();
  const plan = studyScalePlan(scale);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const skipped: string[] = [];
  const runs = await runStudyCases({
    roundTrips: plan.studyRoundTrips,
    repeats: plan.repeats,
    pin: "none",
    timeoutMs,
    entry: options.entry,
    onCase: options.onCase,
  });
  const anchor = await runPythonAnchor(plan.pythonRoundTrips, plan.repeats, 120_000);
  let python: Parameters<typeof studyFindings>[2] = null;
  const extra: ReportTable[] = [studyCorrectedTable(runs)];
  if ("skipped" in anchor) skipped.push(anchor.skipped);
  else {
    const byCase = (name: "high" | "low") => anchor.runs.filter((r) => r.case === name);
    const rate = (r: { cpu: number }) => plan.pythonRoundTrips / r.cpu;
    const wallRate = (r: { wall: number }) => plan.pythonRoundTrips / r.wall;
    python = {
      high: median(byCase("high").map(rate)),
      low: median(byCase("low").map(rate)),
      highWall: median(byCase("high").map(wallRate)),
      lowWall: median(byCase("low").map(wallRate)),
    };
    extra.push({
      title: "The study's Python program (corrected: every value checked) on this machine",
      columns: [
        "case",
        "run",
        "transfers/2/cpu (study)",
        "rt/s (wall)",
        "parent CPU ms",
        "wall ms",
      ],
      rows: anchor.runs.map((r) => [
        r.case === "high" ? "High Level (mp.Queue)" : "Low Level (TCP)",
        r.run,
        Math.round(rate(r)),
        Math.round(wallRate(r)),
        r1(r.cpu * 1000),
        r1(r.wall * 1000),
      ]),
    });
  }
  const matrix = await runBench({
    ...plan.matrix,
    timeoutMs,
    entry: options.entry,
    onCase: options.onCase
      ? (i, n, label) => options.onCase!(runs.length + i, runs.length + n, label)
      : undefined,
  });
  skipped.push(...matrix.skipped);
  if (scale !== "full") {
    skipped.push(
      `scale ${scale}: ${plan.matrix.sizes.join(", ")}-byte messages, ${plan.matrix.roundTrips} ` +
        `round trips × ${plan.matrix.runs} run(s), pin ${plan.matrix.pins.join("+")} (full: ` +
        `${DEFAULT_SIZES.join(", ")} bytes, 10,000 round trips × 5 runs, pin same+split+none)`,
    );
  }
  extra.push(benchTable(matrix));
  extra.push({
    title: "Machine and CPU pressure",
    columns: ["CPUs allowed", "OS", "Deno", "PSI some avg10 at start (%)", "runs flagged busy"],
    rows: [[
      matrix.machine.cpus.join(","),
      matrix.machine.os,
      matrix.machine.deno,
      matrix.machine.pressureAtStart?.avg10 ?? null,
      [...runs.map((r) => r.result), ...matrix.cases].flatMap((c) => c.runs).filter((r) => r.busy)
        .length,
    ]],
  });
  const measuredRow = (i: number) => {
    const pick = (name: string) =>
      runs.find((r) => r.case === name && r.run === i + 1)?.result.runs[0].studyMetric ?? null;
    return [i + 1, pick("High Level"), pick("Low Level")];
  };
  const studyPlot: LinePlot = {
    title: "The study's metric (per CPU-second) vs. round trips per wall second",
    xLabel: "run",
    yLabel: "round trips per second",
    points: runs.flatMap((r) => [
      { x: r.run, y: r.result.runs[0].studyMetric, series: `${r.case}: transfers/2/cpu` },
      { x: r.run, y: r.result.runs[0].roundTripsPerSec, series: `${r.case}: rt/s (wall)` },
    ]),
  };
  const latencyPlot: LinePlot = {
    title: "Round-trip latency (p50) by transport and placement",
    xLabel: "message size (bytes)",
    yLabel: "p50 round trip (µs)",
    xLog: true,
    yLog: true,
    points: matrix.cases.map((c) => ({
      x: c.size,
      y: c.median.p50Us,
      series: `${c.transport} (${c.pin})`,
    })),
  };
  const plots = [studyPlot, latencyPlot];
  if (plan.matrix.sizes.length > 1) plots.push(benchPlots(matrix.cases)[1]);
  return {
    study: "ipcbench",
    seed: "002_3149a852935075d4.txt",
    title: "Message passing between processes: a queue vs. a socket",
    question:
      "How many times per second can two processes pass a counter back and forth, through a " +
      "high-level queue versus a low-level socket?",
    scale,
    published: publishedTable(),
    measured: {
      title: "Measured here (Linux, Deno; pipes vs. TCP loopback): transfers/2/parent CPU s",
      columns: ["run", "High Level (queue)", "Low Level (socket)"],
      rows: Array.from({ length: plan.repeats }, (_, i) => measuredRow(i)),
    },
    extra,
    plots,
    findings: studyFindings(runs, matrix.cases, python),
    skipped,
    options: {
      studyRoundTrips: plan.studyRoundTrips,
      repeats: plan.repeats,
      matrix: plan.matrix,
      note: CPU_VS_WALL_NOTE,
      transports: Object.fromEntries(TRANSPORT_NAMES.map((t) => [t, TRANSPORTS[t].label])),
    },
    elapsedMs: Math.round(performance.now() - started),
  };
}
