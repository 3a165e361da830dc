/**
 * The inter-arrival-time server: a connection handler that timestamps every
 * message where its bytes arrive (monotonic clock, microseconds), and a collector
 * in the serving isolate that merges what every worker and child measured.
 *
 * Runs in every mode through `shared/server.ts`. Never prints: verbose lines and
 * connection events go to callbacks.
 *
 * @module
 */
import {
  type ConnectionContext,
  defineConnectionHandler,
  type Duplex,
  serve,
} from "../shared/server.ts";
import { decodeText, encodeLine, LineDecoder, LineOverflow } from "../shared/codec.ts";
import { roundMs } from "../shared/clock.ts";
import { TimeoutError } from "../shared/errors.ts";
import { summarize, type Summary } from "../shared/stats.ts";
import type { Mode } from "../shared/mode.ts";
import { DEFAULT_MAX_LINE, formatAddress, GREETING } from "./protocol.ts";

/** What every connection handler is told (JSON, crosses to workers and children). */
export interface ReceiverInit {
  verbose: boolean;
  maxLine: number;
  idleTimeoutMs: number;
}

/** Why a connection ended. */
export type CloseReason = "eof" | "reset" | "idle-timeout" | "line-too-long" | "server-closing";

// Events from the handler to the collector, kept short: there is one per batch of messages.
type ReceiverEvent =
  | { k: "open"; c: number; at: number; remote: string; where: string }
  | {
    k: "data";
    c: number;
    /** Sequence number of the first message in this batch (from 1). */
    s: number;
    /** Epoch ms of each reception. */
    at: number[];
    /** Gap since the previous reception on this connection (ms); null for the first. */
    gap: (number | null)[];
    /** Message lengths in bytes. */
    len: number[];
    /** Texts, when verbose. */
    text?: string[];
    /** Messages that were not valid UTF-8, in this batch. */
    bad: number;
  }
  | { k: "close"; c: number; at: number; reason: CloseReason; unterminated: boolean };

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();
const BATCH = 256;
const FLUSH_MS = 50;

/**
 * Serves one connection: greets it, splits its bytes into lines, and reports each
 * line's arrival time and the gap since the previous one on this connection.
 */
export async function receiveConnection(
  conn: Duplex,
  context: ConnectionContext<ReceiverInit>,
): Promise<void> {
  const { verbose, maxLine, idleTimeoutMs } = context.init;
  const c = context.connection;
  const remote = formatAddress(conn.remoteAddr);
  context.emit({ k: "open", c, at: context.acceptedAt, remote, where: context.where });
  const decoder = new LineDecoder(maxLine);
  let sequence = 0;
  let last = NaN;
  let batch: Extract<ReceiverEvent, { k: "data" }> = newBatch(c, 1, verbose);
  const flush = () => {
    if (batch.at.length === 0) return;
    context.emit(batch);
    batch = newBatch(c, sequence + 1, verbose);
  };
  const record = (arrived: number, line: Uint8Array) => {
    sequence++;
    batch.at.push(roundMs(performance.timeOrigin + arrived));
    batch.gap.push(Number.isNaN(last) ? null : roundMs(arrived - last));
    batch.len.push(line.length);
    try {
      strictUtf8.decode(line);
    } catch {
      batch.bad++;
    }
    // Verbose text replaces invalid sequences with U+FFFD.
    if (batch.text) batch.text.push(decodeText(line));
    last = arrived;
    if (batch.at.length >= BATCH) flush();
  };
  // A `Deno.Conn` is read directly: its ReadableStream adds a hop per read, and
  // messages that arrive during that hop would be merged into one reception.
  const reader = byteReader(conn);
  let reason: CloseReason = "eof";
  let lastActivity = performance.now();
  // One timer per connection checks idleness and flushes batches: cheaper than a
  // timer per read at 100,000 messages per second.
  const timer = setInterval(() => {
    flush();
    if (performance.now() - lastActivity > idleTimeoutMs) {
      reason = "idle-timeout";
      reader.cancel().catch(() => {});
    }
  }, Math.min(FLUSH_MS, Math.max(5, idleTimeoutMs / 4)));
  const onAbort = () => {
    reason = "server-closing";
    reader.cancel().catch(() => {});
  };
  context.signal.addEventListener("abort", onAbort, { once: true });
  let unterminated = false;
  try {
    const writer = conn.writable.getWriter();
    await writer.write(encodeLine(GREETING)).catch(() => {});
    writer.releaseLock();
    for (;;) {
      let chunk: { done: boolean; value?: Uint8Array };
      try {
        chunk = await reader.read();
      } catch {
        if (reason === "eof") reason = "reset";
        break;
      }
      if (chunk.done) break;
      // Timestamp where the bytes arrive: every line this read completes shares it.
      const arrived = performance.now();
      lastActivity = arrived;
      let overflow = false;
      for (const line of decoder.push(chunk.value!)) {
        if (line instanceof LineOverflow) {
          overflow = true;
          break;
        }
        record(arrived, line);
      }
      // The decoder reports an overlong line only at its newline: stop as soon as
      // the unterminated part passes the cap instead of reading megabytes more.
      if (decoder.pending > maxLine) overflow = true;
      if (overflow) {
        reason = "line-too-long";
        await refuse(
          conn,
          reader,
          `Error: message longer than ${maxLine} bytes; closing the connection`,
        );
        break;
      }
    }
    if (reason !== "line-too-long") {
      // A last line without its newline still counts as a message (received when its
      // last byte arrived); one still over the cap does not.
      const tail = decoder.flush();
      if (tail instanceof Uint8Array) {
        unterminated = true;
        record(lastActivity, tail);
      } else if (tail instanceof LineOverflow) reason = "line-too-long";
    }
  } finally {
    clearInterval(timer);
    context.signal.removeEventListener("abort", onAbort);
    flush();
    context.emit({
      k: "close",
      c,
      at: roundMs(performance.timeOrigin + performance.now()),
      reason,
      unterminated,
    });
  }
}

