/**
 * What `taskserver load` reports: merging generators' results exactly (counts
 * add, histograms merge bucket by bucket, timelines second by second), the
 * summary (rate, percentiles, whether the generator kept its schedule), the
 * text, and the `--out DIR` files (CSV, Markdown, JSON, SVG of latency over time
 * and of the percentile spectrum). Pure functions over data, except
 * {@linkcode writeLoadFiles}.
 *
 * @module
 */
import { convertSummary, HdrHistogram, type PercentileSummary } from "../shared/hdr_histogram.ts";
import { type LinePlot, renderTable, type ReportTable, writeReport } from "../shared/report.ts";
import type { ShareResult, TimelineSecond } from "./load_engine.ts";
import { type Framing, mixShares } from "./load_plan.ts";

/** Lag above which (at p99) the generator says it could not keep its schedule, in µs. */
export const LAG_LIMIT_US = 1000;

/** The settings a report describes (the `settings` of the JSON document). */
export interface LoadSettings {
  target: string;
  /** `open` (a fixed rate) or `closed` (send on answer). */
  loop: "open" | "closed";
  rate: number | null;
  connections: number;
  pipeline: number;
  warmupMs: number;
  durationMs: number | null;
  requests: number | null;
  requestsPerConnection: number | null;
  framing: Framing;
  cycle: string[];
  payload: string;
  expression: string;
  verify: boolean;
  /** Generator isolates and where they ran (`in-process`, `thread`, `process`). */
  workers: number;
  workerMode: string;
}

/** The `results` of `taskserver load --json`: settings, raw data (mergeable) and summary. */
export interface LoadReport {
  settings: LoadSettings;
  measured: ShareResult;
  summary: LoadSummary;
}

/** Figures derived from a {@linkcode ShareResult}; latencies in milliseconds. */
export interface LoadSummary {
  seconds: number;
  requests: number;
  answered: number;
  errors: number;
  /** Answers per second over the measured span. */
  rate: number;
  latencyMs: PercentileSummary;
  uncorrectedMs: PercentileSummary;
  lagMs: PercentileSummary;
  connectMs: PercentileSummary;
  /** False when the generator sent later than {@linkcode LAG_LIMIT_US} at p99. */
  keptSchedule: boolean;
}

/** Adds several generators' results into one, exactly. */
export function mergeResults(results: ShareResult[]): ShareResult {
  if (results.length === 0) throw new Error("nothing to merge");
  const hist = (pick: (r: ShareResult) => ShareResult["latency"]) => {
    const h = HdrHistogram.fromJSON(pick(results[0]));
    for (const r of results.slice(1)) h.merge(HdrHistogram.fromJSON(pick(r)));
    return h.toJSON();
  };
  const seconds = new Map<number, { s: TimelineSecond; h: HdrHistogram }>();
  for (const r of results) {
    for (const t of r.timeline) {
      const at = seconds.get(t.second);
      if (!at) {
        seconds.set(t.second, { s: { ...t }, h: HdrHistogram.fromJSON(t.latency) });
      } else {
        at.s.sent += t.sent;
        at.s.answered += t.answered;
        at.s.errors += t.errors;
        at.h.merge(HdrHistogram.fromJSON(t.latency));
      }
    }
  }
  const sum = (pick: (r: ShareResult) => number) => results.reduce((s, r) => s + pick(r), 0);
  return {
    generators: sum((r) => r.generators),
    // Files written before the engine was recorded ran on Deno.connect.
    engine: [...new Set(results.map((r) => r.engine ?? "deno"))].sort().join("+"),
    ...pacingOf(results),
    connections: sum((r) => r.connections),
    startedAt: Math.min(...results.map((r) => r.startedAt)),
    endedAt: Math.max(...results.map((r) => r.endedAt)),
    requests: sum((r) => r.requests),
    answered: sum((r) => r.answered),
    errorReplies: sum((r) => r.errorReplies),
    failed: sum((r) => r.failed),
    connectErrors: sum((r) => r.connectErrors),
    unanswered: sum((r) => r.unanswered),
    interrupted: results.some((r) => r.interrupted),
    firstError: results.find((r) => r.firstError !== null)?.firstError ?? null,
    latency: hist((r) => r.latency),
    uncorrected: hist((r) => r.uncorrected),
    lag: hist((r) => r.lag),
    connect: hist((r) => r.connect),
    timeline: [...seconds.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => ({
      ...v.s,
      latency: v.h.toJSON(),
    })),
  };
}

