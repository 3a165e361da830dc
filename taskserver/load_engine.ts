/**
 * The load generator's engine: one isolate's share of a run (see
 * `load_plan.ts`). It opens its connections, sends on a closed or open loop,
 * matches answers to requests in order, and records into HDR histograms:
 *
 * - `latency`: from when a request was due (open loop: its scheduled time,
 *   wrk2's rule against coordinated omission; closed loop: when it was sent);
 * - `uncorrected`: from when it was actually sent;
 * - `lag`: how late the generator itself sent, beyond both the schedule and the
 *   moment the connection had a free slot (a saturated generator shows here,
 *   not as a slow server);
 * - `connect`: connection set-up time.
 *
 * Also a per-second timeline (sent, answered, errors, latency histogram). All
 * values are microseconds. The engine never prints.
 *
 * Registered as the service `taskserver.load` so a run can spread over Web
 * Workers or child processes through `shared/runtime.ts`.
 *
 * @module
 */
import { HdrHistogram, type HdrHistogramData } from "../shared/hdr_histogram.ts";
import { defineService } from "../shared/runtime.ts";
import { errorMessage } from "../shared/errors.ts";
import {
  expectedReply,
  firstDueAtOrAfter,
  type LoadPlan,
  openLoopCount,
  requestText,
  scheduledAt,
} from "./load_plan.ts";

/** One second of the timeline (second 0 starts when measuring starts). */
export interface TimelineSecond {
  second: number;
  sent: number;
  answered: number;
  errors: number;
  latency: HdrHistogramData;
}

/** What one generator (or a merge of several) measured; JSON-serialisable. */
export interface ShareResult {
  /** Generators merged into this result (1 for one isolate). */
  generators: number;
  connections: number;
  /** Epoch milliseconds when measuring started (after the warmup). */
  startedAt: number;
  /** Epoch milliseconds of the last measured answer or failure (or the stop). */
  endedAt: number;
  /** Measured requests sent. */
  requests: number;
  /** Answers received (including `Error:` answers). */
  answered: number;
  /** Answers starting with `Error:` (or, with verify, differing from ours). */
  errorReplies: number;
  /** Requests sent that got no answer: connection closed or reset, or timed out. */
  failed: number;
  /** Connection attempts that failed. */
  connectErrors: number;
  /** Requests in flight when the run was stopped (Ctrl-C). */
  unanswered: number;
  /** True when the run was stopped before its end. */
  interrupted: boolean;
  /** The first connection or server error seen, if any (what went wrong). */
  firstError: string | null;
  latency: HdrHistogramData;
  uncorrected: HdrHistogramData;
  lag: HdrHistogramData;
  connect: HdrHistogramData;
  timeline: TimelineSecond[];
}

/** A live view of a running generator (for progress lines). */
export interface LoadSnapshot {
  sent: number;
  answered: number;
  errors: number;
  /** Corrected p99 so far, in microseconds (NaN before the first answer). */
  p99Us: number;
}

const ERROR_PREFIX = [69, 114, 114, 111, 114, 58]; // "Error:"
const NEWLINE = 10;
/** Longest answer taken; a longer one closes the connection (memory stays bounded). */
const MAX_REPLY = 1 << 20;
/** Connection attempts in flight per isolate (more stall `Deno.connect` above ~128). */
const CONNECTS_IN_FLIGHT = 100;
const RECONNECT_MS = 200;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function epoch(): number {
  return performance.timeOrigin + performance.now();
}

interface Second {
  sent: number;
  answered: number;
  errors: number;
  latency: HdrHistogram;
}

/** One isolate's share of a load run. */
export class LoadGenerator {
  readonly plan: LoadPlan;
  readonly latency = new HdrHistogram("us");
  readonly uncorrected = new HdrHistogram("us");
  readonly lag = new HdrHistogram("us");
  readonly connect = new HdrHistogram("us");
  /** Called with every measured corrected latency (µs): tests compare merges with it. */
  onSample?: (us: number) => void;
  sent = 0;
  answered = 0;
  errorReplies = 0;
  failed = 0;
  connectErrors = 0;
  unanswered = 0;
  firstError: string | null = null;
  stopped = false;
  /** performance.now() of the start, of measuring, and of the end of sending (set by run). */
  t0 = 0;
  measureStart = 0;
  measureEnd = Infinity;
  /** Closed loop with a request count: measured requests left to send. */
  tickets: number;
  lastEventAt = 0;
  #seconds = new Map<number, Second>();
  #lastIndex = -1;
  #last: Second | undefined;
  #connectSlots = CONNECTS_IN_FLIGHT;
  #connectQueue: (() => void)[] = [];
  #finish: (() => void) | undefined;
  #open = 0;
  #conns: LoadConnection[];
  #prepared: Promise<void> | undefined;

