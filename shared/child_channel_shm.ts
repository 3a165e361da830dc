/**
 * Shared memory between a parent and its child through `Deno.dlopen` (Linux):
 * one `memfd_create` region mapped by both, holding a byte ring per direction
 * (this module), and the endpoint that writes and reads them
 * (child_channel_shm_endpoint.ts). The writer copies bytes in. A reader with
 * nothing to read waits in up to three steps, each announced by a flag in the
 * region so the writer knows how to wake it:
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
import { libcLoader } from "./libc.ts";

/** Bytes of each direction's ring (a power of two). */
export const SHM_RING_BYTES = 1 << 20;
/** Bytes of control words before the rings. */
export const SHM_CONTROL_BYTES = 512;
const CONTROL_BYTES = SHM_CONTROL_BYTES;
/** Bytes of a whole region: control words and both rings. */
export const SHM_REGION_BYTES = CONTROL_BYTES + 2 * SHM_RING_BYTES;
const REGION_BYTES = SHM_REGION_BYTES;
/** Int32 indices of one direction's control words (64-byte lines apart), and flag values. */
export const SHM_WORDS = {
  /** Bytes written, modulo 2^32 (the reader's futex word). */
  HEAD: 0,
  /** Bytes read, modulo 2^32. */
  TAIL: 16,
  /** The writer will write no more. */
  CLOSED: 32,
  /** The reader waits: {@linkcode SHM_WORDS.DOORBELL} or {@linkcode SHM_WORDS.FUTEX}. */
  READER_SLEEPS: 40,
  DOORBELL: 1,
  FUTEX: 2,
  /** The writer waits for the doorbell (ring full). */
  WANTS_SPACE: 48,
} as const;
/**
 * Int32 index (in direction 0's block, free there) of the word a parent sets
 * while its isolate has several channels open (a pool): its children then do
 * not spin, since with more workers than CPUs a spinner holds a CPU another
 * worker (or the parent) needs.
 */
export const SHM_PARENT_SHARED = 36;
// Each side's CPU mask (256 CPUs) for the spin decision, at these Int32 indices.
const AFFINITY = [56, 120] as const; // the free end of each direction's block
const AFFINITY_WORDS = 8;
const SYS_FUTEX: Partial<Record<string, bigint>> = { x86_64: 202n, aarch64: 98n };

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
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/**
 * What a waiting thread asks of libc, loaded on its own: a worker's channel
 * needs only these, and binding two symbols takes ~3 ms where the full set
 * takes ~24 ms (measured here; every worker pays it once).
 */
const THREAD_SYMBOLS = {
  sched_getaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
} as const;

const loadLibc = libcLoader(
  SYMBOLS,
  SYS_FUTEX[Deno.build.arch] === undefined
    ? `shared memory: no futex number for ${Deno.build.arch}`
    : null,
);
let libc: Libc | null = null;
const loadThreadLibc = libcLoader(THREAD_SYMBOLS, null);

/** Why shared memory cannot be used here, or `null` when it can. */
export function shmUnavailable(): string | null {
  const loaded = loadLibc();
  if (typeof loaded !== "string") {
    libc = loaded;
    return null;
  }
  return loaded.startsWith("needs") ? `shared memory ${loaded}` : loaded;
}

function cString(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0") as Uint8Array<ArrayBuffer>;
}

/** The calling thread's CPU mask (256 CPUs), or `null` without FFI. */
export function threadCpuMask(): Int32Array | null {
  const lib = loadThreadLibc();
  if (typeof lib === "string") return null;
  const mask = new Int32Array(AFFINITY_WORDS);
  return lib.sched_getaffinity(0, BigInt(mask.byteLength), new Uint8Array(mask.buffer)) === 0
    ? mask
    : null;
}

/**
 * Publishes `mask` (all CPUs when `null`) as `side`'s in the control words and
 * says whether the two sides may run at the same moment (their masks hold two
 * CPUs or more between them): only then can spinning see an answer before the
 * spinner yields its CPU.
 */
export function publishAffinity(words: Int32Array, side: 0 | 1, mask: Int32Array | null): boolean {
  for (let w = 0; w < AFFINITY_WORDS; w++) {
    Atomics.store(words, AFFINITY[side] + w, mask ? mask[w] : -1);
  }
  let cpus = 0;
  for (let w = 0; w < AFFINITY_WORDS; w++) {
    let bits = (Atomics.load(words, AFFINITY[0] + w) | Atomics.load(words, AFFINITY[1] + w)) >>>
      0;
    while (bits !== 0) {
      bits &= bits - 1;
      cpus++;
    }
  }
  return cpus >= 2;
}

