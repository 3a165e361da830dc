/**
 * The traffic generator: `workers` senders, each with its own TCP connection,
 * each sending `Worker W, Event E, Timestamp T` lines at absolute deadlines
 * (start + the sum of the drawn gaps), so timer lateness never accumulates.
 * Senders always run in Web Workers (`runTasks` in thread mode).
 *
 * @module
 */
import { defineTask, runAll } from "../shared/runner.ts";
import { connectError, TimeoutError } from "../shared/errors.ts";
import { BufferedReader } from "../shared/reader.ts";
import { decodeText } from "../shared/codec.ts";
import { roundMs } from "../shared/clock.ts";
import { roundSummary, summarize, type Summary } from "../shared/stats.ts";
import {
  describeDistribution,
  type DistributionSpec,
  sampler,
  seededRandom,
  workerSeed,
} from "./distributions.ts";
import { formatEvent } from "./protocol.ts";

/** Input of one sender task. */
export interface SenderInput {
  /** Worker number, from 1 (as in the study's messages). */
  worker: number;
  host: string;
  port: number;
  dist: DistributionSpec;
  /** Inter-event intervals: the sender sends `intervals + 1` messages. */
  intervals: number;
  seed: number;
  verbose: boolean;
  connectTimeoutMs: number;
  /** Milliseconds between reading the greeting and the first message. */
  leadMs: number;
  /** Alone in its Web Worker: it may block the thread while it waits. */
  exclusive: boolean;
}

/** What one sender measured. */
export interface SenderResult {
  worker: number;
  greeting: string;
  messages: number;
  /** Drawn gaps (ms). */
  requested: number[];
  /** Gaps between actual sends (ms). */
  achieved: number[];
  /** Send time minus deadline for every message (ms, ≥ 0). */
  errors: number[];
  /** Deadline of every message, ms after the first. */
  deadlines: number[];
  /** Messages sent together with an earlier one because the sender fell behind. */
  coalesced: number;
  /** The lines sent, when verbose. */
  sent?: string[];
}

const encoder = new TextEncoder();

// Deno's timers round to whole milliseconds and fire up to ~1.4 ms late, so a
// sender sleeps on a timer until COARSE_MS before its deadline. A sender alone in
// its Web Worker then blocks in Atomics.wait (a futex: ~0.08 ms late, no CPU
// burnt) until SPIN_MS before it, and spins the rest; senders that share a
// worker poll through a MessageChannel (a macrotask without timer clamping)
// instead, so the others and their I/O still run.
const COARSE_MS = 2;
const SPIN_MS = 0.1;
const SLICE_MS = 0.2;

/** Waits for deadlines on the monotonic clock (`performance.now()`). */
interface Waiter {
  until(deadline: number): Promise<void>;
  close(): void;
}

/** For a sender alone in its Web Worker: timer, then a futex wait, then a short spin. */
class ExclusiveWaiter implements Waiter {
  #cell = new Int32Array(new SharedArrayBuffer(4));

  async until(deadline: number): Promise<void> {
    const coarse = Math.floor(deadline - performance.now() - COARSE_MS);
    if (coarse >= 1) await new Promise((resolve) => setTimeout(resolve, coarse));
    const block = deadline - performance.now() - SPIN_MS;
    if (block > 0) Atomics.wait(this.#cell, 0, 0, block);
    while (performance.now() < deadline) {
      // Spin for the last tenth of a millisecond.
    }
  }

  close(): void {}
}

/**
 * For senders sharing a Web Worker: one timer and one MessageChannel loop for all
 * of them (not one spinner each), releasing every sender whose deadline has come.
 */
class SharedWaiter {
  #channel = new MessageChannel();
  #queue: { deadline: number; resolve: () => void }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerFor = Infinity;
  #spinning = false;
  #users = 0;
  #cell = new Int32Array(new SharedArrayBuffer(4));

  constructor() {
    this.#channel.port2.onmessage = () => this.#tick();
  }

  acquire(): Waiter {
    this.#users++;
    return { until: (deadline) => this.until(deadline), close: () => this.#release() };
  }

  until(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      let i = this.#queue.length;
      while (i > 0 && this.#queue[i - 1].deadline > deadline) i--;
      this.#queue.splice(i, 0, { deadline, resolve });
      this.#arm();
    });
  }

