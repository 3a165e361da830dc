/**
 * Writes a large file that arrives block by block with `O_DIRECT`, and hashes
 * the blocks that arrive in order from the same memory, both on Deno's blocking
 * pool (libc `pwrite` and libcrypto `MD5_Update` through FFI symbols marked
 * `nonblocking`). The server's upload (storage.ts) and the client's download
 * (client.ts, blocks.ts) use it.
 *
 * Why: a buffered write copies every byte into the page cache, and on this VM
 * (PVM, free page reporting on) a page the guest freed more than about 2 s
 * before faults to the host on first touch: that copy was the writer's largest
 * cost (perf of the downloading client: 50 % of its samples in
 * `copy_folio_from_iter_atomic`, 2.7–3.1 s of system time per GiB; the
 * server's main thread 2.4–2.9 s for a 1 GiB upload). With `O_DIRECT` the disk
 * reads the ring's buffers, which are reused and stay backed: 1 GiB with
 * `dd bs=2M oflag=direct conv=fdatasync` took 0.2 s of system time and 1.6 s,
 * against 1.5–1.8 s and 2.1–2.4 s buffered (same run). `transfer bench
 * --defaults` (every step from the same idle memory state), same run: default
 * upload 9.1 s buffered against 4.0 s direct, download 5.1–5.8 s against
 * 2.7–3.4 s. Only when freed pages are still backed (a step right after
 * another freed some) is the buffered upload as fast (2.7–2.9 s against
 * 3.4–4.4 s).
 *
 * The hash follower of hash_follow.ts would have nothing to read back from the
 * cache, so the bytes are hashed from the buffer they are written from.
 *
 * A block is copied into one of a few aligned buffers (the ring) and the call
 * returns: the receiving thread goes on reading the socket while the disk and
 * the hash work on other threads. `room()` waits for a free buffer (the
 * back-pressure), `drain()` for every write. Lengths that are not a multiple of
 * 4096 (the last block) go through an ordinary descriptor. The caller still
 * syncs the file once at the end (the device's cache), as `dd conv=fdatasync`.
 *
 * Used only where it gives the same bytes and digest as the buffered path
 * (storage.ts falls back to that): Linux x86_64 or aarch64, FFI granted,
 * libcrypto loaded, a file system that accepts `O_DIRECT`, block sizes that are
 * multiples of 4096 from {@linkcode MIN_DIRECT_BLOCK} to
 * {@linkcode MAX_DIRECT_BLOCK}, and at most
 * {@linkcode MAX_LIVE_WRITERS} at once per process (each holds its ring).
 *
 * @module
 */
import { BufferMd5 } from "./md5_background.ts";
import { type FileLibc, loadLibc } from "./flusher.ts";

/** `O_DIRECT` differs between architectures; 0 where it is not known. */
function directFlag(): number {
  if (Deno.build.arch === "x86_64") return 0o40000;
  if (Deno.build.arch === "aarch64") return 0o200000;
  return 0;
}

/** Alignment of buffers, offsets and lengths for `O_DIRECT` (a page). */
export const DIRECT_ALIGN = 4096;
/**
 * Smallest block written directly: each block costs a write and a hash call on
 * the blocking pool, and a lockstep of 20 KiB blocks would wait on the thread
 * hand-offs (it stays buffered, its hash batched by the follower).
 */
export const MIN_DIRECT_BLOCK = 256 << 10;
/** Largest block written directly (the ring holds at least two). */
export const MAX_DIRECT_BLOCK = 16 << 20;
/** Files smaller than this are written through the page cache (not worth a ring). */
export const DIRECT_MIN_BYTES = 8 << 20;
/** Writers alive at once in one process (their rings: at most 64 MiB). */
export const MAX_LIVE_WRITERS = 2;
/**
 * Bytes written between `fdatasync` calls on the blocking pool: the device's
 * cache is flushed as the file arrives, so the caller's final sync (which the
 * last reply waits for) has little left, as the flusher's `sync_file_range`
 * does for buffered writes.
 */
export const DIRECT_SYNC_EVERY_BYTES = 64 << 20;
/** Bytes of one ring (2 to 16 buffers of one block each; 48 MiB measured no faster than 32). */
const RING_BYTES = 32 << 20;

const O_WRONLY_CLOEXEC = 0o1 | 0o2000000;

let live = 0;

