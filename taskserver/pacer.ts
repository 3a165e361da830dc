/**
 * Wakes the open loop's connections at their scheduled send times, finer than
 * timers can. Deno's `setTimeout` runs in whole milliseconds and fires 1.6 ms
 * late at the median, 2.2 ms at p99 on an idle 2-core machine here; since the
 * open loop charges every request from its scheduled time (wrk2's rule), that
 * lateness showed as ~1.2 ms of the generator's own in every corrected latency.
 *
 * One pacer per isolate holds every connection's next due time. A wait longer
 * than {@linkcode TIMER_MS} sleeps on a timer until {@linkcode TIMER_MS} before
 * the earliest due time (a sooner entry cancels it); the rest is slept by
 * `usleep` on a runtime thread (`nonblocking` FFI: the event loop runs meanwhile)
 * in slices of at most {@linkcode SLICE_MS}, so an entry added during a slice
 * waits at most one slice. Same idle machine: `usleep` slices were 0.18 ms late
 * at the median, 0.7 ms at p99.
 *
 * Without `--allow-ffi` (or off Linux) there is no pacer and each connection
 * arms its own timer as before; the load report says which pacing ran.
 *
 * @module
 */
import { libcLoader } from "../shared/libc.ts";

/** Waits longer than this (ms) start on a timer. */
const TIMER_MS = 3;
/** Longest `usleep` slice (ms). */
const SLICE_MS = 1;

/** `usleep` on a runtime thread: the event loop runs while it sleeps. */
const loadSleeper = libcLoader(
  { usleep: { parameters: ["u32"], result: "i32", nonblocking: true } },
  null,
);

/** Calls each registered callback at (just after) its due time (`performance.now()` ms). */
export class Pacer {
  readonly #due = new Map<() => void, number>();
  readonly #sleep: (microseconds: number) => Promise<number>;
  #running = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerEnds = Infinity;
  #wake: (() => void) | undefined;

  private constructor(sleep: (microseconds: number) => Promise<number>) {
    this.#sleep = sleep;
  }

  /** A pacer where FFI can sleep on a runtime thread, else null (use timers). */
  static create(): Pacer | null {
    const libc = loadSleeper();
    return typeof libc === "string" ? null : new Pacer(libc.usleep);
  }

  /** Calls `callback` once at `due`; a callback already waiting moves to the new time. */
  at(due: number, callback: () => void): void {
    this.#due.set(callback, due);
    if (!this.#running) {
      this.#run();
      return;
    }
    // Sleeping on a timer past this entry's slice: wake and plan again.
    if (this.#timer !== undefined && due - TIMER_MS < this.#timerEnds) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#wake?.();
    }
  }

  /** Forgets `callback` if it is waiting. */
  cancel(callback: () => void): void {
    this.#due.delete(callback);
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#due.size > 0) {
        const now = performance.now();
        let earliest = Infinity;
        const ready: (() => void)[] = [];
        for (const [callback, due] of this.#due) {
          if (due <= now) ready.push(callback);
          else if (due < earliest) earliest = due;
        }
        for (const callback of ready) {
          this.#due.delete(callback);
          callback();
        }
        if (ready.length > 0) continue;
        const wait = earliest - performance.now();
        if (wait > TIMER_MS) {
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
            this.#timerEnds = earliest - TIMER_MS;
            this.#timer = setTimeout(resolve, Math.floor(wait - TIMER_MS));
          });
          this.#timer = undefined;
          this.#wake = undefined;
          this.#timerEnds = Infinity;
        } else if (wait > 0) {
          await this.#sleep(Math.ceil(Math.min(wait, SLICE_MS) * 1000));
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
