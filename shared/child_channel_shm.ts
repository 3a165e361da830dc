/**
 * Shared memory between a parent and its child through `Deno.dlopen` (Linux):
 * one `memfd_create` region mapped by both, holding a byte ring per direction.
 * The writer copies bytes in. A reader with nothing to read waits in up to
 * three steps, each announced by a flag in the region so the writer knows how
 * to wake it:
 *
 * 1. spin (yielding to microtasks, so the rest of its program keeps running),
 *    only when the two sides' CPU masks hold two CPUs (else the spinner only
 *    keeps the peer off the CPU);
 * 2. nap in a futex wait on this thread, a few hundred microseconds at most:
 *    the kernel hands the CPU to the peer and back as in C, with no event-loop
 *    turn; the event loop is held meanwhile, so the nap budget shrinks to
 *    nothing while naps end empty (an idle peer) and is tried again now and then;
 * 3. sleep on a Unix socket, its doorbell (the writer sends one byte), in the
 *    event loop, as long as it takes.
 *
 * Measured first and dropped: sleeping in a futex wait on a helper thread
 * (`nonblocking` FFI) instead of steps 2 and 3. Each hop then wakes two threads
 * per side, and under CPU pressure every extra wake-up waits for a CPU: the
 * same p50 as the socket with a p99 seven times longer.
 *
 * The child opens the region as `/proc/<parent pid>/fd/<fd>`: nothing is left in
 * the file system, and the memory goes when both processes have unmapped it.
 * The doorbell's end is the peer's end.
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
const READER_SLEEPS = 40; // the reader waits: 1 for the doorbell, 2 in a futex nap
const DOORBELL = 1;
const FUTEX = 2;
const WANTS_SPACE = 48; // the writer waits for the doorbell (ring full)
// Each side's CPU mask (256 CPUs) for the spin decision, at these Int32 indices.
const AFFINITY = [56, 120] as const; // the free end of each direction's block
const AFFINITY_WORDS = 8;
/** Longest single doorbell wait: a lost ring (which the flags rule out) costs at most this. */
const SLEEP_MS = 50;
/** Starting and largest spin before sleeping, microseconds. */
const SPIN_START_US = 40;
const SPIN_MAX_US = 80;
/** Starting and largest synchronous futex nap before the doorbell, microseconds. */
const NAP_START_US = 200;
const NAP_MAX_US = 400;
const SYS_FUTEX: Partial<Record<string, bigint>> = { x86_64: 202n, aarch64: 98n };

