/**
 * MD5 of a file while it is being written, on another thread: the writer reports
 * how far the file is complete from its start (`advance`), another thread reads
 * that prefix back (from the page cache) and hashes it, and `finish` returns the
 * digest once the writer is done. That thread is Deno's blocking pool through
 * FFI when libcrypto is usable (md5_background.ts: nothing to start), else a Web
 * Worker. The hash then costs the writer nothing, and
 * the digest is ready moments after the last block lands: on the server for an
 * upload, on the client for a download.
 *
 * The worker runs the registry's `transfer.hash-follow` service
 * (hash_follow_service.ts). When the
 * worker cannot start, {@linkcode startHashFollower} returns null and callers
 * hash the file at the end instead (same digest, later).
 *
 * @module
 */
import { spawn, type Spawned } from "../shared/runtime.ts";
import { type FollowInit, HASH_FOLLOW_SERVICE } from "./hash_follow_service.ts";
import { BackgroundFollower, backgroundMd5Available } from "./md5_background.ts";

/** Files smaller than this are hashed in line when a worker would do the hashing (its start-up costs more). */
export const FOLLOW_MIN_BYTES = 32 << 20;
/** Files smaller than this are hashed in line when the hash can run in the background (md5_background.ts). */
export const BACKGROUND_FOLLOW_MIN_BYTES = 256 << 10;

/** The smallest file worth a follower here: small with background hashing, large with a worker. */
export function followMinBytes(): number {
  return backgroundMd5Available() ? BACKGROUND_FOLLOW_MIN_BYTES : FOLLOW_MIN_BYTES;
}

/** A running follower: the writer says how far the file is complete; `finish` gives the MD5. */
export interface HashFollower {
  /** The file is complete up to `bytes` from its start. */
  advance(bytes: number): void;
  /** The MD5 of the first `size` bytes (the whole file). */
  finish(size: number): Promise<string>;
  /** Stops hashing (the transfer was abandoned). */
  stop(): void;
}

/** A follower in a Web Worker (when background hashing is unavailable). */
class WorkerFollower implements HashFollower {
  #reported = 0;
  #finished: Promise<string> | null = null;
  constructor(readonly worker: Spawned) {
    worker.done.catch(() => {});
  }

  /** The file is complete up to `bytes` from its start. */
  advance(bytes: number): void {
    // Messages of a few MiB each keep the worker busy without flooding it.
    if (bytes - this.#reported < 4 << 20) return;
    this.#reported = bytes;
    this.worker.channel.send({ upTo: bytes });
  }

  /** The MD5 of the first `size` bytes (the whole file). */
  finish(size: number): Promise<string> {
    this.#finished ??= (async () => {
      this.worker.channel.send({ upTo: size, finish: true });
      const digest = await this.worker.done;
      if (typeof digest !== "string") throw new Error("the hash worker returned no digest");
      return digest;
    })();
    return this.#finished;
  }

  /** Stops the worker (the upload was abandoned). */
  stop(): void {
    this.worker.kill();
  }
}

/**
 * Starts a follower for `path`: in the background (md5_background.ts) when
 * possible, else in a worker; null when neither can start.
 */
export async function startHashFollower(
  path: string,
  entry?: string | URL,
): Promise<HashFollower | null> {
  const background = BackgroundFollower.open(path);
  if (background) return background;
  try {
    const worker = await spawn("thread", {
      service: HASH_FOLLOW_SERVICE,
      id: 0,
      entry,
      init: { path } satisfies FollowInit,
      // A worker slow to start only delays the digest: the caller hashes at the end.
      startTimeout: 10_000,
    });
    return new WorkerFollower(worker);
  } catch {
    return null;
  }
}