function inMs(s: PercentileSummary): PercentileSummary {
  return convertSummary(s, (v) => Math.round(v) / 1000);
}

/** The summary of a result. */
export function summarize(result: ShareResult): LoadSummary {
  const seconds = Math.max(1e-3, (result.endedAt - result.startedAt) / 1000);
  const lag = HdrHistogram.fromJSON(result.lag);
  return {
    seconds: Math.round(seconds * 1000) / 1000,
    requests: result.requests,
    answered: result.answered,
    errors: result.errorReplies + result.failed + result.connectErrors,
    rate: Math.round((result.answered / seconds) * 10) / 10,
    latencyMs: inMs(HdrHistogram.fromJSON(result.latency).summary()),
    uncorrectedMs: inMs(HdrHistogram.fromJSON(result.uncorrected).summary()),
    lagMs: inMs(lag.summary()),
    connectMs: inMs(HdrHistogram.fromJSON(result.connect).summary()),
    keptSchedule: !(lag.count > 0 && lag.percentile(99) > LAG_LIMIT_US),
  };
}

/** Builds the report of a run (or of a merge). */
export function buildReport(settings: LoadSettings, measured: ShareResult): LoadReport {
  return { settings, measured, summary: summarize(measured) };
}

function describeSettings(s: LoadSettings): string {
  const loop = s.loop === "open"
    ? `open loop, ${s.rate} req/s over ${s.connections} connections`
    : `closed loop, ${s.connections} connections`;
  const bound = [
    s.durationMs !== null ? `${s.durationMs / 1000} s` : null,
    s.requests !== null ? `${s.requests} requests` : null,
    s.requestsPerConnection !== null ? `${s.requestsPerConnection} per connection` : null,
  ].filter((x) => x !== null).join(", ");
  const shares = Object.entries(mixShares(s.cycle)).map(([c, p]) => `${c}: ${Math.round(p)}%`);
  const mix = s.framing === "raw"
    ? `study framing, '${s.payload}' without newline`
    : `mix ${shares.join(", ")}, payload '${s.payload}'` +
      (s.cycle.includes("2") ? `, expression '${s.expression}'` : "");
  const workers = s.workerMode === "merged"
    ? `${s.workers} runs merged`
    : s.workers === 0
    ? "in-process"
    : `${s.workers} ${s.workerMode} workers`;
  return `${s.target}: ${loop}, ${bound}` +
    (s.warmupMs > 0 ? ` after ${s.warmupMs / 1000} s warmup` : "") +
    `, pipeline ${s.pipeline}, ${workers}\n  ${mix}`;
}

function row(name: string, s: PercentileSummary): (string | number | null)[] {
  return [name, s.p50, s.p90, s.p99, s.p999, s.p9999, s.max, s.mean];
}

/** The per-second timeline as a table (seconds from the start of measuring). */
export function timelineTable(result: ShareResult): ReportTable {
  return {
    title: "Timeline (per second)",
    columns: ["Second", "Sent", "Answered", "Errors", "p99 (ms)"],
    rows: result.timeline.map((t) => [
      t.second,
      t.sent,
      t.answered,
      t.errors,
      t.answered > 0 ? HdrHistogram.fromJSON(t.latency).percentile(99) / 1000 : null,
    ]),
  };
}