const SYMBOLS = {
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  sched_getaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  syscall: {
    parameters: ["i64", "pointer", "i64", "i64", "pointer", "pointer", "i64"],
    result: "i64",
  },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | null | undefined;
let unavailable = "";

/** Why shared memory cannot be used here, or `null` when it can. */
export function shmUnavailable(): string | null {
  if (libc === undefined) {
    libc = null;
    if (Deno.build.os !== "linux") unavailable = "shared memory needs Linux";
    else if (SYS_FUTEX[Deno.build.arch] === undefined) {
      unavailable = `shared memory: no futex number for ${Deno.build.arch}`;
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

const napTimespec = new BigInt64Array(2);

/** One mapped region and both directions' rings in it. */
export class ShmRegion {
  readonly #lib: Libc;
  readonly #ptr: Deno.PointerObject;
  readonly #fd: number;
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  #unmapped = false;

  private constructor(lib: Libc, fd: number, ptr: Deno.PointerObject) {
    this.#lib = lib;
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

  load(index: number): number {
    return this.#unmapped ? 0 : Atomics.load(this.#words, index);
  }

  store(index: number, value: number): void {
    if (!this.#unmapped) Atomics.store(this.#words, index, value | 0);
  }

  /** Swaps a control word (a full barrier: the flag handshakes rely on it). */
  exchange(index: number, value: number): number {
    return this.#unmapped ? 0 : Atomics.exchange(this.#words, index, value);
  }

  /**
   * Publishes the calling thread's CPU mask for `side` and says whether the two
   * sides may run at the same moment (their masks hold two CPUs or more between
   * them): only then can spinning see an answer before the spinner yields its CPU.
   */
  updateAffinity(side: 0 | 1): boolean {
    if (this.#unmapped) return false;
    const mask = new Int32Array(AFFINITY_WORDS);
    if (
      this.#lib.sched_getaffinity(0, BigInt(mask.byteLength), new Uint8Array(mask.buffer)) !== 0
    ) {
      mask.fill(-1);
    }
    for (let w = 0; w < AFFINITY_WORDS; w++) {
      Atomics.store(this.#words, AFFINITY[side] + w, mask[w]);
    }
    let cpus = 0;
    for (let w = 0; w < AFFINITY_WORDS; w++) {
      let bits = (Atomics.load(this.#words, AFFINITY[0] + w) |
        Atomics.load(this.#words, AFFINITY[1] + w)) >>> 0;
      while (bits !== 0) {
        bits &= bits - 1;
        cpus++;
      }
    }
    return cpus >= 2;
  }

  /** Wakes a futex sleeper on a control word. */
  wake(index: number): void {
    if (this.#unmapped) return;
    const address = Deno.UnsafePointer.offset(this.#ptr, index * 4);
    this.#lib.syscall(SYS_FUTEX[Deno.build.arch]!, address, 1n, 1n, null, null, 0n);
  }

  /**
   * Sleeps in this thread (blocking the event loop) while the word is `seen`, at
   * most `us` microseconds; true when it changed.
   */
  nap(index: number, seen: number, us: number): boolean {
    if (this.#unmapped) return false;
    napTimespec[1] = BigInt(Math.round(us * 1000));
    const address = Deno.UnsafePointer.offset(this.#ptr, index * 4);
    this.#lib.syscall(
      SYS_FUTEX[Deno.build.arch]!,
      address,
      0n,
      BigInt(seen),
      Deno.UnsafePointer.of(napTimespec),
      null,
      0n,
    );
    return Atomics.load(this.#words, index) !== seen;
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

  /** Unmaps the region (idempotent); later reads see the end, writes are dropped. */
  dispose(): void {
    if (this.#unmapped) return;
    this.#unmapped = true;
    this.#lib.munmap(this.#ptr, BigInt(REGION_BYTES));
    this.#lib.close(this.#fd);
  }
}

const BELL = new Uint8Array([1]);

/**
 * One side of the region: writes into one direction and reads the other, with
 * a connected Unix socket as the doorbell both ways (its end is the peer's end).
 * `read` is a {@linkcode ByteSource}, so a `BufferedReader` can parse packets.
 */
export class ShmEndpoint implements ByteSource {
  readonly #region: ShmRegion;
  readonly #bell: Deno.UnixConn;
  readonly #out: Uint8Array;
  readonly #in: Uint8Array;
  readonly #o: number;
  readonly #i: number;
  #pending: Uint8Array[] = [];
  #flushing = false;
  #stopped = false;
  #closeAfterFlush = false;
  #spinUs = SPIN_START_US;
  #napUs = NAP_START_US;
  #sleeps = 0;
  #waiters: (() => void)[] = [];
  readonly #side: 0 | 1;
  #apart = true;

  constructor(region: ShmRegion, side: "parent" | "child", bell: Deno.UnixConn) {
    this.#region = region;
    this.#bell = bell;
    const out = side === "parent" ? 0 : 1;
    const inn = side === "parent" ? 1 : 0;
    this.#out = region.ring(out);
    this.#in = region.ring(inn);
    this.#o = out * 64;
    this.#i = inn * 64;
    this.#side = side === "parent" ? 0 : 1;
    this.#apart = region.updateAffinity(this.#side);
    this.#listen();
  }

  async #listen(): Promise<void> {
    const buf = new Uint8Array(256);
    for (;;) {
      let n: number | null;
      try {
        n = await this.#bell.read(buf);
      } catch {
        n = null;
      }
      if (n === null) return this.peerGone();
      this.#wakeAll();
    }
  }

  #wakeAll(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  #ringing: Promise<unknown> = Promise.resolve();

  #ring(): void {
    this.#ringing = this.#bell.write(BELL).catch(() => {});
  }

  /** Resolves once queued bytes are in the ring and the last doorbell went out. */
  async flushed(): Promise<void> {
    while (this.#pending.length > 0 && !this.#stopped && !this.#region.unmapped) {
      await this.#sleep();
    }
    await this.#ringing;
  }

  /** Waits for the doorbell (or, as a safety net, 50 ms). */
  #sleep(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, SLEEP_MS);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(done);
    });
  }

  /** Bytes this side may still write before the peer reads. */
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
    r.exchange(this.#o + HEAD, (head + n) | 0);
    const sleeper = r.exchange(this.#o + READER_SLEEPS, 0);
    if (sleeper === DOORBELL) this.#ring();
    else if (sleeper === FUTEX) r.wake(this.#o + HEAD);
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
        const first = this.#pending[0];
        const n = this.#put(first);
        if (n === first.length) this.#pending.shift();
        else {
          this.#pending[0] = first.subarray(n);
          r.exchange(this.#o + WANTS_SPACE, 1);
          if (this.#free() === 0) await this.#sleep();
        }
      }
      if (this.#pending.length === 0 && this.#closeAfterFlush) this.#markClosed();
    } finally {
      this.#flushing = false;
    }
  }

  #markClosed(): void {
    this.#region.exchange(this.#o + CLOSED, 1);
    this.#ring();
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
    this.#wakeAll();
  }

  /** Closes the doorbell and unmaps the region. */
  dispose(): void {
    this.peerGone();
    try {
      this.#bell.close();
    } catch {
      // Already closed.
    }
    this.#region.dispose();
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
        r.exchange(this.#i + TAIL, (tail + n) | 0);
        if (r.exchange(this.#i + WANTS_SPACE, 0) !== 0) this.#ring();
        return n;
      }
      if (r.load(this.#i + CLOSED) !== 0 || this.#stopped) return null;
      if (await this.#spin(head)) continue;
      if (await this.#nap(head)) continue;
      // Raise the flag, then look once more: a writer that published before the
      // flag went up is seen here, one that published after it rings.
      r.exchange(this.#i + READER_SLEEPS, DOORBELL);
      if (r.load(this.#i + HEAD) !== head || r.load(this.#i + CLOSED) !== 0) {
        r.exchange(this.#i + READER_SLEEPS, 0);
        continue;
      }
      await this.#sleep();
    }
  }

  /**
   * Naps in a futex (blocking this thread, so the CPU goes to the peer at once
   * when both share it) up to the current budget; the budget shrinks to nothing
   * while naps end empty (an idle peer), so the event loop is held only while
   * the peer answers quickly. First a few microtask turns, where the code that
   * sends the next message runs.
   */
  async #nap(head: number): Promise<boolean> {
    const r = this.#region;
    let budget = this.#napUs;
    if (budget === 0 && (this.#sleeps & 63) === 0) budget = 50;
    if (budget === 0) return false;
    for (let i = 0; i < 4; i++) {
      await null;
      if (r.load(this.#i + HEAD) !== head || this.#stopped) return true;
    }
    r.exchange(this.#i + READER_SLEEPS, FUTEX);
    if (r.load(this.#i + HEAD) !== head || r.load(this.#i + CLOSED) !== 0 || this.#stopped) {
      r.exchange(this.#i + READER_SLEEPS, 0);
      return true;
    }
    const start = performance.now();
    const woke = r.nap(this.#i + HEAD, head, budget);
    r.exchange(this.#i + READER_SLEEPS, 0);
    if (woke) {
      const took = (performance.now() - start) * 1000;
      this.#napUs = Math.min(NAP_MAX_US, Math.max(this.#napUs, 4 * took, 50));
      return true;
    }
    this.#napUs = this.#napUs < 20 ? 0 : this.#napUs / 2;
    return false;
  }

  /**
   * Spins up to the current budget for HEAD to move, yielding to microtasks
   * between looks (the code that will send the next message runs there).
   */
  async #spin(head: number): Promise<boolean> {
    const r = this.#region;
    // Every 64th wait, look at placement again and, if spinning stopped paying,
    // try a short spin once more (either may have changed).
    let budget = this.#spinUs;
    if ((++this.#sleeps & 63) === 0) {
      this.#apart = r.updateAffinity(this.#side);
      if (budget === 0) budget = 10;
    }
    if (budget === 0 || !this.#apart) return false;
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
