/**
 * MD5 of a file while it is being written, on another thread: the writer reports
 * how far the file is complete from its start (`advance`), a Web Worker reads
 * that prefix back (from the page cache) and hashes it, and `finish` returns the
 * digest once the writer is done. The hash then costs the writer nothing, and
 * the digest is ready moments after the last block lands: on the server for an
 * upload, on the client for a download.
 *
 * The worker runs the `transfer.hash-follow` service through shared/runtime.ts,
 * so the entry module (transfer/main.ts) must import this module. When the
 * worker cannot start, {@linkcode startHashFollower} returns null and callers
 * hash the file at the end instead (same digest, later).
 *
 * @module
 */
import { createMd5 } from "./md5.ts";
import { defineService, spawn, type Spawned } from "../shared/runtime.ts";

/** Files smaller than this are hashed in line (a worker's start-up costs more). */
export const FOLLOW_MIN_BYTES = 32 << 20;

interface FollowInit {
  path: string;
}

defineService("transfer.hash-follow", async (channel, init) => {
  const { path } = init as FollowInit;
  const hash = createMd5();
  using file = Deno.openSync(path, { read: true });
  const buffer = new Uint8Array(4 << 20);
  let hashed = 0;
  for (;;) {
    const message = await channel.receive();
    if (message === null) return null;
    const { upTo, finish } = message.data as { upTo: number; finish?: boolean };
    while (hashed < upTo) {
      const want = Math.min(buffer.length, upTo - hashed);
      file.seekSync(hashed, Deno.SeekMode.Start);
      const n = file.readSync(buffer.subarray(0, want));
      if (n === null || n === 0) throw new Error(`${path} ended at ${hashed} of ${upTo} bytes`);
      hash.update(buffer.subarray(0, n));
      hashed += n;
    }
    if (finish) return hash.digest();
  }
});

/** A running follower; see {@linkcode startHashFollower}. */
export class HashFollower {
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

/** Starts a follower for `path`, or returns null when no worker can start. */
export async function startHashFollower(
  path: string,
  entry?: string | URL,
): Promise<HashFollower | null> {
  try {
    const worker = await spawn("thread", {
      service: "transfer.hash-follow",
      id: 0,
      entry,
      init: { path } satisfies FollowInit,
      // A worker slow to start only delays the digest: the caller hashes at the end.
      startTimeout: 10_000,
    });
    return new HashFollower(worker);
  } catch {
    return null;
  }
}
