/**
 * One sender's schedule and the two ways to run senders in a Web Worker:
 * {@linkcode runSender} (a flow alone in its worker) and
 * {@linkcode runSenderGroup} (one scheduler driving many flows: one wait and
 * one pass over the due messages for all of them, instead of a timer, a
 * promise and an event-loop trip per message per flow). Messages go out at
 * absolute deadlines (start + the sum of the drawn gaps), so timer lateness
 * never accumulates; every message due at a wake-up goes out in one write per
 * flow, stamped with the time of that write.
 *
 * @module
 */
import type { DistributionSpec } from "./distributions.ts";
import { sampler, seededRandom, workerSeed } from "./distributions.ts";
import { ALONE_SPIN_MS, waiterFor } from "./waiters.ts";
import { type Link, openTcp, openUdp } from "./links.ts";
import { sizeDrawer } from "./sizes.ts";
import { roundMs, sleep } from "../shared/clock.ts";
import { applySenderPriority, type PriorityOutcome, type SenderPriority } from "./priority.ts";
import { HdrHistogram, type HdrHistogramData } from "../shared/hdr_histogram.ts";
import {
  DEFAULT_MAX_LINE,
  FLAG_LAST,
  formatEvent,
  HEADER_SIZE,
  MAX_UDP_PAYLOAD,
  writeHeader,
} from "./protocol.ts";

/** Input of one sender task. */
export interface SenderInput {
  /** Worker number, from 1 (as in the study's messages); also the flow id. */
  worker: number;
  host: string;
  port: number;
  /** `udp`: one datagram per message, no greeting awaited (default `tcp`). */
  protocol?: "tcp" | "udp";
  /** `text`: the study's lines; `binary` (default): header and padding. */
  format?: "binary" | "text";
  /** UDP: `deno` forces Deno's datagram API instead of FFI `sendmmsg` (default `auto`). */
  udpEngine?: "auto" | "deno";
  /** TCP: `deno` forces `Deno.connect` writes instead of FFI `send()` (default `auto`). */
  tcpEngine?: "auto" | "deno";
  dist: DistributionSpec;
  /** Message sizes (bytes, binary format); default 64 bytes. */
  sizeDist?: DistributionSpec | null;
  /** Bits per second: each gap is the drawn size's time at this rate (replaces `dist`). */
  bitrate?: number | null;
  /** Inter-event intervals: the sender sends `intervals + 1` messages (unless `durationMs` ends it first). */
  intervals: number;
  /** Stop sending at this many ms after the first message. */
  durationMs?: number | null;
  /** Milliseconds to wait before the first message (multi-flow scripts). */
  startDelayMs?: number;
  /** Epoch ms the run started (the start delay counts from it, whenever this Web Worker began). */
  runStartedAt?: number;
  seed: number;
  verbose: boolean;
  connectTimeoutMs: number;
  /** Milliseconds between reading the greeting and the first message. */
  leadMs: number;
  /** Per-message records (gaps, errors, deadlines, sizes) kept; the summaries count every message. */
  keepRecords?: number;
  /** The sending thread's CPU priority (priority.ts; default `normal`). */
  priority?: SenderPriority;
}

/** Timing over every message of a sender, whatever `keepRecords` kept (JSON). */
export interface SenderTiming {
  requestedSum: number;
  requestedCount: number;
  achievedSum: number;
  achievedCount: number;
  /** Send time − deadline, microseconds. */
  errorUs: HdrHistogramData;
  errorSquaresUs: number;
}

