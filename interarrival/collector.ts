/**
 * The receiver's collector: merges what every worker, child and the UDP socket
 * measured into per-connection records, per-flow statistics and histograms.
 * Memory is bounded however long the run: per message it updates counters and
 * histograms and, with a sample log, writes one CSV row; it keeps message
 * samples only when asked (`keepSamples`, for `check` and the benches). Per
 * connection it keeps a record for the first `maxRecords` and, for every
 * connection, only its accept time (8 bytes) and counts: a client that opens
 * millions of connections costs megabytes, not a record each.
 *
 * @module
 */
import { HdrHistogram } from "../shared/hdr_histogram.ts";
import { roundMs } from "../shared/clock.ts";
import { summarize, type Summary } from "../shared/stats.ts";
import { type FlowReport, FlowStats } from "./flow_stats.ts";
import type { SampleLog } from "./sample_log.ts";

/** Why a connection ended. */
export type CloseReason =
  | "eof"
  | "reset"
  | "idle-timeout"
  | "line-too-long"
  | "bad-message"
  | "server-closing";

/**
 * Events from a connection handler to the collector, one per batch of messages.
 * Arrays are per message; -1 stands for "none" (JSON carries no NaN).
 */
export type ReceiverEvent =
  | { k: "open"; c: number; at: number; remote: string; where: string }
  | {
    k: "data";
    c: number;
    /** Epoch ms of each reception. */
    at: number[];
    /** Message lengths in bytes. */
    len: number[];
    /** Carried flow id, sequence number and send time (epoch ms), or -1. */
    flow: number[];
    seq: number[];
    sent: number[];
    /** Binary messages (sequences from 0) rather than the study's lines. */
    binary: boolean;
    /** Texts, when verbose. */
    text?: string[];
    /** Messages that were not valid UTF-8, in this batch. */
    bad: number;
  }
  | { k: "close"; c: number; at: number; reason: CloseReason; unterminated: boolean };

/** One connection as the collector saw it. */
export interface ConnectionRecord {
  /** Number in order of acceptance across the whole server, from 1. */
  id: number;
  remote: string;
  where: string;
  /** Epoch ms when accepted. */
  acceptedAt: number;
  closedAt: number | null;
  reason: CloseReason | null;
  messages: number;
  bytes: number;
  invalidUtf8: number;
  unterminated: boolean;
}

/** One message sample (kept only with `keepSamples`). */
export interface MessageSample {
  /** Connection number, or 0 for UDP. */
  connection: number;
  /** Position in its connection (or UDP flow) in order of reception, from 1. */
  sequence: number;
  /** Epoch ms of reception. */
  receivedAt: number;
  /** ms since the previous reception of this flow; null for the first. */
  gapMs: number | null;
  bytes: number;
  flow: number | null;
  /** Carried sequence number and send time (epoch ms). */
  flowSequence: number | null;
  sentAt: number | null;
}

/** Hooks the collector calls as events arrive (for `--verbose`). */
export interface ReceiverHooks {
  onMessage?(text: string, remote: string): void;
  onOpen?(remote: string, where: string): void;
  onClose?(remote: string, reason: CloseReason): void;
}

/** Options for {@linkcode ReceiverCollector}. */
export interface CollectorOptions {
  /** Keep every message sample in memory (finite runs only: `check`, benches, tests). */
  keepSamples?: boolean;
  /** Write every sample here as it arrives. */
  log?: SampleLog | null;
  /** Flows tracked one by one; messages of further flows count in one `other` flow. */
  maxFlows?: number;
  /**
   * Connections listed one by one in {@linkcode ReceiverCollector.connections}
   * (default 10,000, as `maxFlows`); later ones are counted, not listed.
   */
  maxRecords?: number;
}

/** A connection record with its samples (empty unless `keepSamples`). */
export type ConnectionWithSamples = ConnectionRecord & { samples: MessageSample[] };

