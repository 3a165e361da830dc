/**
 * The hash follower's worker service (`transfer.hash-follow` in the registry):
 * used when MD5 cannot run in the background through FFI (md5_background.ts).
 *
 * @module
 */
import { createMd5 } from "./md5.ts";
import type { Channel } from "../shared/runtime.ts";

/** The service's name in the registry. */
export const HASH_FOLLOW_SERVICE = "transfer.hash-follow";

/** What the service is started with. */
export interface FollowInit {
  path: string;
}

/**
 * The worker side of a follower: hashes the file's prefix as `{ upTo }` messages
 * arrive and returns the digest after `{ upTo, finish: true }`.
 */
export async function hashFollowService(channel: Channel, init: unknown): Promise<string | null> {
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
}