/** What one sender measured. */
export interface SenderResult {
  worker: number;
  protocol: "tcp" | "udp";
  /** Which send path ran: `ffi` (libc) or `deno` (Deno's socket API). */
  engine: "ffi" | "deno";
  greeting: string;
  messages: number;
  bytes: number;
  /** Every message's timing, summarised. */
  timing: SenderTiming;
  /** When the last message went out, ms after the first deadline. */
  lastSendMs: number;
  /** Epoch ms of the first message's deadline. */
  firstDeadlineAt: number;
  /** Drawn gaps (ms), the first `keepRecords`. */
  requested: number[];
  /** Gaps between actual sends (ms). */
  achieved: number[];
  /** Send time minus deadline for every message (ms, ≥ 0). */
  errors: number[];
  /** Deadline of every message, ms after the first. */
  deadlines: number[];
  /** Sizes of the messages (bytes), binary format. */
  sizes: number[];
  /** Messages sent together with an earlier one because the sender fell behind. */
  coalesced: number;
  /** UDP datagrams the socket refused to send. */
  sendErrors: number;
  /** The priority asked for and what the sending thread ran at. */
  priority: PriorityOutcome;
  /** The lines sent, when verbose. */
  sent?: string[];
}

const encoder = new TextEncoder();
/** How soon a flow whose socket buffer was full offers its bytes again (ms). */
const RETRY_MS = 0.25;
/** A scheduler behind its deadlines for this long (ms) and this many passes gives up a raised priority. */
const RUNAWAY_MS = 50;
const RUNAWAY_PASSES = 20;

/** Per-message records a sender keeps by default (its summaries count every message). */
export const DEFAULT_KEEP_RECORDS = 10_000;

/** Compiles the hot path (sampler, encoding) before the clock starts. */
function warmUp(input: SenderInput, binary: boolean): void {
  const warm = sampler(input.dist, seededRandom(input.seed ^ 0x5bd1e995));
  const scratch = new DataView(new ArrayBuffer(HEADER_SIZE));
  for (let i = 0; i < 2000; i++) {
    const t = warm();
    if (binary) writeHeader(scratch, 0, 0, 64, 1, i, t);
    else encoder.encode(formatEvent(input.worker, i, t));
  }
}

/** Waits for the flow's start delay (counted from the run's start), then opens its link. */
async function openLink(input: SenderInput, signal?: AbortSignal): Promise<Link> {
  if (input.startDelayMs) {
    const startAt = (input.runStartedAt ?? performance.timeOrigin + performance.now()) +
      input.startDelayMs;
    await sleep(startAt - (performance.timeOrigin + performance.now()), signal);
  }
  return (input.protocol ?? "tcp") === "udp" ? openUdp(input) : await openTcp(input, signal);
}

/** One flow's schedule: its deadlines, the messages due, and what its sends achieved. */
class FlowSchedule {
  readonly binary: boolean;
  done = false;
  /** The next message's deadline (performance.now() ms). */
  deadline: number;
  /** A send still in progress (the socket buffer was full): the flow waits for it. */
  busy: Promise<void> | null = null;
  #draw: () => number;
  #drawSize: () => number;
  #bitsPerMs: number;
  #total: number;
  #durationMs: number;
  #keep: number;
  #start = Infinity;
  #offset = 0;
  #event = 0;
  #nextSize: number;
  #buffer = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buffer.buffer);
  #bytes: Uint8Array | null = null;
  /** Deadlines of the messages of the batch being sent (a plain array reallocated per batch). */
  #due = new Float64Array(64);
  #errorUs = new HdrHistogram("us");
  #errorSquaresUs = 0;
  #requestedSum = 0;
  #requestedCount = 0;
  #achievedSum = 0;
  #achievedCount = 0;
  #previousSend = NaN;
  #lastSend = NaN;
  #coalesced = 0;
  #bytesSent = 0;
  #requested: number[] = [];
  #achieved: number[] = [];
  #errors: number[] = [];
  #deadlines: number[] = [];
  #sizes: number[] = [];
  #sent: string[] | undefined;
  #pending: Uint8Array | null = null;
  #pendingDue = new Float64Array(0);
  #pendingBytes = 0;

