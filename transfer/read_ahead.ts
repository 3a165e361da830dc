/**
 * A large file to upload, read ahead block by block into a few buffers on
 * Deno's blocking pool (libc `pread`) and hashed there from the same buffers
 * (libcrypto `MD5_Update`), both through FFI symbols marked `nonblocking`; the
 * client sends each block from its buffer with its header and JSON written just
 * before it (one socket write, no copy). Used by a one-connection upload of whole
 * blocks in order (client.ts, blocks.ts `sendBlocksAhead`).
 *
 * Why: the fast upload is CPU-bound on two cores (both ends hash every byte;
 * the socket copies and the disk share the same cores). Before, the client
 * copied every byte twice out of the page cache, once into a packet on its main
 * thread and once into the hash follower's buffer (md5_background.ts), and hashed
 * it there. Now each byte is read once, off the main thread, and hashed while it
 * is still in the cache. The reading and hashing start before the connection
 * (with the fast plan's block size): when the plan turns out different (the
 * course's lockstep against its server, several connections),
 * {@linkcode ReadAhead.detach} leaves it a plain hash of the file, as
 * md5_background.ts's follower was. A forced small-block plan and a resume do
 * not start it.
 *
 * A memory map instead was measured slower here (PVM: page faults and TLB
 * misses through shadow page tables; the client's hash took 2.2 s of CPU
 * instead of 1.6 s).
 *
 * Available where md5_background.ts is (Linux, FFI granted, libcrypto); the
 * client otherwise keeps its portable path with the same bytes and digest.
 *
 * @module
 */
import {
  type BackgroundLibraries as Libraries,
  finalHex,
  loadBackgroundLibraries,
} from "./md5_background.ts";

function load(): Libraries | null {
  return Deno.env.get("TRANSFER_READ_AHEAD") === "off" ? null : loadBackgroundLibraries();
}

/** Smallest block worth reading ahead (smaller ones: the lockstep, hashed in the background instead). */
export const READ_AHEAD_MIN_BLOCK = 256 << 10;
/** Bytes before each block in its buffer, for the packet's header and JSON. */
export const READ_AHEAD_RESERVE = 4096;
/** Blocks read ahead (their buffers): 8 blocks of 2 MiB are 16 MiB. */
const SLOTS = 8;
const O_RDONLY_CLOEXEC = 0o2000000;

/** A block read: its bytes are `buffer.subarray(READ_AHEAD_RESERVE, READ_AHEAD_RESERVE + length)`. */
export interface AheadBlock {
  index: number;
  buffer: Uint8Array;
  length: number;
}

/** A buffer in use: free again once its block is hashed and (unless detached) sent. */
interface Slot extends AheadBlock {
  hashed: boolean;
  sent: boolean;
}

/** See the module documentation. */
export class ReadAhead {
  readonly #lib: Libraries;
  readonly #fd: number;
  readonly #ctx = new Uint8Array(128);
  readonly #free: Uint8Array[] = [];
  /** Blocks read, not yet taken, by index. */
  readonly #ready = new Map<number, Slot>();
  /** Blocks read, not yet hashed, in order. */
  readonly #toHash: Slot[] = [];
  #wakeTake: (() => void) | null = null;
  #wakeRead: (() => void) | null = null;
  #wakeHash: (() => void) | null = null;
  #readDone = false;
  #error: unknown = null;
  #detached = false;
  #stopped = false;
  #closed = false;
  #fdClosed = false;
  readonly #reading: Promise<void>;
  readonly #hashing: Promise<string>;

  private constructor(
    lib: Libraries,
    fd: number,
    readonly path: string,
    readonly size: number,
    readonly blockSize: number,
  ) {
    this.#lib = lib;
    this.#fd = fd;
    for (let i = 0; i < SLOTS; i++) {
      this.#free.push(new Uint8Array(READ_AHEAD_RESERVE + blockSize));
    }
    lib.crypto.symbols.MD5_Init(this.#ctx);
    // Reading and hashing run on two threads of the pool: the hash follows the reads.
    this.#reading = this.#readAll().catch((error) => this.#fail(error));
    this.#hashing = this.#hashAll().catch((error) => {
      this.#fail(error);
      throw error;
    }).finally(() => this.#reading.finally(() => this.#closeFd()));
    this.#hashing.catch(() => {});
  }

  /**
   * Starts reading and hashing `path` (`size` bytes, at least one) in blocks of
   * `blockSize`, or null where that is unavailable (`TRANSFER_READ_AHEAD=off` to
   * compare).
   */
  static open(path: string, size: number, blockSize: number): ReadAhead | null {
    if (size <= 0 || blockSize <= 0) return null;
    const lib = load();
    if (lib === null) return null;
    const fd = lib.libc.symbols.open(new TextEncoder().encode(path + "\0"), O_RDONLY_CLOEXEC);
    if (fd < 0) return null;
    return new ReadAhead(lib, fd, path, size, blockSize);
  }

