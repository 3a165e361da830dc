/**
 * MD5 of a file on Deno's blocking thread pool, with no worker: libc `pread` and
 * libcrypto `MD5_Update` called through FFI symbols marked `nonblocking`, so each
 * call runs on another thread and the calling thread only awaits it.
 *
 * Why not a Web Worker: `new Worker` blocks the thread that creates it until the
 * worker's runtime exists (50–170 ms here, measured), which stalled the server
 * at the first block of every large upload and the client before it connected.
 * These calls start at once and cost the event loop one promise per 4 MiB.
 *
 * Available only where md5.ts uses libcrypto (FFI granted, library loads); the
 * callers fall back to the worker of hash_follow.ts or to md5.ts in line, which
 * give the same digests.
 *
 * @module
 */
import { libcryptoMd5Available } from "./md5.ts";

const CRYPTO_SYMBOLS = {
  MD5_Init: { parameters: ["buffer"], result: "i32" },
  MD5_Update: { parameters: ["buffer", "buffer", "usize"], result: "i32", nonblocking: true },
  MD5_Final: { parameters: ["buffer", "buffer"], result: "i32" },
} as const;

const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize", nonblocking: true },
  close: { parameters: ["i32"], result: "i32" },
} as const;

/** libcrypto's MD5 and libc's file reads, the blocking ones marked `nonblocking`. */
export interface BackgroundLibraries {
  crypto: Deno.DynamicLibrary<typeof CRYPTO_SYMBOLS>;
  libc: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;
}
type Libraries = BackgroundLibraries;

let libraries: Libraries | null | undefined;

/** The libraries (loaded once), or null where hashing in the background is unavailable. */
export function loadBackgroundLibraries(): Libraries | null {
  return load();
}

function load(): Libraries | null {
  if (libraries !== undefined) return libraries;
  libraries = null;
  if (!libcryptoMd5Available() || Deno.build.os !== "linux") return null;
  for (const name of ["libcrypto.so.3", "libcrypto.so"]) {
    try {
      const crypto = Deno.dlopen(name, CRYPTO_SYMBOLS);
      libraries = { crypto, libc: Deno.dlopen("libc.so.6", LIBC_SYMBOLS) };
      break;
    } catch {
      // Try the next name.
    }
  }
  return libraries;
}

/** True when files can be hashed in the background here (see the module documentation). */
export function backgroundMd5Available(): boolean {
  return load() !== null;
}