/** A buffer of `size` bytes whose address is a multiple of {@linkcode DIRECT_ALIGN}. */
function alignedBuffer(size: number): Uint8Array {
  const raw = new Uint8Array(size + DIRECT_ALIGN);
  const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(raw)));
  const skip = Number(
    (BigInt(DIRECT_ALIGN) - (address % BigInt(DIRECT_ALIGN))) %
      BigInt(DIRECT_ALIGN),
  );
  return raw.subarray(skip, skip + size);
}

/** See the module documentation. */
export class DirectWriter {
  readonly #lib: FileLibc;
  readonly #path: Uint8Array;
  readonly #direct: number;
  #buffered = -1;
  readonly #blockSize: number;
  readonly #free: Uint8Array[] = [];
  /** Buffers lent out by {@linkcode lend}, by their memory. */
  readonly #lent = new Map<ArrayBufferLike, Uint8Array>();
  readonly #waiting: (() => void)[] = [];
  readonly #pending = new Set<Promise<void>>();
  #md5: BufferMd5 | null;
  #hashed: Promise<void> = Promise.resolve();
  #error: unknown = null;
  #unsynced = 0;
  #syncing: Promise<void> | null = null;
  #closed = false;
  #released = false;

  private constructor(
    lib: FileLibc,
    path: Uint8Array,
    fd: number,
    blockSize: number,
    md5: BufferMd5,
  ) {
    this.#lib = lib;
    this.#path = path;
    this.#direct = fd;
    this.#blockSize = blockSize;
    this.#md5 = md5;
    const slots = Math.max(2, Math.min(16, Math.floor(RING_BYTES / blockSize)));
    for (let i = 0; i < slots; i++) this.#free.push(alignedBuffer(blockSize));
    live++;
  }

  /**
   * A writer for the existing file `path` written in blocks of `blockSize`, or
   * null where direct writing does not apply (see the module documentation).
   */
  static open(path: string, blockSize: number): DirectWriter | null {
    if (blockSize % DIRECT_ALIGN !== 0) return null;
    if (blockSize < MIN_DIRECT_BLOCK || blockSize > MAX_DIRECT_BLOCK) return null;
    // `TRANSFER_DIRECT=off` keeps every write buffered (to compare the two).
    if (Deno.env.get("TRANSFER_DIRECT") === "off") return null;
    if (live >= MAX_LIVE_WRITERS) return null;
    const lib = directFlag() === 0 ? null : loadLibc();
    if (lib === null) return null;
    const md5 = BufferMd5.create();
    if (md5 === null) return null;
    const name = new TextEncoder().encode(path + "\0");
    // Fails (EINVAL) on a file system without O_DIRECT, such as tmpfs.
    const fd = lib.symbols.open(name, O_WRONLY_CLOEXEC | directFlag(), 0);
    if (fd < 0) return null;
    return new DirectWriter(lib, name, fd, blockSize, md5);
  }

  /** True while every block written so far was hashed in order (the digest is ready). */
  get hashing(): boolean {
    return this.#md5 !== null;
  }

  /** Blocks stopped arriving in order: the caller hashes the file at the end. */
  stopHashing(): void {
    this.#md5 = null;
  }

  /** Bytes of one block (of one buffer of the ring). */
  get blockSize(): number {
    return this.#blockSize;
  }