  constructor(plan: LoadPlan) {
    this.plan = plan;
    this.tickets = plan.rate === null && plan.requests !== null ? plan.requests : Infinity;
    this.#conns = plan.connectionIds.map((id) => new LoadConnection(this, id));
  }

  /**
   * Opens the persistent connections before the start, so the schedule does not
   * charge the server for our own set-up. (With `requestsPerConnection`, the
   * study's one-request clients, connecting is part of what is measured.)
   */
  prepare(): Promise<void> {
    this.#prepared ??= this.plan.requestsPerConnection === null
      ? Promise.all(this.#conns.map((c) => c.connectOnce())).then(() => {})
      : Promise.resolve();
    return this.#prepared;
  }

  /**
   * Runs the share to its end (or {@linkcode stop}); resolves with what was
   * measured. Sending starts at `startAt` (epoch ms; default: the plan's, or now
   * once prepared if that has passed).
   */
  async run(startAt = this.plan.startAt): Promise<ShareResult> {
    await this.prepare();
    this.t0 = Math.max(startAt - performance.timeOrigin, performance.now());
    this.measureStart = this.t0 + this.plan.warmupMs;
    this.measureEnd = this.plan.durationMs === null
      ? Infinity
      : this.measureStart + this.plan.durationMs;
    const wait = this.t0 - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const finished = new Promise<void>((resolve) => (this.#finish = resolve));
    const conns = this.#conns;
    this.#open = conns.length;
    const sweep = setInterval(() => {
      const now = performance.now();
      for (const c of conns) c.checkTimeout(now);
    }, 100);
    try {
      if (conns.length > 0 && !this.stopped) {
        for (const c of conns) c.start();
        await finished;
      }
    } finally {
      clearInterval(sweep);
      for (const c of conns) c.close();
    }
    return this.result();
  }

  /** Stops at once: requests in flight are counted as unanswered. */
  stop(): void {
    this.stopped = true;
    this.#finish?.();
  }

  /** Counters and p99 so far. */
  snapshot(): LoadSnapshot {
    return {
      sent: this.sent,
      answered: this.answered,
      errors: this.errorReplies + this.failed + this.connectErrors,
      p99Us: this.latency.percentile(99),
    };
  }

  /** @internal a connection is done for good. */
  connectionDone(): void {
    if (--this.#open === 0) this.#finish?.();
  }

  /** @internal waits for a connect slot (at most {@linkcode CONNECTS_IN_FLIGHT} in flight). */
  async acquireConnect(): Promise<void> {
    if (this.#connectSlots > 0) {
      this.#connectSlots--;
      return;
    }
    await new Promise<void>((resolve) => this.#connectQueue.push(resolve));
  }

  /** @internal */
  releaseConnect(): void {
    const next = this.#connectQueue.shift();
    if (next) next();
    else this.#connectSlots++;
  }

  /** @internal the timeline second of a moment. */
  second(now: number): Second {
    const index = Math.max(0, Math.floor((now - this.measureStart) / 1000));
    if (index === this.#lastIndex) return this.#last!;
    let s = this.#seconds.get(index);
    if (!s) {
      s = { sent: 0, answered: 0, errors: 0, latency: new HdrHistogram("us") };
      this.#seconds.set(index, s);
    }
    this.#lastIndex = index;
    this.#last = s;
    return s;
  }

  /** @internal */
  noteError(message: string): void {
    this.firstError ??= message;
  }

  /** What was measured, as JSON. */
  result(): ShareResult {
    const timeline = [...this.#seconds.entries()].sort((a, b) => a[0] - b[0]).map((
      [second, s],
    ) => ({
      second,
      sent: s.sent,
      answered: s.answered,
      errors: s.errors,
      latency: s.latency.toJSON(),
    }));
    const end = this.lastEventAt > 0 ? this.lastEventAt : performance.now();
    return {
      generators: 1,
      connections: this.plan.connectionIds.length,
      startedAt: performance.timeOrigin + this.measureStart,
      endedAt: performance.timeOrigin + Math.max(end, this.measureStart),
      requests: this.sent,
      answered: this.answered,
      errorReplies: this.errorReplies,
      failed: this.failed,
      connectErrors: this.connectErrors,
      unanswered: this.unanswered,
      interrupted: this.stopped,
      firstError: this.firstError,
      latency: this.latency.toJSON(),
      uncorrected: this.uncorrected.toJSON(),
      lag: this.lag.toJSON(),
      connect: this.connect.toJSON(),
      timeline,
    };
  }
}

/** One connection of a share: its schedule, its requests in flight, its answers. */
class LoadConnection {
  readonly gen: LoadGenerator;
  readonly id: number;
  readonly open: boolean;
  readonly pipeline: number;
  conn: Deno.TcpConn | null = null;
  /** Next request number on this connection. */
  n = 0;
  /** Open loop: first measured request number, and the end (exclusive). */
  readonly firstMeasured: number;
  readonly endN: number;
  /** Requests sent over all its connections (for requestsPerConnection). */
  sentHere = 0;
  // Requests in flight, oldest first, in rings of `pipeline` slots.
  readonly due: Float64Array;
  readonly sentAt: Float64Array;
  readonly measured: Uint8Array;
  readonly expect: (string | null)[];
  head = 0;
  size = 0;
  slotFreeAt = 0;
  timer: ReturnType<typeof setTimeout> | undefined;
  writing: Promise<void> = Promise.resolve();
  // The answer being read: its first bytes (error check) or all of it (verify).
  partial: Uint8Array[] = [];
  partialLength = 0;
  done = false;
  connectFailures = 0;

  constructor(gen: LoadGenerator, id: number) {
    this.gen = gen;
    this.id = id;
    const plan = gen.plan;
    this.open = plan.rate !== null;
    this.pipeline = plan.framing === "raw" ? 1 : plan.pipeline;
    this.due = new Float64Array(this.pipeline);
    this.sentAt = new Float64Array(this.pipeline);
    this.measured = new Uint8Array(this.pipeline);
    this.expect = plan.verify ? new Array(this.pipeline).fill(null) : [];
    if (this.open) {
      this.firstMeasured = firstDueAtOrAfter(plan.warmupMs, id, plan.connections, plan.rate!);
      this.endN = plan.requests === null ? Infinity : this.firstMeasured +
        openLoopCount(plan.requests, plan.warmupMs, id, plan.connections, plan.rate!);
    } else {
      this.firstMeasured = 0;
      this.endN = Infinity;
    }
  }

  start(): void {
    void this.loop();
  }

  /** True while this connection has requests left to send (now or later). */
  moreToSend(now: number): boolean {
    const plan = this.gen.plan;
    if (this.gen.stopped) return false;
    if (plan.requestsPerConnection !== null && this.sentHere >= plan.requestsPerConnection) {
      return false;
    }
    if (this.open) {
      if (this.n >= this.endN) return false;
      return this.gen.t0 + scheduledAt(this.n, this.id, plan.connections, plan.rate!) <
        this.gen.measureEnd;
    }
    if (now >= this.gen.measureEnd) return false;
    return !(now >= this.gen.measureStart && this.gen.tickets <= 0);
  }

  /** One connection attempt; true when connected. */
  async connectOnce(): Promise<boolean> {
    const gen = this.gen;
    const plan = gen.plan;
    await gen.acquireConnect();
    const began = performance.now();
    let conn: Deno.TcpConn | null = null;
    try {
      if (gen.stopped) return false;
      conn = await withTimeout(
        Deno.connect({ hostname: plan.host, port: plan.port }),
        plan.timeoutMs,
        `no connection within ${plan.timeoutMs} ms`,
      );
      conn.setNoDelay(true);
    } catch (error) {
      gen.connectErrors++;
      gen.noteError(`Cannot connect to ${plan.host}:${plan.port}: ${errorMessage(error)}`);
      this.connectFailures++;
      return false;
    } finally {
      gen.releaseConnect();
    }
    if (gen.stopped) {
      conn.close();
      return false;
    }
    this.connectFailures = 0;
    gen.connect.record((performance.now() - began) * 1000);
    this.conn = conn;
    return true;
  }

  /** Connects (again) while there is work, sends and reads. */
  async loop(): Promise<void> {
    const gen = this.gen;
    while (!this.done && !gen.stopped) {
      if (this.conn === null && !(await this.connectOnce())) {
        // A run bounded by time retries until its end; one bounded by count gives up.
        if (gen.stopped || (gen.measureEnd === Infinity && this.connectFailures >= 3)) break;
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
        if (!this.moreToSend(performance.now())) break;
        continue;
      }
      const conn = this.conn!;
      this.pump(performance.now());
      const reason = await this.readLoop(conn);
      if (this.done) break;
      this.fail(reason);
      if (!this.moreToSend(performance.now())) break;
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
    this.finish();
  }

  /** Reads answers until the connection ends; returns why it ended. */
  async readLoop(conn: Deno.TcpConn): Promise<string> {
    const buffer = new Uint8Array(64 * 1024);
    const raw = this.gen.plan.framing === "raw";
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        return this.done ? "done" : `connection failed: ${errorMessage(error)}`;
      }
      if (this.done) return "done";
      if (n === null) return "the server closed the connection";
      const now = performance.now();
      const chunk = buffer.subarray(0, n);
      if (raw) {
        // The study's framing: whatever one read returns is the answer.
        this.partial.push(chunk);
        this.complete(now, this.partialIsError());
      } else {
        let from = 0;
        const verify = this.gen.plan.verify;
        for (;;) {
          const nl = chunk.indexOf(NEWLINE, from);
          if (nl === -1) break;
          if (this.partialLength === 0 && !verify) {
            // The usual case, a whole answer in this chunk: checked in place.
            this.complete(now, startsWithError(chunk, from, nl));
          } else {
            this.keep(chunk.subarray(from, nl));
            this.complete(now, this.partialIsError());
          }
          from = nl + 1;
        }
        if (from < chunk.length) {
          this.keep(chunk.subarray(from));
          if (this.partialLength > MAX_REPLY) {
            return `an answer longer than ${MAX_REPLY} bytes`;
          }
        }
      }
      if (this.size === 0 && !this.moreToSend(now)) {
        this.finish();
        return "done";
      }
      this.pump(now);
    }
  }

  /** Keeps what the answer check needs of a piece of the current answer. */
  keep(piece: Uint8Array): void {
    if (this.gen.plan.verify || this.partialLength < ERROR_PREFIX.length) {
      this.partial.push(this.gen.plan.verify ? piece.slice() : piece.slice(0, ERROR_PREFIX.length));
    }
    this.partialLength += piece.length;
  }

  /** Whether the answer gathered in `partial` is an error (or, with verify, not ours). */
  partialIsError(): boolean {
    const whole = concat(this.partial);
    if (this.gen.plan.verify) return decoder.decode(whole) !== this.expect[this.head];
    return startsWithError(whole, 0, whole.length);
  }

  /** An answer is complete: match it with the oldest request. */
  complete(now: number, isError: boolean): void {
    const gen = this.gen;
    this.partial = [];
    this.partialLength = 0;
    if (this.size === 0) {
      // An answer to nothing: the server and we disagree on framing.
      gen.errorReplies++;
      gen.noteError("an answer arrived with no request in flight");
      return;
    }
    const slot = this.head;
    if (this.size === this.pipeline) this.slotFreeAt = now;
    this.head = (this.head + 1) % this.pipeline;
    this.size--;
    if (this.measured[slot] === 0) return;
    const us = (now - this.due[slot]) * 1000;
    gen.answered++;
    gen.latency.record(us);
    gen.uncorrected.record((now - this.sentAt[slot]) * 1000);
    gen.onSample?.(us);
    gen.lastEventAt = now;
    const second = gen.second(now);
    second.answered++;
    second.latency.record(us);
    if (isError) {
      gen.errorReplies++;
      second.errors++;
    }
  }

  /** Sends what is due and fits the pipeline; arms a timer for the next one. */
  pump(now: number): void {
    const gen = this.gen;
    const plan = gen.plan;
    if (this.conn === null || this.done || gen.stopped) return;
    let out = "";
    const newline = plan.framing === "line" ? "\n" : "";
    while (this.size < this.pipeline && this.moreToSend(now)) {
      let due: number;
      let measured: boolean;
      if (this.open) {
        due = gen.t0 + scheduledAt(this.n, this.id, plan.connections, plan.rate!);
        if (due > now) {
          this.arm(due - now);
          break;
        }
        measured = this.n >= this.firstMeasured;
      } else {
        due = now;
        measured = now >= gen.measureStart;
        if (measured) gen.tickets--;
      }
      const text = requestText(plan, this.n, this.id);
      out += text + newline;
      const slot = (this.head + this.size) % this.pipeline;
      this.due[slot] = due;
      this.sentAt[slot] = now;
      this.measured[slot] = measured ? 1 : 0;
      if (plan.verify) this.expect[slot] = expectedReply(plan, text);
      this.size++;
      this.n++;
      this.sentHere++;
      if (measured) {
        gen.sent++;
        gen.lag.record((now - Math.max(due, this.slotFreeAt)) * 1000);
        gen.second(now).sent++;
      }
    }
    if (out !== "") {
      const conn = this.conn;
      const bytes = encoder.encode(out);
      this.writing = this.writing.then(() => writeAll(conn, bytes)).catch(() => {
        // The read side sees the failure and counts it.
      });
    } else if (this.size === 0 && !this.moreToSend(now)) {
      this.finish();
    }
  }

  arm(ms: number): void {
    if (this.timer !== undefined) return;
    // Timers run in whole milliseconds: wake at the due time, never before it.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump(performance.now());
    }, Math.max(0, Math.floor(ms)));
  }

  /** The oldest request waited too long: the connection is failed. */
  checkTimeout(now: number): void {
    if (this.size > 0 && this.conn && now - this.sentAt[this.head] > this.gen.plan.timeoutMs) {
      this.gen.noteError(`no answer within ${this.gen.plan.timeoutMs} ms`);
      const conn = this.conn;
      this.conn = null;
      try {
        conn.close(); // ends readLoop, which fails the requests in flight
      } catch {
        // Closed.
      }
    }
  }

  /** The connection broke: its requests in flight failed. */
  fail(reason: string): void {
    const gen = this.gen;
    const now = performance.now();
    for (let i = 0; i < this.size; i++) {
      const slot = (this.head + i) % this.pipeline;
      if (this.measured[slot] === 1) {
        gen.failed++;
        gen.second(now).errors++;
        gen.lastEventAt = now;
      }
    }
    if (this.size > 0) gen.noteError(reason);
    this.size = 0;
    this.partial = [];
    this.partialLength = 0;
    this.closeSocket();
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.closeSocket();
    this.gen.connectionDone();
  }

  /** The run ended: count what is still in flight as unanswered. */
  close(): void {
    if (this.gen.stopped) {
      for (let i = 0; i < this.size; i++) {
        if (this.measured[(this.head + i) % this.pipeline] === 1) this.gen.unanswered++;
      }
      this.size = 0;
    }
    this.done = true;
    clearTimeout(this.timer);
    this.closeSocket();
  }

  closeSocket(): void {
    const conn = this.conn;
    this.conn = null;
    try {
      conn?.close();
    } catch {
      // Closed.
    }
  }
}

function startsWithError(bytes: Uint8Array, from: number, end: number): boolean {
  if (end - from < ERROR_PREFIX.length) return false;
  for (let i = 0; i < ERROR_PREFIX.length; i++) {
    if (bytes[from + i] !== ERROR_PREFIX[i]) return false;
  }
  return true;
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

function concat(pieces: Uint8Array[]): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(pieces.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => {
        // A connection that arrives after the timeout is closed, not leaked.
        promise.then((c) => (c as { close?: () => void }).close?.(), () => {});
        reject(new Error(message));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Message a generator worker sends while it runs. */
export interface LoadProgressMessage {
  progress: LoadSnapshot;
}

/**
 * The generator as a service: `init` is the share's plan; it opens its
 * connections, sends `{ ready: true }`, waits for `{ startAt }` (so all workers
 * start together once all are connected), sends a
 * {@linkcode LoadProgressMessage} every 500 ms, stops on `{ stop: true }`, and
 * returns its {@linkcode ShareResult}.
 */
defineService("taskserver.load", async (channel, init) => {
  const gen = new LoadGenerator(init as LoadPlan);
  let started: (startAt: number | null) => void;
  const go = new Promise<number | null>((resolve) => (started = resolve));
  channel.listen((message) => {
    const data = message.data as { stop?: boolean; startAt?: number };
    if (data?.stop) {
      gen.stop();
      started(null);
    } else if (typeof data?.startAt === "number") started(data.startAt);
  });
  await gen.prepare();
  channel.send({ ready: true });
  const startAt = await go;
  if (startAt === null) return gen.result();
  const ticker = setInterval(() => channel.send({ progress: gen.snapshot() }), 500);
  try {
    return await gen.run(startAt);
  } finally {
    clearInterval(ticker);
  }
});

/** Epoch milliseconds now (the clock plans' `startAt` uses). */
export { epoch as loadEpoch };
