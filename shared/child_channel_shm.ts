/**
 * Shared memory between a parent and its child through `Deno.dlopen` (Linux):
 * one `memfd_create` region mapped by both, holding a byte ring per direction.
 * The writer copies bytes in and wakes the reader with a futex; the reader
 * first spins briefly (yielding to microtasks, so the rest of its program keeps
 * running) and then sleeps in a futex wait made on a helper thread
 * (`nonblocking` FFI), so the event loop is never blocked. The spin adapts: it
 * is kept while the peer answers within it (the two sides on different CPUs)
 * and shrinks to nothing while it does not (both on one CPU, where spinning
 * only delays the peer).
 *
 * The child opens the region as `/proc/<parent pid>/fd/<fd>`: nothing is left in
 * the file system, and the memory goes when both processes have unmapped it.
 *
 * @module
 */
import type { ByteSource } from "./reader.ts";

/** Bytes of each direction's ring (a power of two). */
export const SHM_RING_BYTES = 1 << 20;
const CONTROL_BYTES = 512;
const REGION_BYTES = CONTROL_BYTES + 2 * SHM_RING_BYTES;
// Int32 indices of one direction's control words (64-byte lines apart).
const HEAD = 0; // bytes written, modulo 2^32 (the reader's futex word)
const TAIL = 16; // bytes read, modulo 2^32 (the writer's futex word when full)
const CLOSED = 32; // the writer will write no more
const WANTS_SPACE = 48; // the writer sleeps on TAIL
/** Longest single futex sleep: a lost wake-up (or a dead peer) costs at most this. */
const SLEEP_NS = 50_000_000n;
/** Starting and largest spin before sleeping, microseconds. */
const SPIN_START_US = 40;
const SPIN_MAX_US = 80;

