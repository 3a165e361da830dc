/**
 * Tables and the report of `interarrival bench` (and the study's extra
 * tables): pure formatting of the rows bench.ts and bench_precision.ts measure.
 *
 * @module
 */
import { renderTable, type Report, type ReportTable } from "../shared/report.ts";
import type { AccuracyRow, BenchResult, ThroughputRow } from "./bench.ts";
import type { KsRow, UdpRateRow } from "./bench_precision.ts";

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
  const priorities = [...new Set(result.throughput.flatMap((r) => r.priority ?? []))];
  if (priorities.length > 0) {
    notes.push(`This tool's sending threads ran at: ${priorities.join("; ")}.`);
  }
  if (result.pressure) notes.push(`CPU pressure at the end: ${result.pressure}`);
  if (result.interrupted) {
    notes.push(`Interrupted (${result.interrupted}): the tables hold what was measured before.`);
  }
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

/** The UDP rate table. */
export function udpRateTable(rows: UdpRateRow[]): ReportTable {
  return {
    title: "UDP at a high packet rate, one flow, loopback",
    columns: [
      "engine",
      "rate × seconds",
      "bytes",
      "sent",
      "received",
      "lost (sent − received)",
      "lost (reported)",
      "reordered",
      "duplicates",
      "kernel drops",
      "achieved pkt/s",
      "error p50 (ms)",
      "error p99 (ms)",
    ],
    rows: rows.map((r) => [
      r.engine,
      `${r.rate}/s × ${r.seconds} s`,
      r.bytes,
      r.sent,
      r.received,
      r.expectedLost,
      r.lost,
      r.reordered,
      r.duplicates,
      r.kernelDrops,
      r.achievedRate,
      r.errorP50,
      r.errorP99,
    ]),
  };
}

/** The KS table. */
export function ksTable(rows: KsRow[]): ReportTable {
  return {
    title: "KS check, exponential gaps (p ≥ 0.01 passes)",
    columns: [
      "protocol",
      "mean (ms)",
      "events",
      "KS p, receive times",
      "KS p, carried send times",
      "KS p, client",
      "verdict",
    ],
    rows: rows.map((r) => [
      r.protocol,
      r.meanMs,
      r.events,
      r.receiveKsP,
      r.carriedKsP,
      r.clientKsP,
      r.passed ? "pass" : "FAIL",
    ]),
  };
}

/** The report as the terminal shows it: the tables, then the notes. */
export function benchText(report: Report): string {
  return [...report.tables.map(renderTable), ...(report.notes ?? [])].join("\n");
}
