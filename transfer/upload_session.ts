/**
 * The uploads one connection of the server writes to (see {@linkcode UploadSession}).
 *
 * @module
 */
import type { KeyPaths, Storage, UploadState } from "./storage.ts";
import type { DirectWriter } from "./direct_writer.ts";

/**
 * The uploads one connection writes to: it keeps up to `maxHeld` open (so a
 * connection that SAVEs hundreds of plans holds a handful of files), and lets them
 * all go when it has not written for `idleMs` or when it ends, so a DELETE in
 * another worker frees the disk space promptly.
 */
export class UploadSession {
  readonly #held = new Map<string, UploadState>();
  /** The upload the last request used (the most recently used entry of `#held`). */
  #last: UploadState | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastUse = 0;

  constructor(
    readonly storage: Storage,
    readonly maxHeld = 4,
    readonly idleMs = 2000,
  ) {}

  /** The upload state of a key, opened if needed, or null when no upload is in progress. */
  upload(paths: KeyPaths): UploadState | null {
    this.#lastUse = Date.now();
    // The hot path: the same upload as the last request (already most recently used).
    const last = this.#last;
    if (last !== null && last.paths === paths && this.storage.current(last)) return last;
    this.#last = null;
    const held = this.#held.get(paths.plan);
    if (held) {
      if (this.storage.current(held)) {
        // Most recently used last: the first entry is the one to evict.
        this.#held.delete(paths.plan);
        this.#held.set(paths.plan, held);
        this.#last = held;
        return held;
      }
      this.#held.delete(paths.plan);
      this.storage.release(held);
    }
    const state = this.storage.acquire(paths);
    if (state === null) return null;
    this.#held.set(paths.plan, state);
    while (this.#held.size > this.maxHeld) {
      const [oldest, evicted] = this.#held.entries().next().value!;
      this.#held.delete(oldest);
      this.storage.release(evicted);
    }
    this.#arm();
    this.#last = state;
    return state;
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    const check = () => {
      this.#timer = undefined;
      if (this.#held.size === 0) return;
      const idle = Date.now() - this.#lastUse;
      if (idle >= this.idleMs) this.releaseAll();
      else {
        const timer = setTimeout(check, this.idleMs - idle);
        Deno.unrefTimer(timer);
        this.#timer = timer;
      }
    };
    const timer = setTimeout(check, this.idleMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /**
   * The direct writer (direct_writer.ts) of the upload the last request used, if
   * it has one: the next block most likely goes there too.
   */
  get lastDirect(): DirectWriter | null {
    return this.#last?.direct ?? null;
  }

  /** Number of uploads held open. */
  get held(): number {
    return this.#held.size;
  }

  /** Lets every held upload go (the connection ended or went idle). */
  releaseAll(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const state of this.#held.values()) this.storage.release(state);
    this.#held.clear();
    this.#last = null;
  }
}