/**
 * Timer slack while napping, ns. A timed wait arms a kernel timer; when that
 * timer is the CPU's next one the kernel reprograms the timer hardware, which
 * on a virtual machine (KVM's lapic-deadline here) costs a trip to the
 * hypervisor on every wait: measured here, a ping-pong between two threads on
 * one vCPU with 200 µs timed waits made 43,000 round trips/s, untimed 131,000.
 * With as much slack as a scheduler tick (4 ms at this kernel's HZ=250) the
 * timer may fire with the next tick instead, so it is rarely the next one, and
 * timed waits cost what untimed ones do (125,000/s; 1 ms of slack: 84,000/s).
 * A nap then lasts at most its budget plus this slack (in practice, until the
 * next tick); the endpoint stops napping after one nap that ends empty. While
 * the slack is raised (between naps that succeed), the thread's other timed
 * waits may end that much later too.
 */
export const NAP_SLACK_NS = 4_000_000;
const PR_SET_TIMERSLACK = 29;
const PR_GET_TIMERSLACK = 30;
/** This thread's own timer slack while raised for naps, else `null`. */
let savedSlackNs: bigint | null = null;

/**
 * Raises this thread's timer slack to {@linkcode NAP_SLACK_NS} for the naps
 * that follow (once; without FFI, nothing). It stays raised while naps keep
 * succeeding, since two `prctl` calls per nap cost ~20 % of a one-vCPU round
 * trip (measured); {@linkcode restoreTimerSlack} puts it back when the reader
 * goes back to the event loop (its doorbell sleep) or a nap ends empty, so
 * the event loop's own timers keep their precision while it waits.
 */
export function raiseNapSlack(): void {
  if (savedSlackNs !== null) return;
  const lib = loadThreadLibc();
  if (typeof lib === "string") return;
  const own = lib.prctl(PR_GET_TIMERSLACK, 0n, 0n, 0n, 0n);
  if (own < 0) return;
  savedSlackNs = BigInt(own);
  lib.prctl(PR_SET_TIMERSLACK, BigInt(NAP_SLACK_NS), 0n, 0n, 0n);
}

/** Puts back the timer slack {@linkcode raiseNapSlack} raised (if it did). */
export function restoreTimerSlack(): void {
  if (savedSlackNs === null) return;
  const lib = loadThreadLibc();
  if (typeof lib !== "string") lib.prctl(PR_SET_TIMERSLACK, savedSlackNs, 0n, 0n, 0n);
  savedSlackNs = null;
}

const napTimespec = new BigInt64Array(2);
/** The nap length (µs) `napTimespec` holds. */
let napTimespecUs = -1;
let napTimespecPointer: Deno.PointerValue = null;

/** One mapped region and both directions' rings in it. */
export class ShmRegion {
  readonly #lib: Libc;
  readonly #ptr: Deno.PointerObject;
  readonly #fd: number;
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  /** Futex addresses by control word, made once (each is an object to allocate). */
  readonly #addresses = new Map<number, Deno.PointerValue>();
  readonly #futex: bigint;
  #unmapped = false;

  private constructor(lib: Libc, fd: number, ptr: Deno.PointerObject) {
    this.#lib = lib;
    this.#fd = fd;
    this.#ptr = ptr;
    const buffer = Deno.UnsafePointerView.getArrayBuffer(ptr, REGION_BYTES);
    this.#words = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
    this.#bytes = new Uint8Array(buffer);
    this.#futex = SYS_FUTEX[Deno.build.arch]!;
  }

  #address(index: number): Deno.PointerValue {
    let address = this.#addresses.get(index);
    if (address === undefined) {
      address = Deno.UnsafePointer.offset(this.#ptr, index * 4);
      this.#addresses.set(index, address);
    }
    return address;
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
    return publishAffinity(this.#words, side, threadCpuMask());
  }

  /** Wakes a futex sleeper on a control word. */
  wake(index: number): void {
    if (this.#unmapped) return;
    this.#lib.syscall(this.#futex, this.#address(index), 1n, 1n, null, null, 0n);
  }

  /**
   * Sleeps in this thread (blocking the event loop) while the word is `seen`, at
   * most `us` microseconds; true when it changed.
   */
  nap(index: number, seen: number, us: number, slack: boolean): boolean {
    if (this.#unmapped) return false;
    if (us !== napTimespecUs) {
      // Set only when it changes: a BigInt to allocate otherwise on every nap.
      napTimespec[1] = BigInt(Math.round(us * 1000));
      napTimespecUs = us;
    }
    napTimespecPointer ??= Deno.UnsafePointer.of(napTimespec);
    const address = this.#address(index);
    if (slack) raiseNapSlack();
    this.#lib.syscall(this.#futex, address, 0n, BigInt(seen), napTimespecPointer, null, 0n);
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
