/**
 * One TCP connect probe through `Deno.connect` (the `connect` engine); the task
 * `scanner.probe` of `registry.ts` runs it the same way in every execution mode.
 *
 * Exactness rules, each for a trap that would otherwise misreport a port:
 * - The timeout clock starts only when the connect is really issued: probes wait
 *   for a slot of a per-isolate {@linkcode ConnectGate} first, which keeps real
 *   connects in flight at most {@linkcode MAX_CONNECTS_PER_ISOLATE} (more stall
 *   in one isolate, which would turn closed ports into "filtered").
 * - A timed-out connect is aborted through its signal, so its socket is closed at
 *   once instead of holding a descriptor through the kernel's SYN retries.
 * - `EMFILE` / `EADDRNOTAVAIL` lower the gate's limit and retry the same port;
 *   they never become a port state.
 * - A loopback connect that lands on its own source port (TCP self-connect) is
 *   reported `closed` with reason `self-connect`, not `open`.
 * - A timeout whose timer fired late (the isolate was starved of CPU) is not a
 *   verdict: the probe starts over (see {@linkcode firedLate}).
 *
 * @module
 */
import { sleep } from "../shared/clock.ts";
import { connectError } from "../shared/errors.ts";
import {
  attemptStep,
  connectedVerdict,
  deadlineAfterAttempt,
  errnoOf,
  type PortState,
  type Verdict,
  verdictForErrno,
} from "./verdict.ts";
import { HostRtts } from "./timing.ts";
import { MAX_CONNECTS_PER_ISOLATE, RESOURCE_RETRY_LIMIT_MS } from "./limits.ts";

export { PORT_STATES, type PortState } from "./verdict.ts";

export { MAX_CONNECTS_PER_ISOLATE, RESOURCE_RETRY_LIMIT_MS };

/** Input of one probe. */
export interface ProbeInput {
  /** Address to connect to (a literal; names are resolved once, before the scan). */
  address: string;
  port: number;
  /** Milliseconds without an answer after which the port is `filtered`. */
  timeoutMs: number;
  /** Extra attempts for a port that did not answer. */
  retries: number;
  /** New connects per second this isolate may start (0: unlimited). */
  rate: number;
  /** Most connects this isolate may keep in flight (below the open-file limit). */
  cap?: number;
  /** Adaptive timeout bounds (see `timing.ts`); absent: `timeoutMs` is fixed. */
  minRttMs?: number;
  maxRttMs?: number;
}

/** Result of one probe. */
export interface ProbeResult {
  state: PortState;
  /** `syn-ack`, `conn-refused`, `no-response`, `self-connect`, `host-unreach`, ... */
  reason: string;
  /** Attempts made (more than 1 after retries). */
  attempts: number;
}

/**
 * Counting semaphore for connects in flight in one isolate, whose limit shrinks
 * when the process runs out of descriptors or local ports and grows back slowly.
 */
export class ConnectGate {
  #max: number;
  #limit: number;
  #inFlight = 0;
  #waiters: (() => void)[] = [];
  #sinceShrink = 0;

  constructor(max: number) {
    this.#max = max;
    this.#limit = max;
  }

  /** The highest the limit goes. */
  get max(): number {
    return this.#max;
  }

  /** Lowers the highest limit (never raises it above the constructor's). */
  capAt(max: number): void {
    if (max >= this.#max) return;
    this.#max = Math.max(1, max);
    this.#limit = Math.min(this.#limit, this.#max);
  }

  /** The current limit. */
  get limit(): number {
    return this.#limit;
  }

  /** Connects in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Waits for a slot. */
  acquire(): Promise<void> {
    if (this.#inFlight < this.#limit) {
      this.#inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.#waiters.push(() => {
        this.#inFlight++;
        resolve();
      })
    );
  }

  /** Gives a slot back; `succeeded` counts towards growing the limit again. */
  release(succeeded = true): void {
    this.#inFlight--;
    if (succeeded && this.#limit < this.#max && ++this.#sinceShrink >= 64) {
      this.#sinceShrink = 0;
      this.#limit++;
    }
    while (this.#inFlight < this.#limit && this.#waiters.length > 0) this.#waiters.shift()!();
  }

  /** Lowers the limit below what is in flight now (called after EMFILE/EADDRNOTAVAIL). */
  shrink(): void {
    this.#sinceShrink = 0;
    this.#limit = Math.max(1, Math.min(this.#limit, this.#inFlight) - 1);
  }
}