  constructor(readonly input: SenderInput, readonly link: Link) {
    this.binary = (input.format ?? "binary") === "binary";
    const maxSize = (input.protocol ?? "tcp") === "udp" ? MAX_UDP_PAYLOAD : DEFAULT_MAX_LINE;
    warmUp(input, this.binary);
    const seed = workerSeed(input.seed, input.worker);
    this.#draw = sampler(input.dist, seededRandom(seed));
    this.#drawSize = sizeDrawer(input.sizeDist, seed, maxSize);
    this.#bitsPerMs = input.bitrate ? input.bitrate / 1000 : 0;
    this.#total = input.intervals + 1;
    this.#durationMs = input.durationMs ?? Infinity;
    this.#keep = input.keepRecords ?? DEFAULT_KEEP_RECORDS;
    this.#sent = input.verbose ? [] : undefined;
    this.#nextSize = this.#drawSize();
    this.#start = this.deadline = Infinity;
  }

  /** Starts the schedule: the first message is due at `start` (performance.now() ms). */
  begin(start: number): this {
    this.#start = this.deadline = start;
    return this;
  }

  /**
   * Sends every message due by now in one write: a flow that fell behind
   * catches up at once instead of drifting. The send time is when the write is
   * issued (an FFI send is synchronous; Deno makes its write syscall at once).
   */
  fire(): Promise<void> | null {
    if (this.#pending !== null && !this.#flushPending()) return null;
    let text = "";
    let used = 0;
    // No objects per message: at 100,000 messages/s they meant a scavenge every
    // few dozen ms in each sender, each waiting on V8's helper threads on a busy
    // machine. (Sizes are listed only for the links that need them: UDP, Deno's.)
    let count = 0;
    const dueSizes: number[] | null = this.link.trySend ? null : [];
    const keep = this.#keep, sent = this.#sent;
    // One clock read for the batch (each read allocates): messages falling due
    // while this pass runs go out in the next one.
    const now = performance.now();
    const timestamp = performance.timeOrigin + now;
    while (!this.done && this.deadline <= now) {
      const event = ++this.#event;
      const size = this.binary ? this.#nextSize : 0;
      // The gap after this message decides whether it is the last one.
      const gap = this.#bitsPerMs > 0 ? (size * 8) / this.#bitsPerMs : this.#draw();
      // Offsets from the start are summed apart from it, so that float rounding in
      // start + offset cannot add or drop a message at the duration's end.
      this.done = event >= this.#total || this.#offset + gap >= this.#durationMs;
      if (this.binary) {
        if (used + size > this.#buffer.length) {
          const grown = new Uint8Array(Math.max(this.#buffer.length * 2, used + size));
          grown.set(this.#buffer.subarray(0, used));
          [this.#buffer, this.#view, this.#bytes] = [grown, new DataView(grown.buffer), null];
        }
        const flags = this.done ? FLAG_LAST : 0;
        writeHeader(this.#view, used, flags, size, this.input.worker, event - 1, timestamp * 1000);
        used += size;
        dueSizes?.push(size);
        if (this.#sizes.length < keep) this.#sizes.push(size);
        if (sent && sent.length < keep) {
          sent.push(`flow ${this.input.worker} sequence ${event - 1}, ${size} bytes`);
        }
        this.#nextSize = this.#drawSize();
      } else {
        const line = formatEvent(this.input.worker, event, timestamp);
        text += line + "\n";
        if (sent && sent.length < keep) sent.push(line);
      }
      if (count === this.#due.length) {
        const grown = new Float64Array(count * 2);
        grown.set(this.#due);
        this.#due = grown;
      }
      this.#due[count++] = this.deadline;
      if (!this.done) {
        this.#requestedSum += gap;
        this.#requestedCount++;
        if (this.#requested.length < keep) this.#requested.push(roundMs(gap));
        this.#offset += gap;
        this.deadline = this.#start + this.#offset;
      }
    }
    if (count === 0) return null;
    const bytes = this.binary ? this.#batch(used) : encoder.encode(text);
    const sentAt = performance.now();
    if (this.link.trySend) {
      const n = this.link.trySend(bytes);
      if (n === bytes.length) this.#record(this.#due, count, sentAt, bytes.length);
      else {
        [this.#pending, this.#pendingDue, this.#pendingBytes] = [
          bytes.slice(n),
          this.#due.slice(0, count),
          n,
        ];
      }
      return null;
    }
    const sending = this.link.send(bytes, this.binary ? dueSizes! : [bytes.length]);
    this.#record(this.#due, count, sentAt, bytes.length);
    if (sending) {
      this.busy = sending.then(() => {
        this.busy = null;
      });
    }
    return this.busy;
  }

  /** The first `used` bytes of the send buffer (the same view while the batch size repeats). */
  #batch(used: number): Uint8Array {
    if (this.#bytes === null || this.#bytes.length !== used) {
      this.#bytes = this.#buffer.subarray(0, used);
    }
    return this.#bytes;
  }

  /** Whether bytes of a batch still wait for room in the socket buffer (synchronous links). */
  get pending(): boolean {
    return this.#pending !== null;
  }

  /**
   * Offers the rest of a batch the kernel did not take (its socket buffer was
   * full). Its messages count as sent when their last byte is taken: a message
   * that waited for room was late by that wait. The messages due meanwhile wait
   * behind it (one stream, in order), and their errors grow with the wait.
   */
  #flushPending(): boolean {
    const pending = this.#pending!;
    const sentAt = performance.now();
    const n = this.link.trySend!(pending);
    this.#pendingBytes += n;
    if (n < pending.length) {
      this.#pending = pending.subarray(n);
      return false;
    }
    this.#record(this.#pendingDue, this.#pendingDue.length, sentAt, this.#pendingBytes);
    [this.#pending, this.#pendingDue, this.#pendingBytes] = [null, new Float64Array(0), 0];
    return true;
  }

  /** Counts the first `count` messages of `due` (their deadlines) as sent at `sentAt`. */
  #record(due: Float64Array, count: number, sentAt: number, bytes: number): void {
    this.#coalesced += count - 1;
    this.#bytesSent += bytes;
    for (let i = 0; i < count; i++) {
      const d = due[i];
      const errorMicro = Math.round((sentAt - d) * 1000);
      this.#errorUs.record(errorMicro);
      this.#errorSquaresUs += errorMicro * errorMicro;
      const previous = this.#previousSend;
      if (!Number.isNaN(previous)) {
        this.#achievedSum += sentAt - previous;
        this.#achievedCount++;
      }
      if (this.#errors.length < this.#keep) {
        this.#errors.push(roundMs(sentAt - d));
        this.#deadlines.push(roundMs(d - this.#start));
        if (!Number.isNaN(previous)) this.#achieved.push(roundMs(sentAt - previous));
      }
      this.#previousSend = sentAt;
    }
    this.#lastSend = sentAt;
  }

  result(priority: PriorityOutcome): SenderResult {
    return {
      worker: this.input.worker,
      protocol: this.input.protocol ?? "tcp",
      engine: this.link.engine,
      greeting: this.link.greeting,
      messages: this.#event,
      timing: {
        requestedSum: this.#requestedSum,
        requestedCount: this.#requestedCount,
        achievedSum: this.#achievedSum,
        achievedCount: this.#achievedCount,
        errorUs: this.#errorUs.toJSON(),
        errorSquaresUs: this.#errorSquaresUs,
      },
      lastSendMs: roundMs(this.#lastSend - this.#start),
      firstDeadlineAt: roundMs(performance.timeOrigin + this.#start),
      bytes: this.#bytesSent,
      requested: this.#requested,
      achieved: this.#achieved,
      errors: this.#errors,
      deadlines: this.#deadlines,
      sizes: this.#sizes,
      coalesced: this.#coalesced,
      sendErrors: this.link.sendErrors,
      priority,
      ...(this.#sent ? { sent: this.#sent } : {}),
    };
  }
}

/** Runs one sender alone in its Web Worker: connect (read the greeting), send on schedule, close. */
export function runSender(input: SenderInput, signal?: AbortSignal): Promise<SenderResult> {
  return runSenderGroup([input], signal).then((results) => results[0]);
}

/**
 * Runs several senders from one scheduler: each opens its link (after its start
 * delay) and joins; every wake-up sends what is due on every flow, then the
 * scheduler sleeps until the earliest next deadline. The scheduler owns its Web
 * Worker, so it may block the thread while it waits.
 */
export async function runSenderGroup(
  inputs: SenderInput[],
  signal?: AbortSignal,
): Promise<SenderResult[]> {
  const flows: FlowSchedule[] = [];
  const links: Link[] = [];
  const opening = new Set<Promise<void>>();
  let failure: { error: unknown } | null = null;
  const fail = (error: unknown) => {
    failure ??= { error };
  };
  // Flows without a start delay start together once all are open, so that flows of
  // the same rate share their deadlines (one wake-up sends for all of them).
  const together: FlowSchedule[] = [];
  const startTogether = inputs.filter((input) => !input.startDelayMs).length;
  for (const input of inputs) {
    const join: Promise<void> = openLink(input, signal).then((link) => {
      links.push(link);
      const flow = new FlowSchedule(input, link);
      if (input.startDelayMs) {
        flows.push(flow.begin(performance.now() + input.leadMs));
        return;
      }
      together.push(flow);
      if (together.length < startTogether) return;
      const start = performance.now() + Math.max(...together.map((f) => f.input.leadMs));
      for (const f of together) flows.push(f.begin(start));
    }, fail).finally(() => opening.delete(join));
    opening.add(join);
  }
  // A flow alone, or flows whose sends are synchronous (FFI), may block the thread
  // while they wait; flows on Deno's async writes share a waiter that lets them complete.
  let waiter: ReturnType<typeof waiterFor> | null = null, blocking = false;
  const priority = applySenderPriority(inputs[0]?.priority ?? "normal");
  let caughtUpAt = performance.now(), passesBehind = 0;
  try {
    while (failure === null) {
      signal?.throwIfAborted();
      let next = Infinity;
      const busy: Promise<void>[] = [];
      for (const flow of flows) {
        if (flow.busy) busy.push(flow.busy);
        else if (flow.pending) next = Math.min(next, performance.now() + RETRY_MS);
        else if (!flow.done) next = Math.min(next, flow.deadline);
      }
      if (next === Infinity) {
        if (opening.size === 0 && busy.length === 0) break;
        // Nothing to send now: wait for a link to open or a full socket to drain.
        await Promise.race([...opening, ...busy]);
        continue;
      }
      const now = performance.now();
      // (One long stall is caught up in one pass: only many passes in a row behind count.)
      if (next > now) [caughtUpAt, passesBehind] = [now, 0];
      else if (
        ++passesBehind > RUNAWAY_PASSES && now - caughtUpAt > RUNAWAY_MS &&
        !priority.outcome.dropped
      ) {
        // Behind for that long, the raised priority buys no punctuality, and a
        // real-time thread that never waits would starve the receiver: give it back.
        priority.restore();
        if (priority.outcome.requested !== "normal") priority.outcome.dropped = true;
      }
      // (A flow joining late on Deno's writes turns a blocking waiter into a shared one.)
      const mayBlock = inputs.length === 1 || links.every((l) => l.engine === "ffi");
      if (waiter === null || blocking !== mayBlock) {
        waiter?.close();
        [waiter, blocking] = [
          waiterFor(mayBlock, inputs.length === 1 ? ALONE_SPIN_MS : 0),
          mayBlock,
        ];
      }
      await waiter.until(next, opening.size === 0);
      for (const flow of flows) {
        if ((flow.done && !flow.pending) || flow.busy) continue;
        flow.fire()?.catch(fail);
      }
    }
    if (failure !== null) throw (failure as { error: unknown }).error;
    await Promise.all(flows.map((flow) => flow.busy));
    const order = new Map(inputs.map((input, i) => [input, i]));
    return flows.sort((a, b) => order.get(a.input)! - order.get(b.input)!).map((f) =>
      f.result({ ...priority.outcome })
    );
  } finally {
    priority.restore();
    waiter?.close();
    await Promise.allSettled([...opening]);
    for (const link of links) link.close();
  }
}
