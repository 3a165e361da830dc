/**
 * The channel between a parent and a worker thread over a SharedArrayBuffer:
 * the shared-memory endpoint of the child channel (child_channel_shm_endpoint.ts:
 * STEP packets in one byte ring per direction, the same layout and control
 * words) on memory both threads see, with no FFI. A reader with nothing to read
 * spins (when both sides may run at once), then waits synchronously in
 * `Atomics.wait` for a bounded time (the thread hands its CPU to the peer and
 * gets it back with no event-loop turn), then sleeps in `Atomics.waitAsync` on
 * a doorbell word, as long as it takes.
 *
 * Only values JSON carries exactly go through the rings; the runtime
 * (runtime.ts) sends the others by `postMessage` with a sequence number, and
 * the receiver puts both back in order ({@linkcode InOrder}).
 *
 * @module
 */
import {
  publishAffinity,
  raiseNapSlack,
  SHM_CONTROL_BYTES,
  SHM_REGION_BYTES,
  SHM_RING_BYTES,
  threadCpuMask,
} from "./child_channel_shm.ts";
import { ShmEndpoint, shmPort } from "./child_channel_shm_endpoint.ts";
import type { Doorbell, PacketPort, RingRegion, ThreadChannelKind } from "./child_channel_port.ts";
import { CHANNEL_LIMITS } from "./child_channel.ts";
import type { StepLimits } from "./codec.ts";

/** Each direction's doorbell counter (a free word of its control block). */
const BELL_WORD = 44;
/** Longest synchronous wait of a thread channel's reader, µs: what other events on its thread may be delayed. */
export const THREAD_NAP_MAX_US = 200;
/** Longest single asynchronous doorbell wait before looking again, ms. */
const BELL_WAIT_MS = 1000;

/** Both rings and their control words in one SharedArrayBuffer. */
export class SabRegion implements RingRegion {
  readonly buffer: SharedArrayBuffer;
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  #disposed = false;

