/**
 * The tables and plots of `ipcbench bench` (pure: results in, table out).
 *
 * @module
 */
import type { LinePlot, ReportTable } from "../shared/report.ts";
import { median } from "../shared/stats.ts";
import type { CaseResult } from "./measure.ts";
import type { BenchResult } from "./bench.ts";

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