  /**
   * Resolves when a buffer of the ring is free (call before {@linkcode write}); at
   * once for `data` lent by {@linkcode lend} (it is the buffer).
   */
  async room(data?: Uint8Array): Promise<void> {
    if (data !== undefined && this.#isLent(data)) return;
    while (this.#free.length === 0 && !this.#closed) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  /**
   * A free buffer of the ring for the next block's `length` bytes (a socket reads
   * the block straight into it: no copy), or null when none is free or `length`
   * does not fit. {@linkcode write} of (a prefix of) it takes it back without a
   * copy; {@linkcode giveBack} returns it unused.
   */
  lend(length: number): Uint8Array | null {
    if (this.#closed || length > this.#blockSize || length <= 0) return null;
    const buffer = this.#free.pop();
    if (buffer === undefined) return null;
    this.#lent.set(buffer.buffer, buffer);
    return buffer.subarray(0, length);
  }

  /** Returns a buffer from {@linkcode lend} that no {@linkcode write} took (no-op otherwise). */
  giveBack(data: Uint8Array): void {
    if (!this.#isLent(data)) return;
    const buffer = this.#lent.get(data.buffer)!;
    this.#lent.delete(data.buffer);
    if (this.#closed) return;
    this.#free.push(buffer);
    this.#waiting.shift()?.();
  }

  #isLent(data: Uint8Array): boolean {
    return this.#lent.get(data.buffer)?.byteOffset === data.byteOffset;
  }

  /**
   * Copies `data` (at most one block) and starts writing it at `offset` (a
   * multiple of the block size), hashing it next when `hash` is true. `written`
   * runs once it is in the file. Returns at once: `data` may be reused, except
   * a buffer from {@linkcode lend}, which is taken as it is (no copy) and
   * belongs to the writer again.
   */
  write(offset: number, data: Uint8Array, hash: boolean, written: () => void): void {
    if (this.#closed) throw new Error("the upload's file was closed");
    if (data.length > this.#blockSize) throw new Error("a block larger than the plan's");
    let buffer: Uint8Array;
    if (this.#isLent(data)) {
      buffer = this.#lent.get(data.buffer)!;
      this.#lent.delete(data.buffer);
    } else {
      // With no free buffer (several connections on one upload), one more for this block.
      buffer = this.#free.pop() ?? alignedBuffer(this.#blockSize);
      buffer.set(data);
    }
    const view = buffer.subarray(0, data.length);
    const hashing = hash ? this.#md5 : null;
    if (!hash) this.#md5 = null;
    const hashed = hashing === null ? null : this.#hashed.then(() => hashing.update(view));
    if (hashed) this.#hashed = hashed;
    const job: Promise<void> = Promise.all([this.#writeAll(view, offset), hashed])
      .then(() => {
        if (this.#closed) return;
        written();
        this.#wrote(view.length);
      })
      .catch((error) => {
        this.#error ??= error;
      })
      .finally(() => {
        this.#pending.delete(job);
        this.#free.push(buffer);
        this.#waiting.shift()?.();
        if (this.#closed && this.#pending.size === 0) this.#release();
      });
    this.#pending.add(job);
  }

  async #writeAll(view: Uint8Array, offset: number): Promise<void> {
    let done = 0;
    while (done < view.length) {
      const rest = view.subarray(done);
      // O_DIRECT needs whole pages; the last block's tail goes through the page cache.
      const fd = rest.length % DIRECT_ALIGN === 0 && done % DIRECT_ALIGN === 0
        ? this.#direct
        : this.#bufferedFd();
      const n = Number(
        await this.#lib.symbols.pwrite(fd, rest, BigInt(rest.length), BigInt(offset + done)),
      );
      if (n <= 0) throw new Error(`writing the upload's file failed at byte ${offset + done}`);
      done += n;
    }
  }

  /** Starts an `fdatasync` every {@linkcode DIRECT_SYNC_EVERY_BYTES}, one at a time. */
  #wrote(bytes: number): void {
    this.#unsynced += bytes;
    if (this.#unsynced < DIRECT_SYNC_EVERY_BYTES || this.#syncing !== null) return;
    this.#unsynced = 0;
    const syncing: Promise<void> = this.#lib.symbols.fdatasync(this.#direct)
      .then(() => {})
      .catch(() => {}) // Only an early start: the caller's final sync reports errors.
      .finally(() => {
        this.#pending.delete(syncing);
        this.#syncing = null;
        if (this.#closed && this.#pending.size === 0) this.#release();
      });
    this.#syncing = syncing;
    this.#pending.add(syncing);
  }

  #bufferedFd(): number {
    if (this.#buffered < 0) {
      this.#buffered = this.#lib.symbols.open(this.#path, O_WRONLY_CLOEXEC, 0);
      if (this.#buffered < 0) throw new Error("cannot reopen the upload's file");
    }
    return this.#buffered;
  }

  /** Waits for every write started; throws the first error of any. */
  async drain(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
    if (this.#error !== null) throw this.#error;
  }

  /** The MD5 of every block written (all in order); call after {@linkcode drain}. */
  async digest(): Promise<string> {
    const md5 = this.#md5;
    if (md5 === null) throw new Error("the blocks did not arrive in order");
    await this.drain();
    this.#md5 = null;
    return md5.digest();
  }

  /** Stops: the descriptors close once the writes in flight end (their `written` is skipped). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const wake of this.#waiting.splice(0)) wake();
    if (this.#pending.size === 0) this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#lib.symbols.close(this.#direct);
    if (this.#buffered >= 0) this.#lib.symbols.close(this.#buffered);
    this.#free.length = 0;
    this.#lent.clear();
    live--;
  }
}
