/**
 * Waiting for send deadlines precisely, on the monotonic clock
 * (`performance.now()`), for the senders in `client.ts`.
 *
 * @module
 */

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

/** A waiter for one sender: its own if `exclusive`, else the Web Worker's shared one. */
export function waiterFor(exclusive: boolean): Waiter {
  if (exclusive) return new ExclusiveWaiter();
  shared ??= new SharedWaiter();
  return shared.acquire();
}
