/**
 * `ipcbench study` and `bench --study`: the study's two cases as the study ran
 * them (next to the corrected figures), its Python program, and the
 * {@linkcode StudyReport} for the lab. Returns data; never prints.
 *
 * @module
 */
import type { LinePlot, ReportTable } from "../shared/report.ts";
import type { StudyReport, StudyScale } from "../shared/study.ts";
import { median } from "../shared/stats.ts";
import { type CaseResult, measureCase } from "./measure.ts";
import type { Pin } from "./system.ts";
import { type Transport, TRANSPORT_NAMES, TRANSPORTS } from "./transports.ts";
import { runPythonAnchor } from "./anchor.ts";
import { channelFinding, channelTable } from "./channel_report.ts";
import { runStreams, type StreamOptions, streamTable } from "./stream.ts";
import {
  type BenchCase,
  type BenchOptions,
  benchPlots,
  benchTable,
  DEFAULT_SIZES,
  runBench,
} from "./bench.ts";

function r1(value: number): number {
  return Math.round(value * 10) / 10;
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
  /** One-way streams (and latency under load) over the child channel kinds and sockets. */
  stream: Omit<StreamOptions, "entry" | "onCase" | "timeoutMs">;
}

/** What each scale runs (smoke ≤ 20 s, quick ≤ 45 s, full = the study's sizes and more). */
export function studyScalePlan(scale: StudyScale): StudyScalePlan {
  if (scale === "smoke") {
    return {
      studyRoundTrips: 5000,
      repeats: 3,
      pythonRoundTrips: 5000,
      stream: {
        transports: ["pipes", "channel-unix", "channel-shm"],
        sizes: [4096],
        messages: 2000,
        maxBytes: 16 << 20,
        runs: 1,
        pins: ["none"],
        pingEvery: 100,
        window: 64,
      },
      matrix: {
        transports: [...TRANSPORT_NAMES],
        sizes: [64],
        roundTrips: 1000,
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
      stream: {
        transports: ["pipes", "channel-unix", "channel-shm", "tcp", "unix"],
        sizes: [64, 65536],
        messages: 10000,
        maxBytes: 32 << 20,
        runs: 3,
        pins: ["same", "split"],
        pingEvery: 100,
        window: 64,
      },
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
    stream: {
      transports: ["pipes", "channel-unix", "channel-shm", "tcp", "unix"],
      sizes: [64, 4096, 65536, 1048576],
      messages: 50000,
      maxBytes: 256 << 20,
      runs: 5,
      pins: ["same", "split"],
      pingEvery: 100,
      window: 64,
    },
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
  extra.push(channelTable(matrix.cases));
  const streams = await runStreams({ ...plan.stream, timeoutMs, entry: options.entry });
  extra.push(streamTable(streams));
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
  if (plan.stream.sizes.length > 1) {
    plots.push({
      title: "One-way stream throughput by message size",
      xLabel: "message size (bytes)",
      yLabel: "MB/s",
      xLog: true,
      yLog: true,
      points: streams.map((r) => ({
        x: r.size,
        y: r.median.mbPerSec,
        series: `${r.transport} (${r.pin})`,
      })),
    });
  }
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
    findings: [...studyFindings(runs, matrix.cases, python), ...channelFinding(matrix.cases)],
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
