/**
 * `interarrival check`: runs a server and a client together and tests the data
 * inter-arrival times the server measured against the requested distribution.
 *
 * @module
 */
import type { Mode } from "../shared/mode.ts";
import { histogram, percentile } from "../shared/stats.ts";
import type { LinePlot, Report, ReportTable } from "../shared/report.ts";
import { cdf, describeDistribution, type DistributionSpec } from "./distributions.ts";
import { fitGaps, type FitResult } from "./fit.ts";
import { dataGaps, measureReception, type ReceiverSummary, sentGaps } from "./server.ts";
import { runClient, type TimingSummary } from "./client.ts";
import type { SenderPriority } from "./priority.ts";

/** Options for {@linkcode runCheck}. */
export interface CheckOptions {
  dist: DistributionSpec;
  intervals: number;
  workers: number;
  mode: Mode;
  seed: number;
  alpha?: number;
  /** Client Web Workers (default: one per worker). */
  threads?: number;
  /** Worker and child entry (default: the main module). */
  entry?: string | URL;
  /** Longest wait for the server to see every connection close (default 15 s). */
  settleTimeoutMs?: number;
  /** Transport (default tcp). */
  protocol?: "tcp" | "udp";
  /** Aborting stops the client (the server stops with it). */
  signal?: AbortSignal;
  /** The sending thread's CPU priority (default `normal`). */
  priority?: SenderPriority;
}

/** What `check` found. */
export interface CheckResult {
  dist: string;
  mode: Mode;
  workers: number;
  intervals: number;
  seed: number;
  /** Messages the client sent and the server counted. */
  sent: number;
  received: number;
  protocol: "tcp" | "udp";
  /** Fit of the server's measured gaps. */
  fit: FitResult;
  /**
   * Fit of the gaps between the send times the messages carried, as the server
   * decoded them: over TCP, messages read together share a receive time, so this
   * is the server-side test that holds there.
   */
  carriedFit: FitResult;
  /** Fit of the client's own send gaps (excludes the network and the server). */
  clientFit: FitResult;
  /** The verdict: the receive-time fit passes, or the carried-send-time fit does. */
  passed: boolean;
  /** Client timing error (send time − deadline). */
  timing: TimingSummary;
  server: ReceiverSummary;
  /** Measured gaps (server side) for the plots, ms. */
  gaps: number[];
  /** Client timing error against the deadline (ms after start), for the plot. */
  errorOverTime: { at: number; error: number }[];
}

/** Runs the check (server in this process, client in Web Workers). */
export async function runCheck(options: CheckOptions): Promise<CheckResult> {
  const protocol = options.protocol ?? "tcp";
  const { sent: client, received: stopped } = await measureReception(
    { mode: options.mode, workers: 2, entry: options.entry, protocol },
    protocol === "udp" ? options.workers * (options.intervals + 1) : options.workers,
    (port) =>
      runClient({
        host: "127.0.0.1",
        port,
        workers: options.workers,
        intervals: options.intervals,
        dist: options.dist,
        seed: options.seed,
        threads: options.threads,
        entry: options.entry,
        signal: options.signal,
        protocol,
        priority: options.priority,
        // The fit uses every gap.
        keepRecords: options.intervals + 1,
      }),
    options.settleTimeoutMs ?? 15_000,
  );
  const records = [...stopped.connections, { samples: stopped.datagrams }];
  const gaps = dataGaps(records);
  const clientGaps = client.senders.flatMap((s) => s.achieved);
  const errorOverTime = client.senders[0].deadlines.map((at, i) => ({
    at,
    error: client.senders[0].errors[i],
  }));
  const result: CheckResult = {
    dist: describeDistribution(options.dist),
    mode: options.mode,
    workers: options.workers,
    intervals: options.intervals,
    seed: options.seed,
    sent: client.overall.messages,
    received: stopped.summary.messages,
    protocol,
    fit: fitGaps(gaps, options.dist, options.alpha ?? 0.01),
    carriedFit: fitGaps(sentGaps(records), options.dist, options.alpha ?? 0.01),
    clientFit: fitGaps(clientGaps, options.dist, options.alpha ?? 0.01),
    passed: false,
    timing: client.overall,
    server: stopped.summary,
    gaps,
    errorOverTime,
  };
  result.passed = result.fit.passed || result.carriedFit.passed;
  return result;
}