// After a bad message the server answers, shuts its side, and discards what the
// client still sends (up to DRAIN_BYTES or DRAIN_MS): closing with unread data
// would reset the connection and the client could lose the answer.
const DRAIN_BYTES = 64 * 1024 * 1024;
const DRAIN_MS = 2000;

async function refuse(
  conn: Duplex,
  reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> },
  message: string,
): Promise<void> {
  const writer = conn.writable.getWriter();
  await writer.write(encoder.encode(message + "\n")).catch(() => {});
  const direct = conn as Partial<Deno.Conn>;
  if (typeof direct.closeWrite === "function") {
    // Closing a Deno.Conn's writable closes the whole socket; shut only our side.
    writer.releaseLock();
    await direct.closeWrite().catch(() => {});
  } else await writer.close().catch(() => {});
  const timer = setTimeout(() => void reader.cancel().catch(() => {}), DRAIN_MS);
  try {
    let drained = 0;
    while (drained < DRAIN_BYTES) {
      const chunk = await reader.read();
      if (chunk.done) break;
      drained += chunk.value!.length;
    }
  } catch {
    // Reset or cancelled: either way the connection is done.
  } finally {
    clearTimeout(timer);
  }
}

function byteReader(
  conn: Duplex,
): { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } {
  const direct = conn as Partial<Deno.Conn>;
  if (typeof direct.read === "function") {
    const buffer = new Uint8Array(64 * 1024);
    let cancelled = false;
    return {
      async read() {
        if (cancelled) return { done: true };
        const n = await direct.read!(buffer);
        if (n === null || cancelled) return { done: true };
        return { done: false, value: buffer.subarray(0, n) };
      },
      cancel() {
        cancelled = true;
        try {
          // closeWrite rejects (BadResource) when the connection is already closed:
          // left unhandled, that rejection ended the whole process.
          (conn as Deno.Conn).closeWrite?.()?.catch(() => {});
        } catch {
          // Already shut.
        }
        try {
          conn.close();
        } catch {
          // Already closed.
        }
        return Promise.resolve();
      },
    };
  }
  const reader = conn.readable.getReader();
  return { read: () => reader.read(), cancel: () => reader.cancel() };
}

function newBatch(c: number, s: number, verbose: boolean): Extract<ReceiverEvent, { k: "data" }> {
  return { k: "data", c, s, at: [], gap: [], len: [], bad: 0, ...(verbose ? { text: [] } : {}) };
}

defineConnectionHandler<ReceiverInit>("interarrival.receiver", receiveConnection);

// ---------------------------------------------------------------------------
// Collector

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

/** One message sample. */
export interface MessageSample {
  connection: number;
  sequence: number;
  /** Epoch ms of reception. */
  receivedAt: number;
  /** ms since the previous reception on this connection; null for the first. */
  gapMs: number | null;
  bytes: number;
}

/** Hooks the collector calls as events arrive (for `--verbose`). */
export interface ReceiverHooks {
  onMessage?(text: string, remote: string): void;
  onOpen?(remote: string, where: string): void;
  onClose?(remote: string, reason: CloseReason): void;
}

interface ConnState extends ConnectionRecord {
  key: string;
  samples: MessageSample[];
}