/** The latency table: corrected, and uncorrected beside it in the open loop. */
export function latencyTable(report: LoadReport, showUncorrected: boolean): ReportTable {
  const { summary, settings } = report;
  const rows = [row(settings.loop === "open" ? "corrected" : "latency", summary.latencyMs)];
  if (showUncorrected && settings.loop === "open") {
    rows.push(row("uncorrected", summary.uncorrectedMs));
  }
  return {
    columns: ["Latency (ms)", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"],
    rows,
  };
}

/** The merged `pacing` of open-loop results (none for the closed loop). */
function pacingOf(results: ShareResult[]): { pacing?: string } {
  const kinds = new Set(results.flatMap((r) => r.pacing === undefined ? [] : [r.pacing]));
  return kinds.size === 0 ? {} : { pacing: [...kinds].sort().join("+") };
}

/** The report as text; timeline rows shown when there are at most `maxTimeline`. */
export function loadText(report: LoadReport, showUncorrected: boolean, maxTimeline = 30): string {
  const { summary: s, measured: m, settings } = report;
  const lines = [`taskserver load ${describeSettings(settings)}`];
  if (m.engine === "ffi") lines.push("  engine: ffi (libc sockets and epoll)");
  if (m.pacing === "ffi") lines.push("  pacing: ffi (send times slept by usleep, not timers)");
  if (m.interrupted) lines.push("Interrupted: figures cover the run until Ctrl-C.");
  lines.push(
    `Requests: ${s.requests} sent, ${s.answered} answered, ${s.errors} errors ` +
      `(${m.errorReplies} error answers, ${m.failed} failed, ${m.connectErrors} connect)` +
      (m.unanswered > 0 ? `, ${m.unanswered} in flight at the stop` : ""),
    `Rate: ${s.rate} answers/s over ${s.seconds} s` +
      (settings.rate !== null ? ` (target ${settings.rate} req/s)` : ""),
    settings.loop === "open"
      ? "Latency counts from each request's scheduled send time (wrk2's rule: a stalled " +
        "server is charged for the requests it held up)."
      : "Latency counts from each request's send (closed loop: no schedule to correct against).",
    renderTable(latencyTable(report, showUncorrected)),
  );
  if (settings.loop === "open") {
    lines.push(
      s.keptSchedule
        ? `Generator kept its schedule: sent late by ${s.lagMs.p99} ms at p99 (limit 1 ms).`
        : `WARNING: the generator could not keep its schedule: sent late by ${s.lagMs.p99} ms ` +
          "at p99 (limit 1 ms); the figures include its own delay. Use more --workers, " +
          "a lower --rate or a quieter machine.",
    );
  }
  if (m.firstError) lines.push(`First error: ${m.firstError}`);
  if (m.timeline.length > 0 && m.timeline.length <= maxTimeline) {
    lines.push(renderTable(timelineTable(m)));
  } else if (m.timeline.length > maxTimeline) {
    lines.push(`Timeline: ${m.timeline.length} seconds (see --json or --out).`);
  }
  return lines.join("\n");
}

const SPECTRUM = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999];

/** Latency over time (p50, p99, max per second) and the percentile spectrum. */
export function loadPlots(report: LoadReport): LinePlot[] {
  const over: LinePlot = {
    title: `Latency over time, ${report.settings.target}`,
    xLabel: "Second of the run",
    yLabel: "Latency (ms)",
    points: report.measured.timeline.filter((t) => t.answered > 0).flatMap((t) => {
      const h = HdrHistogram.fromJSON(t.latency);
      return [
        { x: t.second, y: h.percentile(50) / 1000, series: "p50" },
        { x: t.second, y: h.percentile(99) / 1000, series: "p99" },
        { x: t.second, y: h.max / 1000, series: "max" },
      ];
    }),
    yLog: true,
  };
  const spectrum = (name: string, data: ShareResult["latency"]) => {
    const h = HdrHistogram.fromJSON(data);
    if (h.count === 0) return [];
    return SPECTRUM.filter((p) => p === 0 || h.count >= 1 / (1 - p / 100)).map((p) => ({
      x: 1 / (1 - p / 100),
      y: h.percentile(p) / 1000,
      series: name,
    }));
  };
  const spec: LinePlot = {
    title: "Percentile spectrum (x: 10 = p90, 100 = p99, 1000 = p99.9)",
    xLabel: "1 / (1 − percentile)",
    yLabel: "Latency (ms)",
    points: [
      ...spectrum(
        report.settings.loop === "open" ? "corrected" : "latency",
        report.measured.latency,
      ),
      ...(report.settings.loop === "open"
        ? spectrum("uncorrected", report.measured.uncorrected)
        : []),
    ],
    xLog: true,
    yLog: true,
  };
  return [over, spec];
}

/** Writes `taskserver-load.{md,json}`, CSVs (latency, timeline) and the two SVGs into `dir`. */
export function writeLoadFiles(dir: string, report: LoadReport): Promise<string[]> {
  return writeReport(dir, {
    name: "taskserver-load",
    title: `taskserver load ${report.settings.target}`,
    notes: [describeSettings(report.settings)],
    tables: [latencyTable(report, true), timelineTable(report.measured)],
    plots: loadPlots(report),
    json: report,
  });
}
