/**
 * `interarrival decode LOG` (ITGDec's job): reads a `serve --out FILE.csv` log
 * and reports, per interval of reception time, the bitrate, packet rate,
 * one-way delay, RFC 3550 jitter and loss, plus totals per flow. Streams the
 * log: memory grows with the number of intervals and flows, not of messages.
 *
 * @module
 */
import { roundMs } from "../shared/clock.ts";
import type { LinePlot, Report, ReportTable } from "../shared/report.ts";
import { FLOW_COLUMNS, type FlowReport, FlowStats } from "./flow_stats.ts";
import { type LogMessage, readLog } from "./sample_log.ts";

/** One interval of the series. */
export interface IntervalRow {
  /** Start of the interval, seconds after the first reception. */
  startS: number;
  packets: number;
  bytes: number;
  bitrateBps: number;
  packetRate: number;
  /** One-way delay over the interval's messages that carried a send time (ms). */
  delayMinMs: number | null;
  delayMeanMs: number | null;
  delayMaxMs: number | null;
  /** Mean of the RFC 3550 jitter estimates after each message of the interval (ms). */
  jitterMs: number | null;
  /** Sequence numbers found missing in this interval (a late one filling a gap counts −1). */
  lost: number;
  duplicates: number;
  reordered: number;
}

/** What `decode` reports. */
export interface DecodeResult {
  file: string;
  intervalMs: number;
  /** Epoch ms of the first reception. */
  firstAt: number | null;
  messages: number;
  rows: IntervalRow[];
  flows: FlowReport[];
}

interface Accumulator {
  packets: number;
  bytes: number;
  delayMin: number;
  delayMax: number;
  delaySum: number;
  delayCount: number;
  jitterSum: number;
  jitterCount: number;
  lost: number;
  duplicates: number;
  reordered: number;
}

function emptyAccumulator(): Accumulator {
  return {
    packets: 0,
    bytes: 0,
    delayMin: Infinity,
    delayMax: -Infinity,
    delaySum: 0,
    delayCount: 0,
    jitterSum: 0,
    jitterCount: 0,
    lost: 0,
    duplicates: 0,
    reordered: 0,
  };
}

/** Most intervals a decode produces (the series is the output, so it is capped). */
export const MAX_INTERVALS = 1_000_000;

/**
 * Decodes messages (in log order) into the interval series. A flow is a
 * connection and flow id (TCP) or a sender address and flow id (UDP); UDP
 * sequence numbers count from 0, TCP ones from the first the log holds.
 */
export async function decodeMessages(
  messages: AsyncIterable<LogMessage> | Iterable<LogMessage>,
  intervalMs: number,
  file = "",
): Promise<DecodeResult> {
  const flows = new Map<string, FlowStats>();
  const intervals = new Map<number, Accumulator>();
  let first: number | null = null;
  let count = 0;
  for await (const m of messages) {
    count++;
    first ??= m.receivedAt;
    const key = `${m.connection ?? m.remote}#${m.flow ?? ""}`;
    let flow = flows.get(key);
    if (!flow) {
      // UDP carries only binary messages, numbered from 0; a TCP flow may be the
      // study's lines (numbered from 1), so it counts from its first row.
      const start = m.sequence === null ? null : m.connection ? m.sequence : 0;
      flow = new FlowStats(m.flow, m.remote, m.connection ? "tcp" : "udp", m.connection, start);
      flows.set(key, flow);
    }
    const index = Math.floor((m.receivedAt - first) / intervalMs);
    if (index >= MAX_INTERVALS) {
      throw new Error(
        `The log spans more than ${MAX_INTERVALS} intervals of ${intervalMs} ms: use a longer --interval`,
      );
    }
    let acc = intervals.get(index);
    if (!acc) intervals.set(index, acc = emptyAccumulator());
    const highest = flow.sequences?.highest ?? 0;
    const { delayMs, arrival } = flow.add(m.receivedAt, m.bytes, m.sequence, m.sentAt);
    acc.packets++;
    acc.bytes += m.bytes;
    if (!Number.isNaN(delayMs)) {
      acc.delaySum += delayMs;
      acc.delayCount++;
      acc.delayMin = Math.min(acc.delayMin, delayMs);
      acc.delayMax = Math.max(acc.delayMax, delayMs);
      acc.jitterSum += flow.jitter.jitter;
      acc.jitterCount++;
    }
    if (arrival === "in-order" && m.sequence! > highest + 1) acc.lost += m.sequence! - highest - 1;
    else if (arrival === "reordered") {
      acc.lost--;
      acc.reordered++;
    } else if (arrival === "duplicate" || arrival === "late") acc.duplicates++;
  }
  const last = intervals.size === 0 ? -1 : Math.max(...intervals.keys());
  const rows: IntervalRow[] = [];
  const seconds = intervalMs / 1000;
  const r3 = (x: number) => roundMs(x);
  for (let i = 0; i <= last; i++) {
    const a = intervals.get(i) ?? emptyAccumulator();
    rows.push({
      startS: r3(i * seconds),
      packets: a.packets,
      bytes: a.bytes,
      bitrateBps: Math.round((a.bytes * 8) / seconds),
      packetRate: r3(a.packets / seconds),
      delayMinMs: a.delayCount ? r3(a.delayMin) : null,
      delayMeanMs: a.delayCount ? r3(a.delaySum / a.delayCount) : null,
      delayMaxMs: a.delayCount ? r3(a.delayMax) : null,
      jitterMs: a.jitterCount ? r3(a.jitterSum / a.jitterCount) : null,
      lost: a.lost,
      duplicates: a.duplicates,
      reordered: a.reordered,
    });
  }
  return {
    file,
    intervalMs,
    firstAt: first,
    messages: count,
    rows,
    flows: [...flows.values()].map((f) => f.report()),
  };
}