/** Merges the events of every worker and child into per-connection records. */
export class ReceiverCollector {
  #byKey = new Map<string, ConnState>();
  #order: ConnState[] = [];
  #closed = 0;
  #waiters: { n: number; resolve: () => void }[] = [];

  constructor(readonly hooks: ReceiverHooks = {}) {}

  /** Feeds one event from `onEvent`. */
  add(raw: unknown, source: { worker: number }): void {
    const event = raw as ReceiverEvent;
    const key = `${source.worker}:${event.c}`;
    let state = this.#byKey.get(key);
    if (!state) {
      // Events of one connection arrive in order; an unseen key starts a record.
      state = {
        key,
        id: 0,
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
      };
      this.#byKey.set(key, state);
      this.#order.push(state);
    }
    if (event.k === "open") {
      state.remote = event.remote;
      state.where = event.where;
      state.acceptedAt = event.at;
      this.hooks.onOpen?.(event.remote, event.where);
    } else if (event.k === "data") {
      for (let i = 0; i < event.at.length; i++) {
        state.samples.push({
          connection: 0,
          sequence: event.s + i,
          receivedAt: event.at[i],
          gapMs: event.gap[i],
          bytes: event.len[i],
        });
        state.bytes += event.len[i];
        if (event.text) this.hooks.onMessage?.(event.text[i], state.remote);
      }
      state.messages += event.at.length;
      state.invalidUtf8 += event.bad;
    } else {
      state.closedAt = event.at;
      state.reason = event.reason;
      state.unterminated = event.unterminated;
      this.#closed++;
      this.hooks.onClose?.(state.remote, event.reason);
      this.#waiters = this.#waiters.filter((waiter) => {
        if (this.#closed >= waiter.n) waiter.resolve();
        return this.#closed < waiter.n;
      });
    }
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

  /** Connections in order of acceptance, numbered from 1, with their samples. */
  connections(): (ConnectionRecord & { samples: MessageSample[] })[] {
    const sorted = [...this.#order].sort((a, b) => a.acceptedAt - b.acceptedAt);
    return sorted.map((state, i) => {
      const id = i + 1;
      const { key: _key, samples, ...record } = state;
      return { ...record, id, samples: samples.map((s) => ({ ...s, connection: id })) };
    });
  }
}

// ---------------------------------------------------------------------------
// Summary

/** What the server reports when it stops. */
export interface ReceiverSummary {
  mode: Mode;
  perConnection: boolean;
  connections: number;
  messages: number;
  bytes: number;
  invalidUtf8: number;
  unterminated: number;
  closeReasons: Record<string, number>;
  /** Average time between connection setups (ms), the study's first figure. */
  averageConnectionInterarrivalMs: number;
  /** Average time between receptions on the same connection (ms), the study's second figure. */
  averageDataInterarrivalMs: number;
  connectionInterarrival: Summary;
  dataInterarrival: Summary;
  /** Set in sequential mode: connection times are accept times, not arrival times. */
  note: string | null;
}

/** Connection inter-arrival gaps (ms) between consecutive accepts, over every worker. */
export function connectionGaps(records: ConnectionRecord[]): number[] {
  const times = records.map((r) => r.acceptedAt).filter(Number.isFinite).sort((a, b) => a - b);
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++) gaps.push(roundMs(times[i] - times[i - 1]));
  return gaps;
}

/** Data inter-arrival gaps (ms) over every connection. */
export function dataGaps(records: { samples: MessageSample[] }[]): number[] {
  const gaps: number[] = [];
  for (const record of records) {
    for (const sample of record.samples) if (sample.gapMs !== null) gaps.push(sample.gapMs);
  }
  return gaps;
}

/** The sequential-mode caveat, printed with the summary. */
export const SEQUENTIAL_NOTE =
  "iterative mode: a connection's time is taken when it is accepted, after the previous " +
  "client left, so connection inter-arrival times are accept times, not arrival times";

/** Builds the summary from the collector's records. */
export function summarizeReceiver(
  records: (ConnectionRecord & { samples: MessageSample[] })[],
  mode: Mode,
  perConnection: boolean,
): ReceiverSummary {
  const conn = summarize(connectionGaps(records));
  const data = summarize(dataGaps(records));
  const closeReasons: Record<string, number> = {};
  for (const record of records) {
    const reason = record.reason ?? "open";
    closeReasons[reason] = (closeReasons[reason] ?? 0) + 1;
  }
  return {
    mode,
    perConnection,
    connections: records.length,
    messages: records.reduce((sum, r) => sum + r.messages, 0),
    bytes: records.reduce((sum, r) => sum + r.bytes, 0),
    invalidUtf8: records.reduce((sum, r) => sum + r.invalidUtf8, 0),
    unterminated: records.filter((r) => r.unterminated).length,
    closeReasons,
    averageConnectionInterarrivalMs: roundMs(conn.mean),
    averageDataInterarrivalMs: roundMs(data.mean),
    connectionInterarrival: conn,
    dataInterarrival: data,
    note: mode === "sequential" ? SEQUENTIAL_NOTE : null,
  };
}

