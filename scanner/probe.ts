/**
 * One TCP connect probe, registered as the task `scanner.probe` so that it runs
 * the same way in every execution mode (this module is imported by the entry, so
 * workers and children know it too).
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
import { defineTask } from "../shared/runner.ts";
import { sleep } from "../shared/clock.ts";
import { connectError } from "../shared/errors.ts";

/** Port states, as nmap names them. */
export type PortState = "open" | "closed" | "filtered";

/** All port states, in the order tables list them. */
export const PORT_STATES: readonly PortState[] = ["open", "closed", "filtered"];

/**
 * Most connects one isolate keeps in flight, whatever `--concurrency` asks for.
 * Above ~128 `Deno.connect` calls in flight in one isolate, some stall for longer
 * than the timeout under sustained load: a 65535-port async scan at 256 in flight
 * reported 768-1210 closed ports as filtered here, at 128 none did.
 */
export const MAX_CONNECTS_PER_ISOLATE = 128;

/** How long a probe keeps retrying while the process is out of descriptors or ports. */
export const RESOURCE_RETRY_LIMIT_MS = 30_000;

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
const pacer = new Pacer();

/** The process ran out of descriptors or local ports: retry, never report. */
export function isResourceExhausted(error: unknown): boolean {
  if (error instanceof Deno.errors.AddrNotAvailable) return true;
  const message = error instanceof Error ? error.message : String(error);
  return /os error (24|23|99|105)\b|too many open files|no buffer space/i.test(message);
}

type Attempt = { state: PortState; reason: string } | "exhausted" | "starved";

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

async function connectOnce(address: string, port: number, timeoutMs: number): Promise<Attempt> {
  const controller = new AbortController();
  const issued = performance.now();
  let late = false;
  const timer = setTimeout(() => {
    late = firedLate(performance.now() - issued, timeoutMs);
    controller.abort();
  }, timeoutMs);
  try {
    const conn = await Deno.connect({ hostname: address, port, signal: controller.signal });
    const local = conn.localAddr as Deno.NetAddr;
    conn.close();
    // Simultaneous open with itself: nothing listens, the kernel just picked port as source.
    if (local.port === port && sameAddress(local.hostname, address)) {
      return { state: "closed", reason: "self-connect" };
    }
    return { state: "open", reason: "syn-ack" };
  } catch (error) {
    // A timer that fired late proves nothing about the port: the reply may be unread.
    if (controller.signal.aborted) {
      return late ? "starved" : { state: "filtered", reason: "no-response" };
    }
    if (error instanceof Deno.errors.ConnectionRefused) {
      return { state: "closed", reason: "conn-refused" };
    }
    if (error instanceof Deno.errors.ConnectionReset) return { state: "closed", reason: "reset" };
    if (error instanceof Deno.errors.TimedOut) return { state: "filtered", reason: "no-response" };
    if (isResourceExhausted(error)) return "exhausted";
    const message = error instanceof Error ? error.message : String(error);
    if (/os error 113\b|host is unreachable/i.test(message)) {
      return { state: "filtered", reason: "host-unreach" };
    }
    if (/os error 101\b|network is unreachable/i.test(message)) {
      return { state: "filtered", reason: "net-unreach" };
    }
    if (/os error 1\b|operation not permitted/i.test(message)) {
      return { state: "filtered", reason: "admin-prohibited" };
    }
    throw connectError(address, port, error);
  } finally {
    clearTimeout(timer);
  }
}

function sameAddress(a: string, b: string): boolean {
  const strip = (text: string) => text.replace(/^::ffff:/, "").toLowerCase();
  return strip(a) === strip(b);
}

/**
 * Probes one port: `open` on a completed handshake, `closed` on a refusal,
 * `filtered` when nothing answers within the timeout (after `retries` more tries).
 *
 * @throws an error naming host and port for failures that are no port state
 * (e.g. out of descriptors for longer than {@linkcode RESOURCE_RETRY_LIMIT_MS}).
 */
export async function probePort(
  input: ProbeInput,
  limiter: ConnectGate = gate,
): Promise<ProbeResult> {
  if (input.cap !== undefined) limiter.capAt(input.cap);
  let attempts = 0;
  let starved = 0;
  let exhaustedSince = -1;
  for (;;) {
    await limiter.acquire();
    let outcome: Attempt;
    try {
      if (input.rate > 0) await pacer.wait(input.rate);
      outcome = await connectOnce(input.address, input.port, input.timeoutMs);
    } catch (error) {
      limiter.release(false);
      throw error;
    }
    if (outcome === "exhausted") {
      limiter.shrink();
      limiter.release(false);
      const now = performance.now();
      if (exhaustedSince < 0) exhaustedSince = now;
      if (now - exhaustedSince > RESOURCE_RETRY_LIMIT_MS) {
        throw connectError(
          input.address,
          input.port,
          new Error(`out of file descriptors or local ports for ${RESOURCE_RETRY_LIMIT_MS} ms`),
        );
      }
      // Back off a little when nothing else is in flight to free a descriptor.
      await sleep(limiter.inFlight === 0 ? 10 : 1);
      continue;
    }
    limiter.release(true);
    exhaustedSince = -1;
    if (outcome === "starved") {
      if (++starved <= STARVED_RETRY_LIMIT) continue;
      // Still starved after many tries: report what was seen, with a reason that says so.
      attempts++;
      if (attempts <= input.retries) continue;
      return { state: "filtered", reason: "no-response (cpu-starved)", attempts };
    }
    attempts++;
    if (outcome.state === "filtered" && attempts <= input.retries) continue;
    return { ...outcome, attempts };
  }
}

/** The probe as a task, so the runner can run it in any mode. */
export const probeTask = defineTask<ProbeInput, ProbeResult>(
  "scanner.probe",
  (input) => probePort(input),
);