interface ConnState extends ConnectionRecord {
  samples: MessageSample[];
  flows: Map<number, FlowStats>;
}

const OTHER_FLOW = "other";

/** Merges the events of every worker and child into records, flow statistics and histograms. */
export class ReceiverCollector {
  /** Connections open now, and the listed ones (closed or not). */
  #byKey = new Map<string, ConnState>();
  #order: ConnState[] = [];
  /** Accept times (epoch ms) of every connection, for the connection gaps. */
  #acceptTimes: number[] = [];
  #accepted = 0;
  /** Closed connections by reason, invalid UTF-8 messages and unterminated lines, over all. */
  #closeReasons: Record<string, number> = {};
  #invalidUtf8 = 0;
  #unterminated = 0;
  /** Tracked flows of connections that closed unlisted. */
  #unlistedFlows: FlowStats[] = [];
  #udpFlows = new Map<string, FlowStats>();
  #udpCounts = new Map<string, number>();
  #flowCount = 0;
  #other: FlowStats | null = null;
  #closed = 0;
  #waiters: { n: number; resolve: () => void }[] = [];
  #remotes = new Set<string>();
  readonly gaps = new HdrHistogram("us");
  #gapSquares = 0;
  readonly delays = new HdrHistogram("us");
  readonly sizes = new HdrHistogram("bytes");
  /** Smallest delay seen (ms): negative when the clocks differ. */
  minDelayMs = Infinity;
  readonly keepSamples: boolean;
  readonly log: SampleLog | null;
  readonly maxFlows: number;
  readonly maxRecords: number;
  /** UDP datagrams that were not messages (too short, wrong magic or version). */
  udpInvalid = 0;
  /** Which engine read the UDP socket. */
  udpEngine: string | null = null;
  /** Datagrams the kernel dropped for a full receive buffer (FFI engine only). */
  kernelDrops: number | null = null;

  constructor(readonly hooks: ReceiverHooks = {}, options: CollectorOptions = {}) {
    this.keepSamples = options.keepSamples ?? false;
    this.log = options.log ?? null;
    this.maxFlows = options.maxFlows ?? 10_000;
    this.maxRecords = options.maxRecords ?? 10_000;
  }