/** Decodes a log file. */
export async function decodeLog(path: string, intervalMs: number): Promise<DecodeResult> {
  try {
    await Deno.stat(path);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound ? "no such file" : String(error);
    throw new Error(`Cannot read the log ${path}: ${why} (write one with serve --out FILE.csv)`);
  }
  return decodeMessages(readLog(path), intervalMs, path);
}

/** Parses `--interval`: `1s`, `250ms`, `0.5` (seconds). */
export function parseInterval(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s)?$/.exec(text.trim());
  const ms = match ? Number(match[1]) * (match[2] === "ms" ? 1 : 1000) : NaN;
  if (!(ms > 0)) return NaN;
  return ms;
}

/** The series as a table. */
export function seriesTable(result: DecodeResult): ReportTable {
  return {
    title: `Per ${result.intervalMs} ms interval`,
    columns: [
      "start (s)",
      "packets",
      "bytes",
      "bitrate (bit/s)",
      "packets/s",
      "delay min (ms)",
      "delay mean (ms)",
      "delay max (ms)",
      "jitter (ms)",
      "lost",
      "duplicates",
      "reordered",
    ],
    rows: result.rows.map((r) => [
      r.startS,
      r.packets,
      r.bytes,
      r.bitrateBps,
      r.packetRate,
      r.delayMinMs,
      r.delayMeanMs,
      r.delayMaxMs,
      r.jitterMs,
      r.lost,
      r.duplicates,
      r.reordered,
    ]),
  };
}

/** Per-flow totals as a table. */
export function flowTable(flows: FlowReport[]): ReportTable {
  return {
    title: "Flows",
    columns: [
      ...FLOW_COLUMNS,
      "jitter (ms)",
      "lost",
      "duplicates",
      "reordered",
    ],
    rows: flows.map((f) => [
      f.flow,
      f.connection ? `${f.remote} (connection ${f.connection})` : f.remote,
      f.messages,
      f.bytes,
      f.delay?.mean ?? null,
      f.jitterMs,
      f.lost,
      f.duplicates,
      f.reordered,
    ]),
  };
}

/** Tables and plots (bitrate, packet rate, delay, jitter, loss over time) for `--out DIR`. */
export function decodeReport(result: DecodeResult): Report {
  const series = (name: string, y: (r: IntervalRow) => number | null) =>
    result.rows.flatMap((r) => {
      const value = y(r);
      return value === null ? [] : [{ x: r.startS, y: value, series: name }];
    });
  const plot = (title: string, yLabel: string, points: LinePlot["points"]): LinePlot => ({
    title,
    xLabel: "time since the first message (s)",
    yLabel,
    points,
  });
  return {
    name: "interarrival-decode",
    title: `interarrival decode: ${result.file}`,
    notes: [
      `${result.messages} messages, ${result.flows.length} flows, ${result.rows.length} intervals`,
    ],
    tables: [seriesTable(result), flowTable(result.flows)],
    plots: [
      plot("Bitrate", "bit/s", series("bitrate", (r) => r.bitrateBps)),
      plot("Packet rate", "packets/s", series("packets/s", (r) => r.packetRate)),
      plot("One-way delay", "ms", [
        ...series("mean", (r) => r.delayMeanMs),
        ...series("max", (r) => r.delayMaxMs),
      ]),
      plot("Jitter (RFC 3550)", "ms", series("jitter", (r) => r.jitterMs)),
      plot("Loss", "sequence numbers lost", series("lost", (r) => r.lost)),
    ],
    json: result,
  };
}
