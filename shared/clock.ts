/**
 * Clocks. `performance.now()` is monotonic with microsecond resolution in Deno;
 * {@linkcode epochMs} adds the isolate's time origin so that timestamps taken in
 * different workers and processes can be compared.
 *
 * @module
 */
import { onAbort } from "./abort.ts";

/** Monotonic milliseconds (microsecond resolution) since this isolate started. */
export function now(): number {
  return performance.now();
}

/** Wall-clock epoch milliseconds with sub-millisecond precision, comparable across isolates. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Rounds milliseconds to three decimals (microseconds), the toolkit's reporting precision. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Sleeps `ms` milliseconds; rejects with the signal's reason when aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      forget();
      resolve();
    }, Math.max(0, ms));
    const forget = signal
      ? onAbort(signal, () => {
        clearTimeout(timer);
        reject(signal.reason);
      })
      : () => {};
  });
}

/**
 * Waits until the monotonic clock reaches `deadline` (from {@linkcode now}).
 * Timers in Deno fire up to about a millisecond late, so it sleeps until
 * `spinMs` before the deadline and then yields in a tight loop for the rest.
 */
export async function sleepUntil(
  deadline: number,
  spinMs = 1.5,
  signal?: AbortSignal,
): Promise<void> {
  const coarse = deadline - now() - spinMs;
  if (coarse > 0) await sleep(coarse, signal);
  while (now() < deadline) {
    if (signal?.aborted) throw signal.reason;
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    if (deadline - now() > 0.05) await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }
}

/** Measures how long `fn` takes, in milliseconds. */
export async function timed<T>(fn: () => T | Promise<T>): Promise<{ value: T; ms: number }> {
  const start = now();
  const value = await fn();
  return { value, ms: now() - start };
}