/** Spaces connect starts to a rate (per isolate). */
class Pacer {
  #next = 0;
  async wait(rate: number): Promise<void> {
    if (rate <= 0) return;
    const now = performance.now();
    const at = Math.max(now, this.#next);
    this.#next = at + 1000 / rate;
    if (at > now) await sleep(at - now);
  }
}

const gate = new ConnectGate(MAX_CONNECTS_PER_ISOLATE);
const rtts = new HostRtts();
const pacer = new Pacer();

/** The process ran out of descriptors or local ports: retry, never report. */
export function isResourceExhausted(error: unknown): boolean {
  if (error instanceof Deno.errors.AddrNotAvailable) return true;
  const message = error instanceof Error ? error.message : String(error);
  return /os error (24|23|99|105)\b|too many open files|no buffer space/i.test(message);
}

/** How many times a probe may start over because its isolate was starved of CPU. */
export const STARVED_RETRY_LIMIT = 8;

/**
 * True when a timer set for `timeoutMs` fired `elapsedMs` after it was set: later
 * than the timeout plus a slack, meaning the isolate did not run in time (CPU
 * overload, e.g. 200 processes on 2 cores) and a reply may be waiting unread.
 */
export function firedLate(elapsedMs: number, timeoutMs: number): boolean {
  return elapsedMs > timeoutMs + Math.max(50, timeoutMs * 0.2);
}

type Attempt = Verdict | "exhausted" | "aborted";

/** One `Deno.connect` attempt, until it is answered or `signal` aborts it. */
async function connectAttempt(
  address: string,
  port: number,
  signal: AbortSignal,
): Promise<Attempt> {
  try {
    const conn = await Deno.connect({ hostname: address, port, signal });
    const local = conn.localAddr as Deno.NetAddr;
    conn.close();
    // Simultaneous open with itself: nothing listens, the kernel just picked port as source.
    return connectedVerdict(local.port === port && sameAddress(local.hostname, address));
  } catch (error) {
    if (signal.aborted) return "aborted";
    if (isResourceExhausted(error)) return "exhausted";
    const errno = error instanceof Deno.errors.ConnectionRefused
      ? 111
      : error instanceof Deno.errors.ConnectionReset
      ? 104
      : error instanceof Deno.errors.TimedOut
      ? 110
      : errnoOf(error);
    const verdict = errno === null ? null : verdictForErrno(errno);
    if (verdict) return verdict;
    throw connectError(address, port, error);
  }
}

function sameAddress(a: string, b: string): boolean {
  const strip = (text: string) => text.replace(/^::ffff:/, "").toLowerCase();
  return strip(a) === strip(b);
}

/**
 * Probes one port: `open` on a completed handshake, `closed` on a refusal,
 * `filtered` when nothing answers by the deadline. Attempts follow the schedule
 * of `verdict.ts` (the FFI engine's too): `retries` more connects overlap within
 * the one timeout.
 *
 * @throws an error naming host and port for failures that are no port state
 * (e.g. out of descriptors for longer than {@linkcode RESOURCE_RETRY_LIMIT_MS}).
 */
export function probePort(
  input: ProbeInput,
  limiter: ConnectGate = gate,
): Promise<ProbeResult> {
  if (input.cap !== undefined) limiter.capAt(input.cap);
  const { address, port, timeoutMs, retries } = input;
  const rtt = rtts.get(address);
  const bounds = { initialMs: timeoutMs, minMs: input.minRttMs, maxMs: input.maxRttMs };
  return new Promise((resolve, reject) => {
    let started = 0;
    let live = 0;
    let deadline = 0;
    let lastReason = "no-response";
    let done = false;
    let starved = 0;
    let waiting = false;
    let exhaustedSince = -1;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let controllers = new Set<AbortController>();

    const stopAll = () => {
      clearTimeout(timer);
      for (const controller of controllers) controller.abort();
      controllers = new Set();
    };
    const finish = (state: PortState, reason: string) => {
      if (done) return;
      done = true;
      stopAll();
      resolve({ state, reason, attempts: started });
    };
    const fail = (error: unknown) => {
      if (done) return;
      done = true;
      stopAll();
      reject(error);
    };
    const setTimer = (delay: number, fire: (late: boolean) => void) => {
      clearTimeout(timer);
      const set = performance.now();
      timer = setTimeout(() => fire(firedLate(performance.now() - set, delay)), delay);
    };
    const onRetry = () => {
      if (done || waiting) return;
      launch();
      // Its attempts keep their deadline while the retry waits for a slot.
      if (waiting) setTimer(Math.max(0, deadline - performance.now()), onDeadline);
    };
    const onDeadline = (late: boolean) => {
      if (done) return;
      if (waiting) {
        // The retry still waits for a slot: free the earlier attempts' slots; the
        // retry gets its own share of the timeout when it starts.
        for (const controller of controllers) controller.abort();
        controllers = new Set();
        return;
      }
      if (!late) return finish("filtered", lastReason);
      // A timer that fired late proves nothing about the port: the reply may be unread.
      stopAll();
      if (++starved > STARVED_RETRY_LIMIT) return finish("filtered", "no-response (cpu-starved)");
      started = 0;
      deadline = 0;
      lastReason = "no-response";
      launch();
    };
    const launch = async () => {
      waiting = true;
      await limiter.acquire();
      waiting = false;
      if (done) return limiter.release(true);
      if (input.rate > 0) await pacer.wait(input.rate);
      const k = started++;
      live++;
      const now = performance.now();
      const timeout = rtt.timeout(bounds);
      deadline = deadlineAfterAttempt(deadline, now, k, timeout, retries);
      if (started <= retries) setTimer(attemptStep(timeout, retries), onRetry);
      else setTimer(deadline - now, onDeadline);
      const controller = new AbortController();
      controllers.add(controller);
      let outcome: Attempt;
      try {
        outcome = await connectAttempt(address, port, controller.signal);
      } catch (error) {
        limiter.release(false);
        return fail(error);
      } finally {
        live--;
        controllers.delete(controller);
      }
      if (outcome === "aborted") return limiter.release(true);
      if (outcome === "exhausted") {
        limiter.shrink();
        limiter.release(false);
        started--;
        const at = performance.now();
        if (exhaustedSince < 0) exhaustedSince = at;
        if (at - exhaustedSince > RESOURCE_RETRY_LIMIT_MS) {
          return fail(connectError(
            address,
            port,
            new Error(`out of file descriptors or local ports for ${RESOURCE_RETRY_LIMIT_MS} ms`),
          ));
        }
        // Back off a little when nothing else is in flight to free a descriptor.
        await sleep(limiter.inFlight === 0 ? 10 : 1);
        if (!done && live === 0 && !waiting) launch();
        return;
      }
      limiter.release(true);
      exhaustedSince = -1;
      rtt.sample(performance.now() - now);
      if (outcome.final) return finish(outcome.state, outcome.reason);
      lastReason = outcome.reason;
      if (live > 0 || waiting || done) return;
      // Every started attempt has ended (ICMP errors): the next need not wait its turn.
      if (started <= retries) launch();
      else finish("filtered", lastReason);
    };
    launch();
  });
}