  #fail(error: unknown): void {
    this.#error ??= error;
    this.#stopped = true;
    this.#ready.clear();
    this.#wakeAll();
  }

  #wakeAll(): void {
    for (const wake of [this.#wakeTake, this.#wakeRead, this.#wakeHash]) wake?.();
    this.#wakeTake = this.#wakeRead = this.#wakeHash = null;
  }

  #check(): void {
    if (this.#error !== null) throw this.#error;
    if (this.#stopped) throw new Error(`reading ${this.path} was stopped`);
  }

  async #readAll(): Promise<void> {
    const { libc } = this.#lib;
    const blocks = Math.ceil(this.size / this.blockSize);
    for (let index = 0; index < blocks; index++) {
      let buffer = this.#free.pop();
      while (buffer === undefined) {
        this.#check();
        await new Promise<void>((resolve) => (this.#wakeRead = resolve));
        buffer = this.#free.pop();
      }
      this.#check();
      const offset = index * this.blockSize;
      const length = Math.min(this.blockSize, this.size - offset);
      const body = buffer.subarray(READ_AHEAD_RESERVE, READ_AHEAD_RESERVE + length);
      let filled = 0;
      while (filled < length) {
        const n = Number(
          await libc.symbols.pread(
            this.#fd,
            body.subarray(filled),
            BigInt(length - filled),
            BigInt(offset + filled),
          ),
        );
        if (n <= 0) {
          throw new Error(`${this.path} changed while it was being sent (block ${index} is short)`);
        }
        filled += n;
      }
      const slot: Slot = { index, buffer, length, hashed: false, sent: this.#detached };
      this.#toHash.push(slot);
      if (!this.#detached) this.#ready.set(index, slot);
      const wakeHash = this.#wakeHash;
      const wakeTake = this.#wakeTake;
      this.#wakeHash = this.#wakeTake = null;
      wakeHash?.();
      wakeTake?.();
    }
    this.#readDone = true;
    const wake = this.#wakeHash;
    this.#wakeHash = null;
    wake?.();
  }

  async #hashAll(): Promise<string> {
    const { crypto } = this.#lib;
    for (;;) {
      const slot = this.#toHash.shift();
      if (slot === undefined) {
        if (this.#readDone) break;
        this.#check();
        await new Promise<void>((resolve) => (this.#wakeHash = resolve));
        continue;
      }
      const body = slot.buffer.subarray(READ_AHEAD_RESERVE, READ_AHEAD_RESERVE + slot.length);
      await crypto.symbols.MD5_Update(this.#ctx, body, BigInt(slot.length));
      slot.hashed = true;
      this.#recycle(slot);
    }
    this.#check();
    return finalHex(this.#lib, this.#ctx);
  }

  /** A slot hashed and sent is free for the next read. */
  #recycle(slot: Slot): void {
    if (!slot.hashed || !slot.sent || this.#closed) return;
    this.#free.push(slot.buffer);
    const wake = this.#wakeRead;
    this.#wakeRead = null;
    wake?.();
  }

  /** The MD5 of the whole file. */
  md5(): Promise<string> {
    return this.#hashing;
  }

  /**
   * Block `index`, read (blocks are taken in order from 0); give it back with
   * {@linkcode release} once sent.
   */
  async take(index: number): Promise<AheadBlock> {
    for (;;) {
      const slot = this.#ready.get(index);
      if (slot !== undefined) {
        this.#ready.delete(index);
        return slot;
      }
      this.#check();
      if (this.#detached) throw new Error(`reading ${this.path} was detached`);
      await new Promise<void>((resolve) => (this.#wakeTake = resolve));
    }
  }

  /** A taken block was sent: its buffer is free again once it is hashed. */
  release(block: AheadBlock): void {
    const slot = block as Slot;
    slot.sent = true;
    this.#recycle(slot);
  }

  /** No block will be taken: the file is only hashed from now on (buffers reused at once). */
  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    for (const slot of this.#ready.values()) {
      slot.sent = true;
      this.#recycle(slot);
    }
    this.#ready.clear();
  }

  /** Stops reading and hashing (the digest, if not ready, rejects) and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#stopped = true;
    this.#closed = true;
    this.#wakeAll();
    await this.#hashing.catch(() => {});
    await this.#reading;
  }

  #closeFd(): void {
    if (this.#fdClosed) return;
    this.#fdClosed = true;
    this.#lib.libc.symbols.close(this.#fd);
  }
}