/** `MD5_Final` of `ctx` as lowercase hex. */
export function finalHex(lib: Libraries, ctx: Uint8Array): string {
  const out = new Uint8Array(16);
  lib.crypto.symbols.MD5_Final(out, ctx);
  let hex = "";
  for (const byte of out) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** Bytes read and hashed per call: large enough that a call's cost is noise. */
const CHUNK = 4 << 20;
/** The least a follower hashes per call while the writer is still going. */
const STEP = 1 << 20;
const O_RDONLY_CLOEXEC = 0o2000000;

/**
 * Hashes a file's prefix as a writer completes it: `advance(bytes)` says the
 * file is complete up to `bytes`, `finish(size)` resolves with the digest of
 * the first `size` bytes. Same contract as hash_follow.ts's worker follower.
 */
export class BackgroundFollower {
  readonly #lib: Libraries;
  readonly #fd: number;
  readonly #ctx = new Uint8Array(128);
  readonly #buffer = new Uint8Array(CHUNK);
  #hashed = 0;
  #target = 0;
  #pump: Promise<void> | null = null;
  #error: unknown = null;
  #stopped = false;
  #closed = false;
  /** Set by `finish`: the last bytes are hashed however few they are. */
  #finishing = false;

  private constructor(lib: Libraries, fd: number) {
    this.#lib = lib;
    this.#fd = fd;
    lib.crypto.symbols.MD5_Init(this.#ctx);
  }

  /** A follower of `path`, or null when background hashing is unavailable or the file will not open. */
  static open(path: string): BackgroundFollower | null {
    const lib = load();
    if (lib === null) return null;
    const fd = lib.libc.symbols.open(new TextEncoder().encode(path + "\0"), O_RDONLY_CLOEXEC);
    if (fd < 0) return null;
    return new BackgroundFollower(lib, fd);
  }

  /** The file is complete up to `bytes` from its start. */
  advance(bytes: number): void {
    if (bytes > this.#target) this.#target = bytes;
    if (this.#pump === null && this.#target - this.#hashed >= STEP) this.#start();
  }

  #start(): void {
    this.#pump = this.#run().catch((error) => {
      this.#error ??= error;
    }).finally(() => {
      this.#pump = null;
      if (this.#stopped) this.#close();
    });
  }

  async #run(): Promise<void> {
    const { libc, crypto } = this.#lib;
    while (this.#hashed < this.#target && !this.#stopped && this.#error === null) {
      // Behind a writer of small blocks (the lockstep's 20 KiB), wait for a whole
      // step: a call per block cost the event loop two wake-ups per block.
      if (this.#target - this.#hashed < STEP && !this.#finishing) break;
      const want = Math.min(CHUNK, this.#target - this.#hashed);
      const n = Number(
        await libc.symbols.pread(this.#fd, this.#buffer, BigInt(want), BigInt(this.#hashed)),
      );
      if (n <= 0) throw new Error(`the file ended at ${this.#hashed} of ${this.#target} bytes`);
      await crypto.symbols.MD5_Update(this.#ctx, this.#buffer, BigInt(n));
      this.#hashed += n;
    }
  }

  /** The MD5 of the first `size` bytes (the whole file); the follower is done afterwards. */
  async finish(size: number): Promise<string> {
    if (this.#closed) throw new Error("the hash follower was stopped");
    this.#finishing = true;
    this.advance(size);
    this.#target = size;
    while (this.#hashed < size && this.#error === null) {
      if (this.#pump === null) this.#start();
      await this.#pump;
    }
    if (this.#error !== null) {
      this.stop();
      throw this.#error;
    }
    const hex = finalHex(this.#lib, this.#ctx);
    this.#stopped = true;
    this.#close();
    return hex;
  }

  /** Stops hashing and closes the file (once a call in flight has returned). */
  stop(): void {
    this.#stopped = true;
    if (this.#pump === null) this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lib.libc.symbols.close(this.#fd);
  }
}

/**
 * The MD5 of a whole file hashed in the background (see the module
 * documentation), or null when that is unavailable here.
 */
export async function md5FileInBackground(path: string, size: number): Promise<string | null> {
  const follower = BackgroundFollower.open(path);
  if (follower === null) return null;
  return await follower.finish(size);
}

/**
 * An MD5 fed from memory on the blocking pool: `update` hashes a buffer on
 * another thread (the caller keeps the buffer unchanged until it resolves, and
 * awaits one update before the next). Used where the bytes are already in hand
 * (direct_writer.ts), so nothing is read back from the file.
 */
export class BufferMd5 {
  readonly #lib: Libraries;
  readonly #ctx = new Uint8Array(128);

  private constructor(lib: Libraries) {
    this.#lib = lib;
    lib.crypto.symbols.MD5_Init(this.#ctx);
  }

  /** A hash on the blocking pool, or null when background hashing is unavailable here. */
  static create(): BufferMd5 | null {
    const lib = load();
    return lib === null ? null : new BufferMd5(lib);
  }

  /** Hashes `bytes` on another thread. */
  async update(bytes: Uint8Array): Promise<void> {
    await this.#lib.crypto.symbols.MD5_Update(this.#ctx, bytes, BigInt(bytes.length));
  }

  /** Lowercase hex digest; the hash cannot be used afterwards. */
  digest(): string {
    return finalHex(this.#lib, this.#ctx);
  }
}
