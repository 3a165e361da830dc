/**
 * What the receiver reports when it stops, built from the collector: the
 * study's two averages, the gap, delay and size distributions, and the flows.
 *
 * @module
 */
import { convertSummary, HdrHistogram, type PercentileSummary } from "../shared/hdr_histogram.ts";
import { roundMs } from "../shared/clock.ts";
import { summarize, type Summary } from "../shared/stats.ts";
import type { Mode } from "../shared/mode.ts";
import type { FlowReport } from "./flow_stats.ts";
import type { MessageSample, ReceiverCollector } from "./collector.ts";

/** Percentiles in milliseconds from a microsecond histogram. */
function msSummary(h: HdrHistogram): PercentileSummary {
  return convertSummary(h.summary(), (x) => (Number.isFinite(x) ? roundMs(x / 1000) : x));
}

/** What the server reports when it stops. */
export interface ReceiverSummary {
  mode: Mode;
  protocol: "tcp" | "udp";
  perConnection: boolean;
  connections: number;
  messages: number;
  bytes: number;
  invalidUtf8: number;
  /** UDP datagrams without a valid header. */
  invalidDatagrams: number;
  unterminated: number;
  closeReasons: Record<string, number>;
  /** Average time between connection setups (ms), the study's first figure. */
  averageConnectionInterarrivalMs: number;
  /** Average time between receptions of the same flow (ms), the study's second figure. */
  averageDataInterarrivalMs: number;
  connectionInterarrival: Summary;
  dataInterarrival: Summary;
  /** One-way delay (ms) over every message that carried a send time. */
  delay: PercentileSummary;
  /** "shared": every sender on this machine, delays exact; "separate": only as good as the clocks' sync. */
  clocks: "shared" | "separate" | "unknown";
  /** Message sizes in bytes. */
  sizes: PercentileSummary;
  lost: number;
  duplicates: number;
  reordered: number;
  /** UDP: the engine that read the socket, and datagrams the kernel dropped for a full buffer. */
  udpEngine: string | null;
  kernelDrops: number | null;
  flows: FlowReport[];
  /** Set in sequential mode: connection times are accept times, not arrival times. */
  note: string | null;
}

/** Connection inter-arrival gaps (ms) between consecutive accepts, over every worker. */
export function connectionGaps(acceptTimes: readonly number[]): number[] {
  const times = acceptTimes.filter(Number.isFinite).sort((a, b) => a - b);
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++) gaps.push(roundMs(times[i] - times[i - 1]));
  return gaps;
}

/** Data inter-arrival gaps (ms) over every connection (needs `keepSamples`). */
export function dataGaps(records: { samples: MessageSample[] }[]): number[] {
  const gaps: number[] = [];
  for (const record of records) {
    for (const sample of record.samples) if (sample.gapMs !== null) gaps.push(sample.gapMs);
  }
  return gaps;
}

/**
 * Gaps (ms) between the send times that consecutive messages of a flow carry,
 * in sequence order (needs `keepSamples`): the sender's timing as the receiver
 * sees it, free of the receive-side batching of TCP reads.
 */
export function sentGaps(records: { samples: MessageSample[] }[]): number[] {
  const byFlow = new Map<string, MessageSample[]>();
  for (const record of records) {
    for (const sample of record.samples) {
      if (sample.sentAt === null) continue;
      const key = `${sample.connection}#${sample.flow}`;
      let list = byFlow.get(key);
      if (!list) byFlow.set(key, list = []);
      list.push(sample);
    }
  }
  const gaps: number[] = [];
  for (const list of byFlow.values()) {
    list.sort((a, b) => (a.flowSequence ?? 0) - (b.flowSequence ?? 0));
    for (let i = 1; i < list.length; i++) {
      gaps.push(roundMs(list[i].sentAt! - list[i - 1].sentAt!));
    }
  }
  return gaps;
}

/** The sequential-mode caveat, printed with the summary. */
export const SEQUENTIAL_NOTE =
  "iterative mode: a connection's time is taken when it is accepted, after the previous " +
  "client left, so connection inter-arrival times are accept times, not arrival times";

/** Builds the summary from the collector. */
export function summarizeReceiver(
  collector: ReceiverCollector,
  mode: Mode,
  perConnection: boolean,
  protocol: "tcp" | "udp" = "tcp",
): ReceiverSummary {
  const counts = collector.connectionCounts();
  const conn = summarize(connectionGaps(collector.acceptTimes()));
  const data = collector.gapSummary();
  const flows = collector.flows();
  return {
    mode,
    protocol,
    perConnection,
    connections: counts.accepted,
    messages: collector.messages,
    bytes: flows.reduce((sum, f) => sum + f.bytes, 0),
    invalidUtf8: counts.invalidUtf8,
    invalidDatagrams: collector.udpInvalid,
    unterminated: counts.unterminated,
    closeReasons: counts.closeReasons,
    averageConnectionInterarrivalMs: roundMs(conn.mean),
    averageDataInterarrivalMs: data.mean,
    connectionInterarrival: conn,
    dataInterarrival: data,
    delay: msSummary(collector.delays),
    clocks: collector.clocks(),
    sizes: collector.sizes.summary(),
    lost: flows.reduce((sum, f) => sum + f.lost, 0),
    duplicates: flows.reduce((sum, f) => sum + f.duplicates, 0),
    reordered: flows.reduce((sum, f) => sum + f.reordered, 0),
    udpEngine: collector.udpEngine,
    kernelDrops: collector.kernelDrops,
    flows,
    note: mode === "sequential" ? SEQUENTIAL_NOTE : null,
  };
}
