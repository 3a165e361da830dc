/**
 * What `interarrival` prints without `--json`: pure formatting of the results
 * the cores return.
 *
 * @module
 */
import { renderTable } from "../shared/report.ts";
import type { ReceiverSummary } from "./receiver_summary.ts";
import type { ClientResult } from "./client.ts";
import { FLOW_COLUMNS, type FlowReport } from "./flow_stats.ts";

/** Milliseconds with three decimals, or `–`. */
export function fixed(ms: number | null | undefined): string {
  return typeof ms === "number" && Number.isFinite(ms) ? ms.toFixed(3) : "–";
}

function gapTable(summary: ReceiverSummary): string {
  const row = (name: string, s: ReceiverSummary["dataInterarrival"]) => [
    name,
    s.count,
    fixed(s.mean),
    fixed(s.stddev),
    fixed(s.min),
    fixed(s.p50),
    fixed(s.p95),
    fixed(s.p99),
    fixed(s.max),
  ];
  return renderTable({
    columns: ["inter-arrival (ms)", "count", "mean", "stddev", "min", "p50", "p95", "p99", "max"],
    rows: [
      row("connection", summary.connectionInterarrival),
      row("data", summary.dataInterarrival),
    ],
  });
}

/** Lost sequence numbers as `3, 7-9, …`, at most `max` ranges. */
export function rangesText(flow: FlowReport, max = 10): string {
  const parts = flow.lostRanges.slice(0, max).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
  const more = flow.lostRanges.length > max || !flow.lostRangesComplete;
  return parts.join(", ") + (more ? ", …" : "");
}

/** Flows with sequence numbers: delay, jitter, loss, duplicates, reordering. */
export function flowsTable(flows: FlowReport[], max = 20): string {
  const shown = flows.slice(0, max);
  const table = renderTable({
    columns: [
      ...FLOW_COLUMNS,
      "delay max (ms)",
      "jitter (ms)",
      "lost",
      "dup",
      "reordered",
      "lost sequences",
    ],
    rows: shown.map((f) => [
      f.flow,
      f.connection ? `${f.remote} #${f.connection}` : `${f.remote}/${f.protocol}`,
      f.messages,
      f.bytes,
      fixed(f.delay?.mean),
      fixed(f.delay?.max),
      fixed(f.jitterMs),
      f.lost,
      f.duplicates,
      f.reordered,
      rangesText(f),
    ]),
  });
  return flows.length > max
    ? `${table}\n(${flows.length - max} more flows: see --json or --out)`
    : table;
}

const CLOCKS = {
  shared: "every sender is on this machine: one clock, delays exact",
  separate: "senders on other hosts: delays are only as good as the clocks' synchronisation",
  unknown: "no senders",
};

/** The server's report. */
export function serveText(summary: ReceiverSummary, stoppedBy: string): string {
  const lines = [
    `The server is terminating (${stoppedBy})`,
    `Average connection inter-arrival time: ${fixed(summary.averageConnectionInterarrivalMs)} ms`,
    `Average data inter-arrival time: ${fixed(summary.averageDataInterarrivalMs)} ms`,
    `${summary.connections} connections, ${summary.messages} messages, ${summary.bytes} bytes` +
    (summary.invalidUtf8 ? `, ${summary.invalidUtf8} not valid UTF-8` : "") +
    (summary.unterminated ? `, ${summary.unterminated} ended without a newline` : "") +
    (summary.invalidDatagrams ? `, ${summary.invalidDatagrams} datagrams not messages` : ""),
    gapTable(summary),
  ];
  const tracked = summary.flows.filter((f) => f.highestSequence !== null || f.delay !== null);
  if (tracked.length > 0) {
    const d = summary.delay;
    if (d.count > 0) {
      lines.push(
        `One-way delay (ms): mean ${fixed(d.mean)}, p50 ${fixed(d.p50)}, p99 ${fixed(d.p99)}, max ${
          fixed(d.max)
        } — clocks: ${CLOCKS[summary.clocks]}`,
      );
    }
    lines.push(
      `Lost ${summary.lost}, duplicates ${summary.duplicates}, reordered ${summary.reordered}`,
      flowsTable(tracked),
    );
  }
  if (summary.note) lines.push(`Note: ${summary.note}`);
  return lines.join("\n");
}

function clientTable(result: ClientResult): string {
  const row = (name: string | number, t: ClientResult["overall"]) => [
    name,
    t.messages,
    t.bytes,
    fixed(t.requestedMeanMs),
    fixed(t.achievedMeanMs),
    `${(t.meanRelativeError * 100).toFixed(3)}%`,
    fixed(t.error.mean),
    fixed(t.error.p50),
    fixed(t.error.p99),
    fixed(t.error.max),
  ];
  return renderTable({
    columns: [
      "flow",
      "messages",
      "bytes",
      "requested gap",
      "achieved gap",
      "gap error",
      "error mean",
      "error p50",
      "error p99",
      "error max",
    ],
    rows: [...result.perWorker.map((w) => row(w.worker, w)), row("all", result.overall)],
  });
}

/** The client's report (and, verbose, what each sender sent, on stderr's behalf). */
export function clientText(result: ClientResult): string {
  const lines = [
    `${result.dist}, ${result.workers} flows × ${
      result.durationMs !== null && result.intervals >= 100_000_000
        ? `${result.durationMs / 1000} s`
        : `${result.intervals} intervals`
    }, sizes ${result.sizes}, seed ${result.seed}, sent through ${
      [...new Set(result.perWorker.map((w) => w.engine === "ffi" ? "libc (FFI)" : "Deno's API"))]
        .join(" and ")
    }`,
    "times in ms; error = send time − deadline",
    clientTable(result),
  ];
  if (result.overall.sendErrors > 0) {
    lines.push(`${result.overall.sendErrors} datagrams could not be sent (no receiver?)`);
  }
  lines.push("All workers have finished.");
  return lines.join("\n");
}

/** Verbose lines of the senders (they run in Web Workers and cannot print). */
export function senderLines(result: ClientResult): string[] {
  const lines: string[] = [];
  for (const sender of result.senders) {
    if (sender.protocol === "tcp") {
      lines.push(`[Worker ${sender.worker}] Connected. Server says: ${sender.greeting}`);
    }
    for (const line of sender.sent ?? []) lines.push(`[Worker ${sender.worker}] Sending: ${line}`);
  }
  return lines;
}