function r3(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 1000) / 1000 : x;
}

/** Histogram of the measured gaps with the requested density (probability per bin) over it. */
export function densityPlot(gaps: number[], dist: DistributionSpec, title: string): LinePlot {
  const hi = Math.max(percentile(gaps, 99.5), 1e-3);
  const bins = 40;
  const h = histogram(gaps, bins, 0, hi);
  const model = cdf(dist);
  const points = [];
  for (let i = 0; i < bins; i++) {
    const lo = h.edges[i], up = h.edges[i + 1];
    const x = r3((lo + up) / 2);
    points.push({ x, y: h.counts[i] / gaps.length, series: "measured" });
    points.push({ x, y: model(up) - model(lo), series: "requested" });
  }
  return { title, xLabel: "gap (ms)", yLabel: "fraction of gaps", points };
}

/** Tables, notes and plots for the terminal and `--out DIR`. */
export function checkReport(result: CheckResult, spec?: DistributionSpec): Report {
  const fitRow = (name: string, fit: FitResult) => [
    name,
    fit.n,
    r3(fit.expectedMean),
    r3(fit.measuredMean),
    `${(fit.meanRelativeError * 100).toFixed(3)}%`,
    Number.isFinite(fit.varianceRatio) ? r3(fit.varianceRatio) : null,
    fit.ks ? Number(fit.ks.statistic.toFixed(5)) : null,
    fit.ks ? Number(fit.ks.pValue.toPrecision(4)) : null,
    fit.passed ? "pass" : "FAIL",
  ];
  const fitTable: ReportTable = {
    title: `Fit to ${result.dist} (α = ${result.fit.alpha})`,
    columns: [
      "measured at",
      "gaps",
      "requested mean (ms)",
      "measured mean (ms)",
      "mean error",
      "variance ratio",
      "KS D",
      "KS p",
      "verdict",
    ],
    rows: [
      fitRow("server (receive times)", result.fit),
      fitRow("server (carried send times)", result.carriedFit),
      fitRow("client", result.clientFit),
    ],
  };
  const t = result.timing.error;
  const timingTable: ReportTable = {
    title: "Client timing error (send time − deadline, ms)",
    columns: ["messages", "mean", "p50", "p95", "p99", "max", "coalesced"],
    rows: [[result.sent, t.mean, t.p50, t.p95, t.p99, t.max, result.timing.coalesced]],
  };
  const notes = [
    `${result.dist}, ${result.workers} worker(s) × ${result.intervals} intervals over ${result.protocol}, server ${result.mode}, seed ${result.seed}`,
    `sent ${result.sent} messages, server counted ${result.received}` +
    (result.sent === result.received
      ? " (none lost)"
      : ` (${result.sent - result.received} missing)`),
    `server, receive times: ${result.fit.verdict}`,
    `server, carried send times: ${result.carriedFit.verdict}`,
  ];
  const plots: LinePlot[] = [];
  if (spec && result.gaps.length > 0) {
    plots.push(densityPlot(result.gaps, spec, `Measured gaps vs ${result.dist}`));
    const step = Math.max(1, Math.floor(result.errorOverTime.length / 500));
    plots.push({
      title: "Timing error over time (worker 1)",
      xLabel: "deadline (ms after start)",
      yLabel: "send time − deadline (ms)",
      points: result.errorOverTime
        .filter((_, i) => i % step === 0)
        .map((p) => ({ x: p.at, y: p.error, series: "worker 1" })),
    });
  }
  const { gaps: _gaps, errorOverTime: _e, ...json } = result;
  return {
    name: "interarrival-check",
    title: `interarrival check: ${result.dist}`,
    notes,
    tables: [fitTable, timingTable],
    plots,
    json: { ...json, samples: { gapsMs: result.gaps } },
  };
}