  /** Feeds one event from a connection handler. */
  add(raw: unknown, source: { worker: number }): void {
    const event = raw as ReceiverEvent;
    const key = `${source.worker}:${event.c}`;
    let state = this.#byKey.get(key);
    if (!state) {
      // Events of one connection arrive in order: its first event is its open.
      state = {
        id: ++this.#accepted,
        remote: "",
        where: "",
        acceptedAt: NaN,
        closedAt: null,
        reason: null,
        messages: 0,
        bytes: 0,
        invalidUtf8: 0,
        unterminated: false,
        samples: [],
        flows: new Map(),
      };
      this.#byKey.set(key, state);
      if (state.id <= this.maxRecords) this.#order.push(state);
    }
    if (event.k === "open") {
      state.remote = event.remote;
      state.where = event.where;
      state.acceptedAt = event.at;
      this.#acceptTimes.push(event.at);
      this.#remotes.add(hostOf(event.remote));
      this.log?.connection(state.id, event.remote, event.at);
      this.hooks.onOpen?.(event.remote, event.where);
    } else if (event.k === "data") {
      for (let i = 0; i < event.at.length; i++) {
        const flowId = event.flow[i];
        let flow = state.flows.get(flowId);
        if (!flow) {
          flow = this.#newFlow(
            flowId,
            state.remote,
            "tcp",
            state.id,
            event.seq[i] < 0 ? null : event.binary ? 0 : event.seq[i],
          );
          state.flows.set(flowId, flow);
        }
        state.messages++;
        state.bytes += event.len[i];
        const sample = this.#record(
          flow,
          state.id,
          state.messages,
          state.remote,
          event.at[i],
          event.len[i],
          flowId,
          event.seq[i],
          event.sent[i],
        );
        if (sample) state.samples.push(sample);
        if (event.text) this.hooks.onMessage?.(event.text[i], state.remote);
      }
      state.invalidUtf8 += event.bad;
      this.#invalidUtf8 += event.bad;
    } else {
      state.closedAt = event.at;
      state.reason = event.reason;
      state.unterminated = event.unterminated;
      this.#closed++;
      this.#closeReasons[event.reason] = (this.#closeReasons[event.reason] ?? 0) + 1;
      if (event.unterminated) this.#unterminated++;
      // A closed connection sends no more events: only a listed one keeps its record.
      this.#byKey.delete(key);
      if (state.id > this.maxRecords) {
        for (const flow of state.flows.values()) {
          if (flow !== this.#other) this.#unlistedFlows.push(flow);
        }
      }
      this.hooks.onClose?.(state.remote, event.reason);
      this.#waiters = this.#waiters.filter((waiter) => {
        if (this.#closed >= waiter.n) waiter.resolve();
        return this.#closed < waiter.n;
      });
    }
  }

  /** Feeds one UDP message (a datagram with a valid header). */
  addDatagram(
    remote: string,
    at: number,
    bytes: number,
    flowId: number,
    sequence: number,
    sentAt: number,
  ): void {
    const key = `${remote}#${flowId}`;
    let flow = this.#udpFlows.get(key);
    if (!flow) {
      flow = this.#newFlow(flowId, remote, "udp", null, 0);
      if (flow !== this.#other) this.#udpFlows.set(key, flow);
      this.#remotes.add(hostOf(remote));
    }
    const n = (this.#udpCounts.get(key) ?? 0) + 1;
    if (flow !== this.#other) this.#udpCounts.set(key, n);
    const sample = this.#record(flow, 0, n, remote, at, bytes, flowId, sequence, sentAt);
    if (sample) this.udpSamples.push(sample);
  }

  /** UDP message samples (only with `keepSamples`). */
  readonly udpSamples: MessageSample[] = [];

  #newFlow(
    flowId: number,
    remote: string,
    protocol: "tcp" | "udp",
    connection: number | null,
    start: number | null,
  ): FlowStats {
    if (this.#flowCount >= this.maxFlows) {
      this.#other ??= new FlowStats(null, OTHER_FLOW, protocol, null, null);
      return this.#other;
    }
    this.#flowCount++;
    return new FlowStats(flowId < 0 ? null : flowId, remote, protocol, connection, start);
  }

  #record(
    flow: FlowStats,
    connection: number,
    position: number,
    remote: string,
    at: number,
    bytes: number,
    flowId: number,
    seq: number,
    sent: number,
  ): MessageSample | null {
    const { gapMs, delayMs } = flow.add(at, bytes, seq < 0 ? null : seq, sent < 0 ? null : sent);
    if (!Number.isNaN(gapMs)) {
      const gapUs = gapMs * 1000;
      this.gaps.record(gapUs);
      this.#gapSquares += Math.round(gapUs) ** 2;
    }
    if (!Number.isNaN(delayMs)) {
      this.delays.record(delayMs * 1000);
      if (delayMs < this.minDelayMs) this.minDelayMs = delayMs;
    }
    this.sizes.record(bytes);
    this.log?.message(connection, position, remote, at, gapMs, bytes, flowId, seq, sent, delayMs);
    if (!this.keepSamples) return null;
    return {
      connection,
      sequence: position,
      receivedAt: at,
      gapMs: Number.isNaN(gapMs) ? null : roundMs(gapMs),
      bytes,
      flow: flowId < 0 ? null : flowId,
      flowSequence: seq < 0 ? null : seq,
      sentAt: sent < 0 ? null : sent,
    };
  }

  /** Connections closed so far. */
  get closed(): number {
    return this.#closed;
  }

  /** Resolves once `n` connections have closed. */
  whenClosed(n: number): Promise<void> {
    if (this.#closed >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  /** Messages received so far (every protocol). */
  get messages(): number {
    return this.sizes.count;
  }

  /**
   * The first `maxRecords` connections in order of acceptance, numbered from 1,
   * with their samples.
   */
  connections(): ConnectionWithSamples[] {
    return this.#order.map(({ flows: _flows, ...record }) => record);
  }

  /** Every connection's counts (listed or not): accepted, by close reason, invalid, unterminated. */
  connectionCounts(): {
    accepted: number;
    closeReasons: Record<string, number>;
    invalidUtf8: number;
    unterminated: number;
  } {
    const open = this.#accepted - this.#closed;
    return {
      accepted: this.#accepted,
      closeReasons: open > 0 ? { ...this.#closeReasons, open } : { ...this.#closeReasons },
      invalidUtf8: this.#invalidUtf8,
      unterminated: this.#unterminated,
    };
  }

  /** Accept times (epoch ms) of every connection, in the order the events came. */
  acceptTimes(): readonly number[] {
    return this.#acceptTimes;
  }

  /** Every flow's report: TCP flows by connection, then UDP flows, then `other`. */
  flows(): FlowReport[] {
    const reports: FlowReport[] = [];
    for (const state of this.#order) {
      for (const flow of state.flows.values()) reports.push(flow.report());
    }
    const unlisted = [...this.#byKey.values()].filter((state) => state.id > this.maxRecords);
    for (const state of unlisted) {
      for (const flow of state.flows.values()) {
        if (flow !== this.#other) reports.push(flow.report());
      }
    }
    for (const flow of this.#unlistedFlows) reports.push(flow.report());
    const udp = [...this.#udpFlows.values()].sort((a, b) =>
      (a.flow ?? -1) - (b.flow ?? -1) || (a.remote < b.remote ? -1 : a.remote > b.remote ? 1 : 0)
    );
    for (const flow of udp) reports.push(flow.report());
    if (this.#other) reports.push(this.#other.report());
    return reports;
  }

  /** Data inter-arrival summary (ms) from the gap histogram. */
  gapSummary(): Summary {
    const h = this.gaps;
    const n = h.count;
    if (n === 0) return summarize([]);
    const meanUs = h.mean;
    const variance = n > 1 ? Math.max(0, (this.#gapSquares - n * meanUs * meanUs) / (n - 1)) : 0;
    return {
      count: n,
      mean: roundMs(meanUs / 1000),
      stddev: roundMs(Math.sqrt(variance) / 1000),
      min: roundMs(h.min / 1000),
      p50: roundMs(h.percentile(50) / 1000),
      p95: roundMs(h.percentile(95) / 1000),
      p99: roundMs(h.percentile(99) / 1000),
      max: roundMs(h.max / 1000),
    };
  }

  /**
   * Whether sender and receiver share a clock: every sender on this machine
   * (loopback or one of its addresses) means delays are exact.
   */
  clocks(): "shared" | "separate" | "unknown" {
    if (this.#remotes.size === 0) return "unknown";
    const local = localAddresses();
    for (const host of this.#remotes) if (!local.has(host)) return "separate";
    return "shared";
  }
}

function hostOf(remote: string): string {
  const bracket = /^\[(.*)\]:\d+$/.exec(remote);
  if (bracket) return bracket[1];
  const colon = remote.lastIndexOf(":");
  return colon < 0 ? remote : remote.slice(0, colon);
}

function localAddresses(): Set<string> {
  const set = new Set<string>(["::1", "localhost"]);
  try {
    for (const i of Deno.networkInterfaces()) set.add(i.address);
  } catch {
    // Without --allow-sys, loopback is still known.
  }
  return set;
}

/** True for 127.0.0.0/8 and other addresses of this machine. */
export function isLocalHost(host: string): boolean {
  return host.startsWith("127.") || localAddresses().has(host);
}