  /** A new region (parent), or the parent's `buffer` (worker). */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(SHM_REGION_BYTES);
    this.#words = new Int32Array(this.buffer, 0, SHM_CONTROL_BYTES / 4);
    this.#bytes = new Uint8Array(this.buffer);
  }

  get unmapped(): boolean {
    return this.#disposed;
  }

  /** The control words (the doorbells live there too). */
  get words(): Int32Array {
    return this.#words;
  }

  load(index: number): number {
    return Atomics.load(this.#words, index);
  }

  exchange(index: number, value: number): number {
    return Atomics.exchange(this.#words, index, value);
  }

  wake(index: number): void {
    Atomics.notify(this.#words, index, 1);
  }

  nap(index: number, seen: number, us: number, slack: boolean): boolean {
    if (slack) raiseNapSlack();
    Atomics.wait(this.#words, index, seen, us / 1000);
    return Atomics.load(this.#words, index) !== seen;
  }

  ring(direction: 0 | 1): Uint8Array {
    const start = SHM_CONTROL_BYTES + direction * SHM_RING_BYTES;
    return this.#bytes.subarray(start, start + SHM_RING_BYTES);
  }

  updateAffinity(side: 0 | 1): boolean {
    return publishAffinity(this.#words, side, threadCpuMask());
  }

  /** Marks the region unused; the memory goes with the last reference. */
  dispose(): void {
    this.#disposed = true;
  }
}

/**
 * A doorbell on two words: ringing adds one to the peer's word and notifies it;
 * reading waits (asynchronously) for this side's word to move.
 */
class SabDoorbell implements Doorbell {
  readonly #words: Int32Array;
  readonly #mine: number;
  readonly #theirs: number;
  #seen: number;
  #closed = false;

  constructor(words: Int32Array, mine: number, theirs: number) {
    this.#words = words;
    this.#mine = mine;
    this.#theirs = theirs;
    this.#seen = Atomics.load(words, mine);
  }

  async read(): Promise<number | null> {
    for (;;) {
      if (this.#closed) return null;
      const now = Atomics.load(this.#words, this.#mine);
      if (now !== this.#seen) {
        this.#seen = now;
        return 1;
      }
      const result = Atomics.waitAsync(this.#words, this.#mine, now, BELL_WAIT_MS);
      if (result.async) await result.value;
    }
  }

  write(): Promise<unknown> {
    Atomics.add(this.#words, this.#theirs, 1);
    Atomics.notify(this.#words, this.#theirs);
    return Promise.resolve();
  }

  close(): void {
    this.#closed = true;
    Atomics.add(this.#words, this.#mine, 1);
    Atomics.notify(this.#words, this.#mine);
  }
}

/**
 * One end of a thread channel over `region` as a packet port (`kind` "sab").
 * Its reader naps at most {@linkcode THREAD_NAP_MAX_US} (plus the timer slack
 * of child_channel_shm.ts) and, on the parent's side, only while it is the
 * isolate's only parent end (see `ShmEndpoint`).
 */
export function sabPort(
  region: SabRegion,
  side: "parent" | "child",
  limits: StepLimits,
): { port: PacketPort; dispose(): void } {
  // Direction 0 runs parent → worker (as in child_channel_shm.ts).
  const mine = (side === "parent" ? 64 : 0) + BELL_WORD;
  const theirs = (side === "parent" ? 0 : 64) + BELL_WORD;
  const bell = new SabDoorbell(region.words, mine, theirs);
  const endpoint = new ShmEndpoint(region, side, bell, { napMaxUs: THREAD_NAP_MAX_US });
  return {
    port: shmPort(endpoint, limits, () => endpoint.closeWrite(), () => {}, "sab"),
    dispose: () => endpoint.dispose(),
  };
}

/** Whether `value` survives `JSON.stringify` then `JSON.parse` exactly (what the rings carry). */
export function jsonExact(value: unknown, depth = 0): boolean {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value) && !Object.is(value, -0);
  if (typeof value !== "object" || depth > 64) return false;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false;
    for (let i = 0; i < value.length; i++) {
      if (!(i in value) || !jsonExact(value[i], depth + 1)) return false;
    }
    return Object.keys(value).length === value.length;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  if (Object.getOwnPropertySymbols(value).length > 0) return false;
  for (const key in value) {
    if (key === "__proto__" || !jsonExact((value as Record<string, unknown>)[key], depth + 1)) {
      return false;
    }
  }
  return true;
}

/**
 * Delivers numbered items in number order, whichever way each came (ring or
 * `postMessage`), holding early ones until the gap is filled.
 */
export class InOrder<T> {
  #next = 0;
  readonly #early = new Map<number, T>();

  constructor(readonly deliver: (item: T) => void) {}

  push(seq: number, item: T): void {
    if (seq !== this.#next) {
      this.#early.set(seq, item);
      return;
    }
    this.deliver(item);
    this.#next++;
    for (let early = this.#early.get(this.#next); early !== undefined;) {
      this.#early.delete(this.#next);
      this.deliver(early);
      early = this.#early.get(++this.#next);
    }
  }
}

/** One message between a parent and a worker: its envelope, binary part, and number once rings carry them. */
export interface ThreadWire {
  envelope: { t: string; [key: string]: unknown };
  bytes?: Uint8Array;
  /** Its place in the sender's order (set once a ring is attached). */
  q?: number;
}

/**
 * The default thread channel: `NETCONC_THREAD_CHANNEL` (`sab` or `postmessage`)
 * when set and readable, else `sab`.
 */
export function defaultThreadChannel(): ThreadChannelKind {
  try {
    const name = "NETCONC_THREAD_CHANNEL";
    if (Deno.permissions.querySync({ name: "env", variable: name }).state === "granted") {
      const value = Deno.env.get(name);
      if (value === "postmessage" || value === "sab") return value;
      if (value) throw new Error(`${name} must be sab or postmessage, not '${value}'`);
    }
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("NETCONC_")) throw error;
  }
  return "sab";
}

/**
 * One side's message path to the other thread: `postMessage` until a ring is
 * attached, then the ring for every envelope JSON carries exactly, numbered,
 * and `postMessage` (numbered too) for the rest; whatever arrives either way is
 * handed on in the sender's order.
 */
export class ThreadLink {
  #sab: { port: PacketPort; dispose(): void } | null = null;
  #sent = 0;
  readonly #order: InOrder<ThreadWire>;
  readonly #handle: (wire: ThreadWire) => void;
  readonly #postMessage: (wire: ThreadWire, transfer: Transferable[]) => void;

  constructor(
    postMessage: (wire: ThreadWire, transfer: Transferable[]) => void,
    handle: (wire: ThreadWire) => void,
  ) {
    this.#postMessage = postMessage;
    this.#handle = handle;
    this.#order = new InOrder(handle);
  }

  /** What carries messages now. */
  get kind(): ThreadChannelKind {
    return this.#sab ? "sab" : "postmessage";
  }

  /** From now on, sends through `region` and reads it until it ends (`onError` on a bad packet). */
  attach(region: SabRegion, side: "parent" | "child", onError: (error: unknown) => void): void {
    this.#sab = sabPort(region, side, CHANNEL_LIMITS);
    const port = this.#sab.port;
    (async () => {
      for (;;) {
        const packet = await port.read();
        if (packet === null) return;
        const envelope = packet.json as ThreadWire["envelope"];
        const bytes = packet.binary.length > 0 ? packet.binary : undefined;
        this.#order.push(envelope.q as number, { envelope, bytes });
      }
    })().catch(onError);
  }

  send(envelope: ThreadWire["envelope"], bytes?: Uint8Array, transfer = false): void {
    const moved = transfer && bytes ? [bytes.buffer as ArrayBuffer] : [];
    if (this.#sab === null) return this.#postMessage({ envelope, bytes }, moved);
    const q = this.#sent++;
    if (jsonExact(envelope)) this.#sab.port.send({ ...envelope, q }, bytes);
    else this.#postMessage({ envelope, bytes, q }, moved);
  }

  /** A message that came by `postMessage`. */
  received(wire: ThreadWire): void {
    if (wire.q === undefined) this.#handle(wire);
    else this.#order.push(wire.q, wire);
  }

  /** Resolves once everything sent is in the ring. */
  flush(): Promise<void> {
    return this.#sab?.port.flush() ?? Promise.resolve();
  }

  dispose(): void {
    this.#sab?.dispose();
  }
}
