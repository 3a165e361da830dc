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
 * Registered (`registry.ts`) as the service `taskserver.load` so a run can
 * spread over Web Workers or child processes through `shared/runtime.ts`.
 *
 * @module
 */
import { HdrHistogram, type HdrHistogramData } from "../shared/hdr_histogram.ts";
import type { Service } from "../shared/runtime.ts";
import type { LoadPlan } from "./load_plan.ts";
import { LoadConnection } from "./load_connection.ts";
import type { Engine } from "./ffi_libc.ts";
import { UsageError } from "../shared/errors.ts";
import { ffiBurstUnavailable, runFfiBurst } from "./ffi_burst.ts";
import { Pacer } from "./pacer.ts";

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
  /**
   * The engine that opened the connections (`ffi`, `deno`, or both after a
   * merge); absent in files written before it was recorded (those ran on `deno`).
   */
  engine?: string;
  /**
   * How the open loop waited for send times (`ffi`: taskserver/pacer.ts,
   * `timers`, or both after a merge); absent for the closed loop.
   */
  pacing?: string;
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

/** Connection attempts in flight per isolate (more stall `Deno.connect` above ~128). */
const CONNECTS_IN_FLIGHT = 100;

function epoch(): number {
  return performance.timeOrigin + performance.now();
}

/** @internal one second of the timeline while it is being recorded. */
export interface Second {
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

  /** The engine this share runs on (see {@linkcode LoadPlan.engine}). */
  readonly engine: Engine;
  /** The open loop's waker for send times (null: timers; see taskserver/pacer.ts). */
  readonly pacer: Pacer | null;

  constructor(plan: LoadPlan) {
    this.plan = plan;
    this.pacer = plan.rate !== null ? Pacer.create() : null;
    this.tickets = plan.rate === null && plan.requests !== null ? plan.requests : Infinity;
    this.engine = generatorEngine(plan);
    this.#conns = this.engine === "ffi"
      ? []
      : plan.connectionIds.map((id) => new LoadConnection(this, id));
  }

  /**
   * Opens the persistent connections before the start, so the schedule does not
   * charge the server for our own set-up. (With `requestsPerConnection`, the
   * study's one-request clients, connecting is part of what is measured.)
   */
  prepare(): Promise<void> {
    if (this.#prepared === undefined) {
      if (this.plan.requestsPerConnection === null) {
        const stopSweep = this.#sweepTimeouts();
        this.#prepared = Promise.all(this.#conns.map((c) => c.connectOnce())).then(stopSweep);
      } else this.#prepared = Promise.resolve();
    }
    return this.#prepared;
  }

  /** Checks every connection's connect and oldest request against the timeout; returns a stop. */
  #sweepTimeouts(): () => void {
    const conns = this.#conns;
    const sweep = setInterval(() => {
      const now = performance.now();
      for (const c of conns) c.checkTimeout(now);
    }, 100);
    return () => clearInterval(sweep);
  }

  /**
   * Runs the share to its end (or {@linkcode stop}); resolves with what was
   * measured. Sending starts at `startAt` (epoch ms; default: the plan's; 0: as
   * soon as the connections are open).
   */
  async run(startAt = this.plan.startAt): Promise<ShareResult> {
    await this.prepare();
    // A common start (several workers) holds even for one that is late: its lateness
    // shows in its lag and latency instead of shifting its schedule. 0: start now.
    this.t0 = startAt > 0 ? startAt - performance.timeOrigin : performance.now();
    this.measureStart = this.t0 + this.plan.warmupMs;
    this.measureEnd = this.plan.durationMs === null
      ? Infinity
      : this.measureStart + this.plan.durationMs;
    const wait = this.t0 - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (this.engine === "ffi") {
      if (!this.stopped) await runFfiBurst(this);
      return this.result();
    }
    const finished = new Promise<void>((resolve) => (this.#finish = resolve));
    const conns = this.#conns;
    this.#open = conns.length;
    const stopSweep = this.#sweepTimeouts();
    try {
      if (conns.length > 0 && !this.stopped) {
        for (const c of conns) c.start();
        await finished;
      }
    } finally {
      stopSweep();
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

  /**
   * @internal an answer to a measured request: `us` from when it was due,
   * `uncorrectedUs` from when it was sent.
   */
  recordAnswer(now: number, us: number, uncorrectedUs: number, isError: boolean): void {
    this.answered++;
    this.latency.record(us);
    this.uncorrected.record(uncorrectedUs);
    this.onSample?.(us);
    this.lastEventAt = now;
    const second = this.second(now);
    second.answered++;
    second.latency.record(us);
    if (isError) {
      this.errorReplies++;
      second.errors++;
    }
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
      engine: this.engine,
      ...(this.plan.rate !== null ? { pacing: this.pacer ? "ffi" : "timers" } : {}),
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

/**
 * The engine a share runs on: `ffi` (`ffi_burst.ts`) for one-request clients
 * where it can run, unless the plan says `deno`; `ffi` asked for where it
 * cannot run is an error.
 */
export function generatorEngine(plan: LoadPlan): Engine {
  const choice = plan.engine ?? "auto";
  if (choice === "deno") return "deno";
  const why = ffiBurstUnavailable(plan);
  if (why === null) return "ffi";
  if (choice === "ffi") throw new UsageError(`--engine ffi: ${why}`);
  return "deno";
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
export const loadService: Service = async (channel, init) => {
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
};

/** Epoch milliseconds now (the clock plans' `startAt` uses). */
export { epoch as loadEpoch };
