/**
 * Small file helpers of the server's storage and the client: positioned reads,
 * whole writes, existence and inode checks, and the MD5 of a whole file (in the
 * background through FFI when it can, md5_background.ts).
 *
 * @module
 */
import { createMd5 } from "./md5.ts";
import { backgroundMd5Available, md5FileInBackground } from "./md5_background.ts";

/** Runs a file operation; false when the file was not there (other errors propagate). */
export function ifPresent(operation: () => unknown): boolean {
  try {
    operation();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** True when `path` exists. */
export function exists(path: string): boolean {
  return ifPresent(() => Deno.statSync(path));
}

export function inodeOf(path: string): number | null {
  try {
    return Deno.statSync(path).ino ?? null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

export function writeAllSync(file: Deno.FsFile, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
}

export function closeQuietly(file: Deno.FsFile): void {
  try {
    file.close();
  } catch {
    // Already closed.
  }
}

/** Reads up to `length` bytes at `position` (fewer only at the end of the file). */
export function readAtSync(
  file: Deno.FsFile,
  position: number,
  length: number,
  into?: Uint8Array,
): Uint8Array {
  const out = into && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
  file.seekSync(position, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = file.readSync(out.subarray(filled));
    if (n === null || n === 0) break;
    filled += n;
  }
  return filled === length ? out : out.subarray(0, filled);
}

/** MD5 of a whole file, read in 1 MiB pieces. */
export async function md5File(path: string): Promise<string> {
  if (backgroundMd5Available()) {
    // On another thread (md5_background.ts): this one stays free for the sockets.
    const digest = await md5FileInBackground(path, (await Deno.stat(path)).size);
    if (digest !== null) return digest;
  }
  const hash = createMd5();
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(1 << 20);
  for (;;) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest();
}