const SYMBOLS = {
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  syscall: {
    parameters: ["i64", "pointer", "i64", "i64", "pointer", "pointer", "i64"],
    result: "i64",
  },
  futex_sleep: {
    name: "syscall",
    parameters: ["i64", "pointer", "i64", "i64", "pointer", "pointer", "i64"],
    result: "i64",
    nonblocking: true,
  },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | null | undefined;
let unavailable = "";

const SYS_FUTEX: Partial<Record<string, bigint>> = { x86_64: 202n, aarch64: 98n };
const FUTEX_WAIT = 0n;
const FUTEX_WAKE = 1n;

/** Why shared memory cannot be used here, or `null` when it can. */
export function shmUnavailable(): string | null {
  if (libc === undefined) {
    libc = null;
    if (Deno.build.os !== "linux") unavailable = "shared memory needs Linux";
    else if (SYS_FUTEX[Deno.build.arch] === undefined) {
      unavailable = `no futex number for ${Deno.build.arch}`;
    } else {
      let granted = false;
      try {
        granted = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
      } catch {
        granted = false;
      }
      if (!granted) unavailable = "shared memory needs --allow-ffi";
      else {
        try {
          libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
        } catch (error) {
          unavailable = `libc could not be loaded (${error})`;
        }
      }
    }
  }
  return libc ? null : unavailable;
}

function cString(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0") as Uint8Array<ArrayBuffer>;
}

// The futex timeout, kept alive for helper threads that read it during a call.
const sleepTimespec = new BigInt64Array([0n, SLEEP_NS]);

/** One mapped region and both directions' rings in it. */
export class ShmRegion {
  readonly #lib: Libc;
  readonly #sys: bigint;
  readonly #ptr: Deno.PointerObject;
  readonly #fd: number;
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  #unmapped = false;
  #sleeping = new Set<Promise<unknown>>();

  private constructor(lib: Libc, fd: number, ptr: Deno.PointerObject) {
    this.#lib = lib;
    this.#sys = SYS_FUTEX[Deno.build.arch]!;
    this.#fd = fd;
    this.#ptr = ptr;
    const buffer = Deno.UnsafePointerView.getArrayBuffer(ptr, REGION_BYTES);
    this.#words = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
    this.#bytes = new Uint8Array(buffer);
  }

  /** The parent's side: a new region, and the file descriptor the child opens. */
  static create(): ShmRegion {
    const why = shmUnavailable();
    if (why) throw new Error(why);
    const lib = libc!;
    const fd = lib.memfd_create(cString("netconc-channel"), 1 /* MFD_CLOEXEC */);
    if (fd < 0) throw new Error("memfd_create failed");
    if (lib.ftruncate(fd, BigInt(REGION_BYTES)) !== 0) {
      lib.close(fd);
      throw new Error("ftruncate of the shared region failed");
    }
    return ShmRegion.#map(lib, fd);
  }

  /** The child's side: opens the parent's region. */
  static open(parentPid: number, fd: number): ShmRegion {
    const why = shmUnavailable();
    if (why) throw new Error(why);
    const lib = libc!;
    const own = lib.open(cString(`/proc/${parentPid}/fd/${fd}`), 2 /* O_RDWR */ | 0o2000000, 0);
    if (own < 0) throw new Error(`cannot open the parent's shared region (pid ${parentPid})`);
    return ShmRegion.#map(lib, own);
  }

  static #map(lib: Libc, fd: number): ShmRegion {
    // PROT_READ|PROT_WRITE, MAP_SHARED
    const ptr = lib.mmap(null, BigInt(REGION_BYTES), 3, 1, fd, 0n);
    if (ptr === null || Deno.UnsafePointer.value(ptr) === 0xffff_ffff_ffff_ffffn) {
      lib.close(fd);
      throw new Error("mmap of the shared region failed");
    }
    return new ShmRegion(lib, fd, ptr);
  }

  /** The descriptor to hand to the child (valid in this process). */
  get fd(): number {
    return this.#fd;
  }

  #address(index: number): Deno.PointerObject {
    return Deno.UnsafePointer.offset(this.#ptr, index * 4)!;
  }

  /** Wakes every sleeper on a control word. */
  wake(index: number): void {
    if (this.#unmapped) return;
    this.#lib.syscall(this.#sys, this.#address(index), FUTEX_WAKE, 0x7fffffffn, null, null, 0n);
  }

  /** Sleeps (on a helper thread) until the word is no longer `seen`, woken, or 50 ms pass. */
  async sleep(index: number, seen: number): Promise<void> {
    if (this.#unmapped) return;
    const call = this.#lib.futex_sleep(
      this.#sys,
      this.#address(index),
      FUTEX_WAIT,
      BigInt(seen),
      Deno.UnsafePointer.of(sleepTimespec),
      null,
      0n,
    );
    this.#sleeping.add(call);
    try {
      await call;
    } finally {
      this.#sleeping.delete(call);
    }
  }

  load(index: number): number {
    return this.#unmapped ? 0 : Atomics.load(this.#words, index);
  }

  store(index: number, value: number): void {
    if (!this.#unmapped) Atomics.store(this.#words, index, value | 0);
  }

  /** A direction's ring bytes. */
  ring(direction: 0 | 1): Uint8Array {
    return this.#bytes.subarray(
      CONTROL_BYTES + direction * SHM_RING_BYTES,
      CONTROL_BYTES + (direction + 1) * SHM_RING_BYTES,
    );
  }

  get unmapped(): boolean {
    return this.#unmapped;
  }

  /** Wakes this side's sleepers, waits for them, then unmaps (idempotent). */
  async dispose(): Promise<void> {
    if (this.#unmapped) return;
    for (const index of [HEAD, TAIL, 64 + HEAD, 64 + TAIL]) this.wake(index);
    while (this.#sleeping.size > 0) {
      await Promise.allSettled([...this.#sleeping]);
    }
    if (this.#unmapped) return;
    this.#unmapped = true;
    this.#lib.munmap(this.#ptr, BigInt(REGION_BYTES));
    this.#lib.close(this.#fd);
  }
}

/**
 * One side of the region: writes into one direction and reads the other.
 * `read` is a {@linkcode ByteSource}, so a `BufferedReader` can parse packets.
 */
export class ShmEndpoint implements ByteSource {
  readonly #region: ShmRegion;
  readonly #out: Uint8Array;
  readonly #in: Uint8Array;
  readonly #o: number;
  readonly #i: number;
  #pending: Uint8Array[] = [];
  #flushing = false;
  #stopped = false;
  #spinUs = SPIN_START_US;
  #sleeps = 0;
  /** Called when a write fails for good (the peer stopped reading). */
  onError: (error: Error) => void = () => {};

  constructor(region: ShmRegion, side: "parent" | "child") {
    this.#region = region;
    const out = side === "parent" ? 0 : 1;
    const inn = side === "parent" ? 1 : 0;
    this.#out = region.ring(out);
    this.#in = region.ring(inn);
    this.#o = out * 64;
    this.#i = inn * 64;
  }

  /** Bytes the peer may still write before this side reads. */
  #free(): number {
    const r = this.#region;
    const used = (r.load(this.#o + HEAD) - r.load(this.#o + TAIL)) >>> 0;
    return SHM_RING_BYTES - used;
  }

  /** Copies as much of `bytes` as fits; returns the count. */
  #put(bytes: Uint8Array): number {
    const r = this.#region;
    const n = Math.min(bytes.length, this.#free());
    if (n === 0) return 0;
    const head = r.load(this.#o + HEAD) >>> 0;
    const at = head & (SHM_RING_BYTES - 1);
    const first = Math.min(n, SHM_RING_BYTES - at);
    this.#out.set(bytes.subarray(0, first), at);
    if (n > first) this.#out.set(bytes.subarray(first, n), 0);
    r.store(this.#o + HEAD, head + n);
    r.wake(this.#o + HEAD);
    return n;
  }

  /** Queues bytes for the peer, in order; never blocks. */
  write(bytes: Uint8Array): void {
    if (this.#stopped || this.#closeAfterFlush || this.#region.unmapped) return;
    if (this.#pending.length === 0) {
      const n = this.#put(bytes);
      if (n === bytes.length) return;
      bytes = bytes.slice(n);
    }
    this.#pending.push(bytes);
    if (!this.#flushing) this.#flush();
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    const r = this.#region;
    try {
      while (this.#pending.length > 0 && !this.#stopped && !r.unmapped) {
        const head = this.#pending[0];
        const n = this.#put(head);
        if (n === head.length) this.#pending.shift();
        else {
          this.#pending[0] = head.subarray(n);
          const tail = r.load(this.#o + TAIL);
          r.store(this.#o + WANTS_SPACE, 1);
          if (this.#free() === 0) await r.sleep(this.#o + TAIL, tail);
        }
      }
      if (this.#pending.length === 0 && this.#closeAfterFlush) this.#markClosed();
    } catch (error) {
      this.#pending = [];
      this.onError(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.#flushing = false;
    }
  }

  #closeAfterFlush = false;

  #markClosed(): void {
    this.#region.store(this.#o + CLOSED, 1);
    this.#region.wake(this.#o + HEAD);
  }

  /** No more writes: the peer's reads end (with `null`) after the queued bytes. */
  closeWrite(): void {
    if (this.#closeAfterFlush) return;
    this.#closeAfterFlush = true;
    if (!this.#flushing && this.#pending.length === 0) this.#markClosed();
  }

  /**
   * The peer is gone: writes are dropped, and reads return what it wrote before
   * it went, then `null`.
   */
  peerGone(): void {
    this.#stopped = true;
    this.#pending = [];
    this.#region.wake(this.#i + HEAD);
    this.#region.wake(this.#o + TAIL);
  }

  /** Copies available bytes into `p`; waits when there are none; `null` at the end. */
  async read(p: Uint8Array): Promise<number | null> {
    const r = this.#region;
    for (;;) {
      if (r.unmapped) return null;
      const head = r.load(this.#i + HEAD);
      const tail = r.load(this.#i + TAIL) >>> 0;
      const available = (head - tail) >>> 0;
      if (available > 0) {
        const n = Math.min(available, p.length);
        const at = tail & (SHM_RING_BYTES - 1);
        const first = Math.min(n, SHM_RING_BYTES - at);
        p.set(this.#in.subarray(at, at + first));
        if (n > first) p.set(this.#in.subarray(0, n - first), first);
        r.store(this.#i + TAIL, tail + n);
        if (r.load(this.#i + WANTS_SPACE) !== 0) {
          r.store(this.#i + WANTS_SPACE, 0);
          r.wake(this.#i + TAIL);
        }
        return n;
      }
      if (r.load(this.#i + CLOSED) !== 0 || this.#stopped) return null;
      if (await this.#spin(head)) continue;
      await r.sleep(this.#i + HEAD, head);
    }
  }

  /**
   * Spins up to the current budget for HEAD to move, yielding to microtasks
   * between looks (the code that will send the next message runs there).
   */
  async #spin(head: number): Promise<boolean> {
    const r = this.#region;
    let budget = this.#spinUs;
    // Every 64th sleep, try a short spin again (placement may have changed).
    if (budget === 0 && (++this.#sleeps & 63) === 0) budget = 10;
    if (budget === 0) return false;
    const start = performance.now();
    const until = start + budget / 1000;
    let looks = 0;
    do {
      await null;
      if (r.load(this.#i + HEAD) !== head || this.#stopped) {
        const took = (performance.now() - start) * 1000;
        this.#spinUs = Math.min(SPIN_MAX_US, Math.max(this.#spinUs, 2 * took, 10));
        return true;
      }
    } while ((++looks & 15) !== 0 || performance.now() < until);
    this.#spinUs = this.#spinUs < 5 ? 0 : this.#spinUs / 2;
    return false;
  }
}
