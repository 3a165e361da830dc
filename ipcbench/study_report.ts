/**
 * The ipcbench study's report, pure: raw numbers and the plan in, the tables,
 * plots and findings' sentences out (tests feed it synthetic numbers).
 *
 * @module
 */
import type { LinePlot, ReportTable } from "../shared/report.ts";
import type { StudyScale } from "../shared/study.ts";
import type { StudyFindings } from "../shared/study_harness.ts";
import { median } from "../shared/stats.ts";
import type { CaseResult } from "./measure.ts";
import type { PythonRun } from "./anchor.ts";
import { type BenchCase, type BenchResult, DEFAULT_SIZES } from "./bench.ts";
import { benchPlots, benchTable } from "./bench_table.ts";
import { channelFinding, channelTable } from "./channel_report.ts";
import { type StreamResult, streamTable } from "./stream.ts";
import { type Transport, TRANSPORT_NAMES, TRANSPORTS } from "./transports.ts";
import { CPU_VS_WALL_NOTE, PUBLISHED, type StudyScalePlan } from "./study_plans.ts";

function r1(value: number): number {
  return Math.round(value * 10) / 10;
}

/** One run of one of the study's two cases. */
export interface StudyCaseRun {
  run: number;
  /** `High Level` (the child's pipes, the study's queue) or `Low Level` (TCP). */
  case: "High Level" | "Low Level";
  transport: Transport;
  result: CaseResult;
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

/** What the study's `measure` returns: raw numbers only. */
export interface StudyRaw {
  scale: StudyScale;
  /** The study's two cases, as it ran them. */
  runs: StudyCaseRun[];
  /** The study's own Python program on this machine, or why it did not run. */
  python: { runs: PythonRun[] } | { skipped: string };
  /** The transport matrix. */
  matrix: BenchResult;
  /** One-way streams over the child channel kinds and sockets. */
  streams: StreamResult[];
}

/** The study's report from raw numbers (pure; see shared/study_harness.ts). */
export function reportStudy(raw: StudyRaw, plan: StudyScalePlan): StudyFindings {
  const { runs, matrix, streams, scale } = raw;
  const skipped: string[] = [];
  let python: Parameters<typeof studyFindings>[2] = null;
  const extra: ReportTable[] = [studyCorrectedTable(runs)];
  if ("skipped" in raw.python) skipped.push(raw.python.skipped);
  else {
    const pythonRuns = raw.python.runs;
    const byCase = (name: "high" | "low") => pythonRuns.filter((r) => r.case === name);
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
      rows: pythonRuns.map((r) => [
        r.case === "high" ? "High Level (mp.Queue)" : "Low Level (TCP)",
        r.run,
        Math.round(rate(r)),
        Math.round(wallRate(r)),
        r1(r.cpu * 1000),
        r1(r.wall * 1000),
      ]),
    });
  }
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
  return {
    measured: {
      title: "Measured here (Linux, Deno; pipes vs. TCP loopback): transfers/2/parent CPU s",
      columns: ["run", "High Level (queue)", "Low Level (socket)"],
      rows: Array.from({ length: plan.repeats }, (_, i) => measuredRow(i)),
    },
    extra,
    plots: studyPlots(raw, plan),
    findings: [...studyFindings(runs, matrix.cases, python), ...channelFinding(matrix.cases)],
    skipped,
    options: {
      studyRoundTrips: plan.studyRoundTrips,
      repeats: plan.repeats,
      matrix: plan.matrix,
      note: CPU_VS_WALL_NOTE,
      transports: Object.fromEntries(TRANSPORT_NAMES.map((t) => [t, TRANSPORTS[t].label])),
    },
  };
}

function studyPlots({ runs, matrix, streams }: StudyRaw, plan: StudyScalePlan): LinePlot[] {
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
  return plots;
}