  #tick(): void {
    this.#spinning = false;
    let now = performance.now();
    // Rather than burn a core polling, block in short slices (SLICE_MS at most, so
    // write completions of the other senders wait no longer than that).
    const next = this.#queue[0]?.deadline ?? Infinity;
    if (next - now > SPIN_MS && next - now <= COARSE_MS) {
      Atomics.wait(this.#cell, 0, 0, Math.min(SLICE_MS, next - now - SPIN_MS));
      now = performance.now();
    }
    while (this.#queue.length > 0 && this.#queue[0].deadline <= now) this.#queue.shift()!.resolve();
    this.#arm();
  }

  #arm(): void {
    if (this.#spinning || this.#queue.length === 0) return;
    const remaining = this.#queue[0].deadline - performance.now();
    if (remaining <= COARSE_MS) {
      if (this.#timer !== undefined) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#timerFor = Infinity;
      }
      this.#spinning = true;
      this.#channel.port1.postMessage(0);
      return;
    }
    const deadline = this.#queue[0].deadline;
    if (this.#timer !== undefined && this.#timerFor <= deadline) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerFor = deadline;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerFor = Infinity;
      this.#arm();
    }, Math.floor(remaining - COARSE_MS));
  }

  #release(): void {
    if (--this.#users > 0) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#channel.port1.close();
    this.#channel.port2.close();
    shared = null;
  }
}

let shared: SharedWaiter | null = null;

function waiterFor(exclusive: boolean): Waiter {
  if (exclusive) return new ExclusiveWaiter();
  shared ??= new SharedWaiter();
  return shared.acquire();
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Runs one sender: connect, read the greeting, send on schedule, close. */
export async function runSender(input: SenderInput, signal?: AbortSignal): Promise<SenderResult> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({
      hostname: input.host,
      port: input.port,
      signal: AbortSignal.any([
        AbortSignal.timeout(input.connectTimeoutMs),
        ...(signal ? [signal] : []),
      ]),
    });
  } catch (error) {
    const cause = error instanceof DOMException && error.name === "TimeoutError"
      ? new TimeoutError("the connection", input.connectTimeoutMs)
      : error;
    throw connectError(input.host, input.port, cause);
  }
  conn.setNoDelay(true);
  const waiter = waiterFor(input.exclusive);
  try {
    const reader = new BufferedReader(conn);
    const greetingBytes = await reader.readLine(4096, {
      timeout: input.connectTimeoutMs,
      what: "the server's greeting",
    });
    const greeting = greetingBytes instanceof Uint8Array ? decodeText(greetingBytes) : "";
    // Warm the hot path (sampler, formatting, encoding) before the clock starts, so
    // compiling it does not delay the first messages.
    const warm = sampler(input.dist, seededRandom(input.seed ^ 0x5bd1e995));
    for (let i = 0; i < 2000; i++) encoder.encode(formatEvent(input.worker, i, warm()));
    const draw = sampler(input.dist, seededRandom(workerSeed(input.seed, input.worker)));
    const total = input.intervals + 1;
    const requested: number[] = [];
    const achieved: number[] = [];
    const errors: number[] = [];
    const deadlines: number[] = [];
    const sent: string[] | undefined = input.verbose ? [] : undefined;
    let coalesced = 0;
    const start = performance.now() + input.leadMs;
    let deadline = start;
    let previousSend = NaN;
    let event = 0;
    while (event < total) {
      signal?.throwIfAborted();
      await waiter.until(deadline);
      // Send every message that is due now in one write: when the sender falls
      // behind it catches up at once instead of drifting.
      let text = "";
      const due: number[] = [];
      const timestamp = performance.timeOrigin + performance.now();
      while (event < total && deadline <= performance.now()) {
        event++;
        const line = formatEvent(input.worker, event, timestamp);
        text += line + "\n";
        sent?.push(line);
        due.push(deadline);
        if (event < total) {
          const gap = draw();
          requested.push(roundMs(gap));
          deadline += gap;
        }
      }
      coalesced += due.length - 1;
      // The send time is when the write is issued: Deno makes the write syscall at
      // once, and awaiting its promise only adds an event-loop turn.
      const bytes = encoder.encode(text);
      const sentAt = performance.now();
      await writeAll(conn, bytes);
      for (const d of due) {
        errors.push(roundMs(sentAt - d));
        deadlines.push(roundMs(d - start));
        if (!Number.isNaN(previousSend)) achieved.push(roundMs(sentAt - previousSend));
        previousSend = sentAt;
      }
    }
    return {
      worker: input.worker,
      greeting,
      messages: total,
      requested,
      achieved,
      errors,
      deadlines,
      coalesced,
      ...(sent ? { sent } : {}),
    };
  } finally {
    waiter.close();
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** The sender as a runner task, so it runs in Web Workers. */
export const senderTask = defineTask<SenderInput, SenderResult>(
  "interarrival.sender",
  (input, context) => runSender(input, context.signal),
);

/** Options for {@linkcode runClient}. */
export interface ClientOptions {
  host: string;
  port: number;
  workers: number;
  intervals: number;
  dist: DistributionSpec;
  seed: number;
  verbose?: boolean;
  /** Web Workers to spread the senders over (default: one per sender, as the study). */
  threads?: number;
  connectTimeoutMs?: number;
  leadMs?: number;
  signal?: AbortSignal;
  /** Worker entry (default: the main module). */
  entry?: string | URL;
}

/** Timing of one worker or of all of them. */
export interface TimingSummary {
  messages: number;
  requestedMeanMs: number;
  achievedMeanMs: number;
  /** (achieved − requested) / requested mean. */
  meanRelativeError: number;
  /** Send time minus deadline (ms). */
  error: Summary;
  coalesced: number;
}

/** What `client` reports. */
export interface ClientResult {
  dist: string;
  workers: number;
  threads: number;
  intervals: number;
  seed: number;
  overall: TimingSummary;
  perWorker: (TimingSummary & { worker: number; greeting: string })[];
  /** Raw results (gaps and errors), for `check` and `bench`. */
  senders: SenderResult[];
  elapsedMs: number;
}

/** Summarises the timing of some senders. */
export function timingOf(results: SenderResult[]): TimingSummary {
  const requested = results.flatMap((r) => r.requested);
  const achieved = results.flatMap((r) => r.achieved);
  const requestedMean = requested.reduce((a, b) => a + b, 0) / requested.length;
  const achievedMean = achieved.reduce((a, b) => a + b, 0) / achieved.length;
  return {
    messages: results.reduce((sum, r) => sum + r.messages, 0),
    requestedMeanMs: roundMs(requestedMean),
    achievedMeanMs: roundMs(achievedMean),
    meanRelativeError: Math.round(((achievedMean - requestedMean) / requestedMean) * 1e6) / 1e6,
    error: roundSummary(summarize(results.flatMap((r) => r.errors))),
    coalesced: results.reduce((sum, r) => sum + r.coalesced, 0),
  };
}

/** Runs every sender in Web Workers and summarises what they achieved. */
export async function runClient(options: ClientOptions): Promise<ClientResult> {
  const started = performance.now();
  const threads = Math.max(1, Math.min(options.workers, options.threads ?? options.workers));
  const inputs: SenderInput[] = Array.from({ length: options.workers }, (_, i) => ({
    worker: i + 1,
    host: options.host,
    port: options.port,
    dist: options.dist,
    intervals: options.intervals,
    seed: options.seed,
    verbose: options.verbose ?? false,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    leadMs: options.leadMs ?? 20,
    exclusive: threads >= options.workers,
  }));
  const outcomes = await runAll(senderTask, inputs, {
    mode: "thread",
    workers: threads,
    concurrency: Math.ceil(options.workers / threads),
    batch: 1,
    signal: options.signal,
    entry: options.entry,
  });
  const senders = outcomes.map((outcome) => (outcome as { value: SenderResult }).value);
  return {
    dist: describeDistribution(options.dist),
    workers: options.workers,
    threads,
    intervals: options.intervals,
    seed: options.seed,
    overall: timingOf(senders),
    perWorker: senders.map((s) => ({ worker: s.worker, greeting: s.greeting, ...timingOf([s]) })),
    senders,
    elapsedMs: roundMs(performance.now() - started),
  };
}
