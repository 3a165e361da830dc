/**
 * One connection of a load generator's share (see `load_engine.ts`): its
 * schedule, its requests in flight (a ring of `pipeline` slots, answers matched
 * in order), reconnects, timeouts, and what it records into the generator's
 * histograms and timeline.
 *
 * @module
 */
import { concatAll } from "../shared/codec.ts";
import { errorMessage } from "../shared/errors.ts";
import {
  expectedReply,
  firstDueAtOrAfter,
  openLoopCount,
  requestText,
  scheduledAt,
} from "./load_plan.ts";
import type { LoadGenerator } from "./load_engine.ts";
import { BufferPool } from "./buffer_pool.ts";

const ERROR_PREFIX = [69, 114, 114, 111, 114, 58]; // "Error:"
/** The end of an answer. */
export const NEWLINE = 10;
/** Longest answer taken; a longer one closes the connection (memory stays bounded). */
export const MAX_REPLY = 1 << 20;
/** Pause before a connection that failed is opened again. */
export const RECONNECT_MS = 200;

// Read buffers from shared slabs: a buffer of its own per connection cost 34 µs of
// CPU each (see buffer_pool.ts), the bulk of opening 10,000 one-request clients.
const smallBuffers = new BufferPool(2048);
const largeBuffers = new BufferPool(64 * 1024, 16);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One connection of a share: its schedule, its requests in flight, its answers. */
export class LoadConnection {
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
  writesPending = 0;
  // The answer being read: its first bytes (error check) or all of it (verify).
  partial: Uint8Array[] = [];
  partialLength = 0;
  done = false;
  connectFailures = 0;
  /** performance.now() when the connect in flight began (-1: none), and how to give up on it. */
  connectingSince = -1;
  connectTimedOut: ((error: Error) => void) | undefined;

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
      // Timed out by the generator's sweep (checkTimeout), not a timer per connect.
      this.connectingSince = began;
      const connecting = Deno.connect({ hostname: plan.host, port: plan.port });
      conn = await Promise.race([
        connecting,
        new Promise<never>((_, reject) => {
          this.connectTimedOut = (error) => {
            // A connection that arrives after the timeout is closed, not leaked.
            connecting.then((late) => late.close(), () => {});
            reject(error);
          };
        }),
      ]);
      // One request per connection is one write: Nagle never holds it back.
      if (plan.requestsPerConnection !== 1) conn.setNoDelay(true);
    } catch (error) {
      gen.connectErrors++;
      gen.noteError(`Cannot connect to ${plan.host}:${plan.port}: ${errorMessage(error)}`);
      this.connectFailures++;
      return false;
    } finally {
      this.connectingSince = -1;
      this.connectTimedOut = undefined;
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
    // Small when one answer at a time is expected: 10,000 connections hold 20 MB, not 640 MB.
    const pool = this.pipeline === 1 ? smallBuffers : largeBuffers;
    const buffer = pool.acquire();
    try {
      return await this.readAnswers(conn, buffer);
    } finally {
      // Every return follows a settled read: nothing reads into the buffer any more.
      pool.release(buffer);
    }
  }

  async readAnswers(conn: Deno.TcpConn, buffer: Uint8Array): Promise<string> {
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
    const whole = this.partial.length === 1 ? this.partial[0] : concatAll(this.partial);
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
    gen.recordAnswer(
      now,
      (now - this.due[slot]) * 1000,
      (now - this.sentAt[slot]) * 1000,
      isError,
    );
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
          this.arm(due, now);
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
      this.send(this.conn, encoder.encode(out));
    } else if (this.size === 0 && !this.moreToSend(now)) {
      this.finish();
    }
  }

  /** Writes in order; without a write pending, straight to the socket (no waiting in a chain). */
  send(conn: Deno.TcpConn, bytes: Uint8Array): void {
    // A failed write needs nothing here: the read side sees the failure and counts it.
    const written = () => void this.writesPending--;
    this.writesPending++;
    if (this.writesPending > 1) {
      this.writing = this.writing.then(() => writeAll(conn, bytes)).then(written, written);
      return;
    }
    this.writing = conn.write(bytes).then((n) =>
      n === bytes.length ? undefined : writeAll(conn, bytes.subarray(n))
    ).then(written, written);
  }

  /** Wakes this connection's pump for its next send (taskserver/pacer.ts where it runs). */
  readonly wake = (): void => {
    this.paced = false;
    this.pump(performance.now());
  };
  paced = false;

  arm(due: number, now: number): void {
    const pacer = this.gen.pacer;
    if (pacer !== null) {
      if (!this.paced) {
        this.paced = true;
        pacer.at(due, this.wake);
      }
      return;
    }
    const ms = due - now;
    if (this.timer !== undefined) return;
    // Timers run in whole milliseconds: wake at the due time, never before it.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump(performance.now());
    }, Math.max(0, Math.floor(ms)));
  }

  /** A connect or the oldest request waited too long: the connection is failed. */
  checkTimeout(now: number): void {
    const timeoutMs = this.gen.plan.timeoutMs;
    if (this.connectingSince >= 0 && now - this.connectingSince > timeoutMs) {
      this.connectTimedOut?.(new Error(`no connection within ${timeoutMs} ms`));
      this.connectingSince = -1;
    }
    if (this.size > 0 && this.conn && now - this.sentAt[this.head] > timeoutMs) {
      this.gen.noteError(`no answer within ${timeoutMs} ms`);
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
    this.gen.pacer?.cancel(this.wake);
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
    this.gen.pacer?.cancel(this.wake);
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

/** Whether `bytes[from, end)` starts with `Error:` (an error answer). */
export function startsWithError(bytes: Uint8Array, from: number, end: number): boolean {
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