// ---------------------------------------------------------------------------
// Running the server

/** Options for {@linkcode startReceiver}. */
export interface ReceiverOptions {
  hostname: string;
  port: number;
  mode: Mode;
  /** Pool size for thread and process modes. */
  workers?: number;
  /** thread/process: a worker or child per connection (the study's design). */
  perConnection?: boolean;
  verbose?: boolean;
  maxLine?: number;
  idleTimeoutMs?: number;
  /** Milliseconds open connections get when the server stops (default 1000). */
  graceMs?: number;
  /** Worker and child entry (default: the main module). */
  entry?: string | URL;
  /** Listen-queue capacity and connection bound (see `ServeOptions`). */
  backlog?: number;
  maxConnections?: number;
}

/** A running inter-arrival server. */
export interface Receiver {
  hostname: string;
  port: number;
  mode: Mode;
  collector: ReceiverCollector;
  /** Stops the server (open connections get `graceMs`) and returns everything measured. */
  stop(): Promise<ReceiverResult>;
}

/** Everything a stopped server measured. */
export interface ReceiverResult {
  summary: ReceiverSummary;
  connections: (ConnectionRecord & { samples: MessageSample[] })[];
}

/** Starts the server; resolves once it accepts connections. */
export async function startReceiver(
  options: ReceiverOptions,
  hooks: ReceiverHooks = {},
): Promise<Receiver> {
  const collector = new ReceiverCollector(hooks);
  const perConnection = options.perConnection ?? false;
  const server = await serve<ReceiverInit>({
    handler: "interarrival.receiver",
    mode: options.mode,
    hostname: options.hostname,
    port: options.port,
    workers: options.workers,
    perConnection,
    entry: options.entry,
    graceMs: options.graceMs,
    backlog: options.backlog,
    maxConnections: options.maxConnections,
    init: {
      verbose: options.verbose ?? false,
      maxLine: options.maxLine ?? DEFAULT_MAX_LINE,
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    },
    onEvent: (event, source) => collector.add(event, source),
  });
  let result: Promise<ReceiverResult> | null = null;
  return {
    hostname: server.hostname,
    port: server.port,
    mode: server.mode,
    collector,
    stop: () =>
      result ??= server.close().then(() => {
        const connections = collector.connections();
        return {
          summary: summarizeReceiver(connections, options.mode, perConnection),
          connections,
        };
      }),
  };
}

// ---------------------------------------------------------------------------
// Sample files

/** Every sample as CSV: one row per connection setup and one per message. */
export function samplesCsv(
  connections: (ConnectionRecord & { samples: MessageSample[] })[],
): string {
  const lines = ["kind,connection,sequence,remote,time_epoch_ms,interarrival_ms,bytes"];
  let previous = NaN;
  for (const record of connections) {
    const gap = Number.isNaN(previous) ? "" : roundMs(record.acceptedAt - previous).toFixed(3);
    previous = record.acceptedAt;
    lines.push(
      `connection,${record.id},0,${record.remote},${
        record.acceptedAt.toFixed(3)
      },${gap},${record.bytes}`,
    );
    for (const s of record.samples) {
      lines.push(
        `data,${s.connection},${s.sequence},${record.remote},${s.receivedAt.toFixed(3)},${
          s.gapMs === null ? "" : s.gapMs.toFixed(3)
        },${s.bytes}`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** Writes `text` to `path` through a temporary name, renamed once fully written. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(temp, text);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

/**
 * One measurement: starts a receiver on a free loopback port, runs `send` against
 * it, waits until `connections` connections have closed (at most `settleMs`), and
 * stops it, also when `send` fails. Returns what `send` returned and what the
 * server measured; the benches and `check` all measure this way.
 */
export async function measureReception<T>(
  options: Omit<ReceiverOptions, "hostname" | "port">,
  connections: number,
  send: (port: number) => Promise<T>,
  settleMs = 20_000,
): Promise<{ sent: T; received: ReceiverResult }> {
  const receiver = await startReceiver({ ...options, hostname: "127.0.0.1", port: 0 });
  let sent: T;
  let received: ReceiverResult;
  try {
    sent = await send(receiver.port);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      receiver.collector.whenClosed(connections),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new TimeoutError("the server to see every connection close", settleMs)),
          settleMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  } finally {
    received = await receiver.stop();
  }
  return { sent, received };
}
