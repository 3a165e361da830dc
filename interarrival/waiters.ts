/**
 * Waiting for send deadlines precisely, on the monotonic clock
 * (`performance.now()`), for the senders in `client.ts`.
 *
 * @module
 */

// Deno's timers round to whole milliseconds and fire 1.2 ms late typically, up
// to 12 ms on a loaded machine (measured), so a sender alone in its Web Worker
// sleeps on a timer only for long waits (over LONG_WAIT_MS, or while links still
// open and need the event loop), until COARSE_MS before its deadline. It then
// blocks in Atomics.wait (a futex, no CPU burnt) until a spin margin before the
// deadline, and spins the rest. Senders that share a worker poll through a
// MessageChannel (a macrotask without timer clamping) instead, so the others
// and their I/O still run.
const COARSE_MS = 2;
const LONG_WAIT_MS = 20;
const LONG_COARSE_MS = 10;
const SPIN_MS = 0.1;
const SLICE_MS = 0.2;
// A futex wait returns 0.07 ms late typically here, but 0.1–0.5 ms late for one
// wait in ten to a hundred on a loaded machine, and each such wake-up is a late
// send (it shifts the realized gaps: what failed the KS test at a 1 ms mean).
// So the spin margin follows the recent overshoot (about its 95th percentile),
// between MIN_SPIN_MS and MAX_SPIN_MS: a quiet machine spins little.
const MIN_SPIN_MS = 0.05;
const MAX_SPIN_MS = 0.3;
const OVERSHOOTS = 64;
/** Atomic loads between clock reads while spinning (about a microsecond). */
const SPIN_PACE = 30;
// Even so, about one futex wait in a hundred returned over 0.5 ms late on the
// loaded machine while the thread spent almost no time in the run queue (the
// timer's interrupt reached the idle virtual CPU late). A flow alone in its
// worker therefore spins through waits shorter than ALONE_SPIN_MS (at a 1 ms
// mean, most of them: ~60 % of a core while it sends), so that fewer wake-ups
// depend on a timer at all. Many flows in a worker never spin that long.
export const ALONE_SPIN_MS = 1;

/** Waits for deadlines on the monotonic clock (`performance.now()`). */
interface Waiter {
  /** `mayHold` false: other work in the Web Worker needs its event loop (links opening). */
  until(deadline: number, mayHold?: boolean): Promise<void>;
  close(): void;
}

/** For a sender alone in its Web Worker: timer (long waits), then a futex wait, then a spin. */
class ExclusiveWaiter implements Waiter {
  #cell = new Int32Array(new SharedArrayBuffer(4));

  /** `spinBelowMs`: waits shorter than this are spun through entirely. */
  constructor(private readonly spinBelowMs = 0) {}

  #overshoots = new Float64Array(OVERSHOOTS);
  #sorted = new Float64Array(OVERSHOOTS);
  #seen = 0;
  #spin = SPIN_MS;

  async until(deadline: number, mayHold = true): Promise<void> {
    const remaining = deadline - performance.now();
    const [threshold, margin] = mayHold ? [LONG_WAIT_MS, LONG_COARSE_MS] : [0, COARSE_MS];
    const coarse = Math.floor(remaining - margin);
    if (remaining > threshold && coarse >= 1) {
      await new Promise((resolve) => setTimeout(resolve, coarse));
    }
    const block = deadline - performance.now() - this.#spin;
    if (
      block > 0 && remaining >= this.spinBelowMs &&
      Atomics.wait(this.#cell, 0, 0, block) === "timed-out"
    ) {
      this.#learn(performance.now() - (deadline - this.#spin));
    }
    while (performance.now() < deadline) {
      // Spin for the last fraction of a millisecond, reading the clock about once
      // a microsecond: each performance.now() allocates (16 bytes, measured), and
      // reading it back to back made most of a spinning sender's garbage.
      for (let i = 0; i < SPIN_PACE; i++) Atomics.load(this.#cell, 0);
    }
  }

  /** Records how late a futex wait returned; every OVERSHOOTS waits, sets the margin. */
  #learn(overshoot: number): void {
    this.#overshoots[this.#seen++ % OVERSHOOTS] = overshoot;
    if (this.#seen % OVERSHOOTS !== 0) return;
    this.#sorted.set(this.#overshoots);
    this.#sorted.sort();
    const p95 = this.#sorted[Math.floor(OVERSHOOTS * 0.95)];
    this.#spin = Math.min(MAX_SPIN_MS, Math.max(MIN_SPIN_MS, p95 + 0.02));
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

/**
 * A waiter for one sender: its own if `exclusive` (spinning through waits
 * shorter than `spinBelowMs`), else the Web Worker's shared one.
 */
export function waiterFor(exclusive: boolean, spinBelowMs = 0): Waiter {
  if (exclusive) return new ExclusiveWaiter(spinBelowMs);
  shared ??= new SharedWaiter();
  return shared.acquire();
}
