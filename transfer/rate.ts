/**
 * `--limit-rate`: a pacing limiter (as rsync's `--bwlimit`). Each block waits
 * until the bytes sent so far fit the rate since the start; several connections
 * of one process share one limiter, and each of `n` workers gets `rate / n`.
 *
 * @module
 */
import { parseSize } from "./protocol.ts";

/** Parses a rate such as `500k`, `10MB`, `1MiB/s` into bytes per second. */
export function parseRate(text: string): number {
  const rate = parseSize(text.replace(/\/s$/i, ""));
  if (rate <= 0) throw new RangeError(`'${text}' is not a positive rate`);
  return rate;
}

/** Paces bytes to a rate. */
export class RateLimiter {
  readonly #started = performance.now();
  #bytes = 0;
  constructor(readonly bytesPerSecond: number) {}

  /** Waits until `n` more bytes fit the rate. */
  async take(n: number): Promise<void> {
    this.#bytes += n;
    const due = this.#started + (this.#bytes / this.bytesPerSecond) * 1000;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
