/**
 * One side of a shared-memory channel (child_channel_shm.ts has the region and
 * how a reader waits): writes STEP packets into one direction's ring and reads
 * them from the other, with a connected Unix socket as the doorbell both ways
 * (its end is the peer's end).
 *
 * Packets take a fast path when they fit: the writer encodes the JSON part
 * straight into a scratch buffer and copies header, JSON and binary into the
 * ring with one publication; the reader parses a whole packet straight out of
 * the ring with no intermediate buffer. A packet that does not fit in the ring
 * at once (or arrives in pieces) goes through the byte stream
 * ({@linkcode ShmEndpoint.read}, a `ByteSource` for `BufferedReader`) instead,
 * with the same limits and errors.
 *
 * @module
 */
import {
  restoreTimerSlack,
  SHM_PARENT_SHARED,
  SHM_RING_BYTES,
  SHM_WORDS,
} from "./child_channel_shm.ts";
import { BufferedReader, type ByteSource } from "./reader.ts";
import { asciiInto, copyRing, JsonPartReader } from "./child_channel_ascii.ts";
import {
  type Doorbell,
  type EndpointOptions,
  NULL_MESSAGE,
  NULL_MESSAGE_TEXT,
  type PacketPort,
  type PortKind,
  type RingRegion,
} from "./child_channel_port.ts";
import {
  decodeStepHeader,
  encodeStepPacket,
  STEP_HEADER_SIZE,
  type StepLimits,
  type StepPacket,
} from "./codec.ts";

const { HEAD, TAIL, CLOSED, READER_SLEEPS, DOORBELL, FUTEX, WANTS_SPACE } = SHM_WORDS;
const MASK = SHM_RING_BYTES - 1;
/** Longest single doorbell wait: a lost ring (which the flags rule out) costs at most this. */
const SLEEP_MS = 50;
/**
 * Longest spin, microseconds, and the wait below which spinning pays: a
 * reader spins (when the two sides may run at once) while at least half of
 * its last {@linkcode SPIN_WINDOW} waits, however they ended, took no longer.
 * Deciding on the whole wait, not on whether the last spin won, matters: a
 * peer that naps answers later than one that spins, so a spin budget that
 * shrank with each lost spin made the other side's spins lose too until
 * neither spun (measured: split placement, both sides napping after the
 * warm-up, p50 33 µs where spinning answers in a few).
 */
const SPIN_US = 100;
/** Waits per spin decision. */
const SPIN_WINDOW = 32;
/**
 * Starting and largest synchronous nap before the doorbell, microseconds (plus
 * the timer slack of child_channel_shm.ts after an answered nap). Starting at
 * 0 cost a one-vCPU stream ~30 % (measured); a first nap for an idle peer
 * holds at most the start, without slack.
 */
const NAP_START_US = 200;
const NAP_MAX_US = 200;
/** Longest stretch of spins and naps with no event-loop turn, ms. */
const HOLD_MS = 1;
/**
 * Runs `fn` on the event loop's next turn: `setImmediate` (~10 µs here), not
 * `setTimeout(fn, 0)`, which waits for the timer's next millisecond (2.2 ms
 * a call measured here under load).
 */
const nextTurn: (fn: () => void) => void =
  (globalThis as { setImmediate?: (fn: () => void) => void }).setImmediate ??
    ((fn) => setTimeout(fn, 0));
/** JSON parts up to this size (UTF-8, worst case) are encoded without allocating. */
const SCRATCH_BYTES = 64 * 1024;
/**
 * Binary parts up to this size are read into a new `Uint8Array(n)`, which V8
 * keeps in its heap (its `typed_array_max_size_in_heap`), byte by byte;
 * larger ones with one copy (`slice` of the ring measured slower at 4 KiB).
 */
const SMALL_BINARY_BYTES = 64;
/**
 * Packets up to this size are written into the ring byte by byte (larger ones
 * with one or two copies: byte by byte cost one-vCPU 4 KiB streams 5–10 %).
 */
const SMALL_PACKET_BYTES = 256;
/** Awaited for a microtask turn: awaiting a settled promise allocates no new one. */
const SETTLED = Promise.resolve();
const BELL = new Uint8Array([1]);
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/** Where endpoints append their {@linkcode WaitStats} (`NETCONC_CHANNEL_STATS`), asked without a prompt. */
const statsFile = Deno.permissions.querySync?.({ name: "env", variable: "NETCONC_CHANNEL_STATS" })
    .state === "granted"
  ? Deno.env.get("NETCONC_CHANNEL_STATS") || undefined
  : undefined;

/** Counts of how an endpoint's waits for bytes ended (diagnostics). */
export interface WaitStats {
  /** Waits for bytes (each ends by a spin, a nap or the doorbell). */
  waits: number;
  spinWon: number;
  spinLost: number;
  /** Spins skipped: the two sides share one CPU. */
  spinSkipApart: number;
  /** Spins skipped: most recent waits took longer than a spin. */
  spinSkipSlow: number;
  napWon: number;
  napLost: number;
  /** Sleeps on the doorbell (in the event loop). */
  doorbell: number;
  /** Waits for an event-loop turn (the 1 ms rule). */
  turnWaits: number;
}

/** What {@linkcode ShmEndpoint.tryReadPacket} found. */
export type ShmPacketRead = StepPacket | "wait" | "stream";

/**
 * One side of the region: writes into one direction and reads the other, with
 * a connected Unix socket as the doorbell both ways (its end is the peer's end).
 * `read` is a {@linkcode ByteSource}, so a `BufferedReader` can parse packets;
 * {@linkcode writePacket} and {@linkcode tryReadPacket} are the fast path.
 */
export class ShmEndpoint implements ByteSource {
  readonly #region: RingRegion;
  readonly #bell: Doorbell;
  readonly #napMax: number;
  readonly #mayNap: () => boolean;
  #parent: boolean;
  readonly #out: Uint8Array;
  readonly #in: Uint8Array;
  readonly #o: number;
  readonly #i: number;
  #pending: Uint8Array[] = [];
  #flushing = false;
  #stopped = false;
  #closeAfterFlush = false;
  /** Whether waits spin first (decided every {@linkcode SPIN_WINDOW} waits). */
  #spinning = true;
  #quickWaits = 0;
  #windowWaits = 0;
  #napUs = NAP_START_US;
  #sleeps = 0;
  /** Whether the last nap was answered (the next one may wait with the timer slack). */
  #answered = false;
  #waiters: (() => void)[] = [];
  /** How this end's waits went (diagnostics: `NETCONC_CHANNEL_STATS`). */
  readonly stats: WaitStats = {
    waits: 0,
    spinWon: 0,
    spinLost: 0,
    spinSkipApart: 0,
    spinSkipSlow: 0,
    napWon: 0,
    napLost: 0,
    doorbell: 0,
    turnWaits: 0,
  };
  readonly #side: 0 | 1;
  #apart = true;
  readonly #scratch = new Uint8Array(SCRATCH_BYTES);
  readonly #scratchView = new DataView(this.#scratch.buffer);
  /** The JSON text whose bytes the scratch holds after its header, and their count. */
  #scratchText = "";
  #scratchLength = 0;
  readonly #json = new JsonPartReader();

  constructor(
    region: RingRegion,
    side: "parent" | "child",
    bell: Doorbell,
    options: EndpointOptions = {},
  ) {
    this.#region = region;
    this.#bell = bell;
    this.#napMax = options.napMaxUs ?? NAP_MAX_US;
    this.#napUs = Math.min(NAP_START_US, this.#napMax);
    this.#parent = side === "parent";
    // With several children or workers, one ring's nap would delay the others.
    this.#mayNap = options.mayNap ??
      (this.#parent ? () => ShmEndpoint.#parents.size === 1 : () => true);
    if (this.#parent) {
      ShmEndpoint.#parents.add(this);
      ShmEndpoint.#publishParents();
    }
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
    // One safety-net timer serves every sleep while sleeps keep coming (a timer
    // per sleep costs as much as the doorbell itself); it stops once idle.
    this.#safetyNet ??= setInterval(() => {
      if (this.#waiters.length > 0) this.#wakeAll();
      else this.#stopSafetyNet();
    }, SLEEP_MS);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #safetyNet: ReturnType<typeof setInterval> | undefined;

  #stopSafetyNet(): void {
    if (this.#safetyNet !== undefined) clearInterval(this.#safetyNet);
    this.#safetyNet = undefined;
  }

  /** Bytes this side may still write before the peer reads. */
  #free(): number {
    const r = this.#region;
    const used = (r.load(this.#o + HEAD) - r.load(this.#o + TAIL)) >>> 0;
    return SHM_RING_BYTES - used;
  }

  /** Copies `bytes` into the outgoing ring at `at` (a byte count, wrapped here). */
  #copyIn(at: number, bytes: Uint8Array): void {
    const offset = at & MASK;
    const first = Math.min(bytes.length, SHM_RING_BYTES - offset);
    this.#out.set(first === bytes.length ? bytes : bytes.subarray(0, first), offset);
    if (bytes.length > first) this.#out.set(bytes.subarray(first), 0);
  }

  /** Copies `n` bytes out of the incoming ring from `at` into `into`. */
  #copyOut(at: number, n: number, into: Uint8Array): void {
    const offset = at & MASK;
    const first = Math.min(n, SHM_RING_BYTES - offset);
    into.set(this.#in.subarray(offset, offset + first));
    if (n > first) into.set(this.#in.subarray(0, n - first), first);
  }

  /** Makes bytes up to `head` visible, then wakes the reader the way it asked. */
  #publish(head: number): void {
    const r = this.#region;
    r.exchange(this.#o + HEAD, head | 0);
    const sleeper = r.exchange(this.#o + READER_SLEEPS, 0);
    if (sleeper === DOORBELL) this.#ring();
    else if (sleeper === FUTEX) r.wake(this.#o + HEAD);
  }

  /** Copies as much of `bytes` as fits; returns the count. */
  #put(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.#free());
    if (n === 0) return 0;
    const head = this.#region.load(this.#o + HEAD) >>> 0;
    this.#copyIn(head, n === bytes.length ? bytes : bytes.subarray(0, n));
    this.#publish(head + n);
    return n;
  }

  /**
   * Queues one STEP packet for the peer; never blocks. When nothing is queued
   * and it fits, it goes into the ring at once without an intermediate buffer.
   */
  writePacket(envelope: Record<string, unknown>, binary: Uint8Array = EMPTY): void {
    if (this.#stopped || this.#closeAfterFlush || this.#region.unmapped) return;
    const text = envelope === NULL_MESSAGE ? NULL_MESSAGE_TEXT : JSON.stringify(envelope);
    if (this.#pending.length > 0 || text.length * 3 > SCRATCH_BYTES - STEP_HEADER_SIZE) {
      return this.write(encodeStepPacket(envelope, binary));
    }
    // The scratch keeps the last JSON part's bytes: envelopes mostly repeat.
    const written = text === this.#scratchText ? this.#scratchLength : this.#encodeScratch(text);
    const front = STEP_HEADER_SIZE + written;
    const size = front + binary.length;
    if (this.#free() < size) return this.write(encodeStepPacket(envelope, binary));
    const head = this.#region.load(this.#o + HEAD) >>> 0;
    // One copy of header and JSON from the scratch (writing them into the ring
    // byte by byte instead cost one-vCPU 4 KiB streams 5–10 %, A/B, and
    // gained nothing at 64 B).
    this.#scratchView.setUint32(0, written);
    this.#scratchView.setUint32(4, binary.length);
    if (size <= SMALL_PACKET_BYTES) this.#copySmall(head & MASK, front, binary);
    else {
      this.#copyIn(head, this.#scratch.subarray(0, front));
      if (binary.length > 0) this.#copyIn(head + front, binary);
    }
    this.#publish(head + size);
  }

  /** Encodes a JSON part into the scratch after its header; its byte count. */
  #encodeScratch(text: string): number {
    const into = this.#scratch.subarray(STEP_HEADER_SIZE);
    let written = asciiInto(text, into);
    if (written < 0) written = encoder.encodeInto(text, into).written;
    this.#scratchText = text;
    this.#scratchLength = written;
    return written;
  }

  /**
   * Copies a small packet (the scratch's first `front` bytes, then `binary`)
   * into the outgoing ring from `at`, wrapping by index arithmetic: the same
   * code whether or not the packet straddles the ring's end (see
   * {@linkcode tryReadPacket}).
   */
  #copySmall(at: number, front: number, binary: Uint8Array): void {
    const out = this.#out;
    const scratch = this.#scratch;
    for (let i = 0; i < front; i++) out[(at + i) & MASK] = scratch[i];
    const from = at + front;
    for (let i = 0; i < binary.length; i++) out[(from + i) & MASK] = binary[i];
  }

  /**
   * A whole packet straight from the ring if one is there; `"wait"` when the
   * ring is empty (wait with {@linkcode waitReadable}); `"stream"` when the
   * bytes must go through {@linkcode read} (a packet in pieces or larger than
   * the ring, or the end). Lengths over `limits` throw as `decodeStepHeader` does.
   */
  tryReadPacket(limits: StepLimits): ShmPacketRead {
    const r = this.#region;
    if (r.unmapped) return "stream";
    const tail = r.load(this.#i + TAIL) >>> 0;
    const available = (r.load(this.#i + HEAD) - tail) >>> 0;
    if (available === 0) {
      return r.load(this.#i + CLOSED) !== 0 || this.#stopped ? "stream" : "wait";
    }
    if (available < STEP_HEADER_SIZE) return "stream";
    // Every read wraps at the ring's end by index arithmetic, not by a branch:
    // a branch first taken when a packet straddles the end (every ~12,000
    // 64-byte messages) came after V8 had optimized this function and threw
    // that code away each time (measured: a fresh channel ran at 0.45x its
    // steady speed for its first ~20,000 round trips).
    const ring = this.#in;
    const at = tail & MASK;
    const jsonLength = ((ring[at] << 24) | (ring[(at + 1) & MASK] << 16) |
      (ring[(at + 2) & MASK] << 8) | ring[(at + 3) & MASK]) >>> 0;
    const binaryLength = ((ring[(at + 4) & MASK] << 24) | (ring[(at + 5) & MASK] << 16) |
      (ring[(at + 6) & MASK] << 8) | ring[(at + 7) & MASK]) >>> 0;
    if (jsonLength > limits.maxJson || binaryLength > limits.maxBinary) {
      decodeStepHeader(copyRing(ring, at, STEP_HEADER_SIZE, MASK), limits); // throws
    }
    const total = STEP_HEADER_SIZE + jsonLength + binaryLength;
    if (available < total) return "stream";
    const json = this.#json.parseRing(ring, (at + STEP_HEADER_SIZE) & MASK, jsonLength, MASK);
    const binaryAt = (at + STEP_HEADER_SIZE + jsonLength) & MASK;
    // Small parts are copied byte by byte into an array V8 keeps in its heap
    // (no backing store to allocate and free); larger ones in one or two copies.
    const binary = binaryLength <= SMALL_BINARY_BYTES
      ? copyRing(ring, binaryAt, binaryLength, MASK)
      : this.#binaryOut(binaryAt, binaryLength);
    r.exchange(this.#i + TAIL, (tail + total) | 0);
    if (r.exchange(this.#i + WANTS_SPACE, 0) !== 0) this.#ring();
    return { json, binary };
  }

  /** A binary part larger than {@linkcode SMALL_BINARY_BYTES}, copied out of the ring. */
  #binaryOut(at: number, n: number): Uint8Array {
    const binary = new Uint8Array(n);
    this.#copyOut(at, n, binary);
    return binary;
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
    this.logStats();
    restoreTimerSlack();
    if (this.#parent) {
      ShmEndpoint.#parents.delete(this);
      ShmEndpoint.#publishParents();
    }
    this.#parent = false;
    this.#stopped = true;
    this.#pending = [];
    this.#wakeAll();
  }

  /** Parent-side endpoints open in this isolate: a parent spins and naps only while it has one. */
  static readonly #parents = new Set<ShmEndpoint>();

  /** Tells every parent end's child whether its parent has several (then it does not spin). */
  static #publishParents(): void {
    const shared = ShmEndpoint.#parents.size > 1 ? 1 : 0;
    for (const end of ShmEndpoint.#parents) end.#region.exchange(SHM_PARENT_SHARED, shared);
  }

  /** Appends {@linkcode stats} to the file named by `NETCONC_CHANNEL_STATS`, if set. */
  logStats(): void {
    if (this.#stopped || statsFile === undefined) return;
    try {
      const line = JSON.stringify({
        side: this.#side === 0 ? "parent" : "child",
        pid: Deno.pid,
        apart: this.#apart,
        spinning: this.#spinning,
        napUs: this.#napUs,
        ...this.stats,
      });
      Deno.writeTextFileSync(statsFile, line + "\n", { append: true });
    } catch {
      // Diagnostics only: no permission to write means no line.
    }
  }

  /** Closes the doorbell and unmaps the region. */
  dispose(): void {
    this.peerGone();
    this.#stopSafetyNet();
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
      const tail = r.load(this.#i + TAIL) >>> 0;
      const available = (r.load(this.#i + HEAD) - tail) >>> 0;
      if (available > 0) {
        const n = Math.min(available, p.length);
        this.#copyOut(tail, n, p);
        r.exchange(this.#i + TAIL, (tail + n) | 0);
        if (r.exchange(this.#i + WANTS_SPACE, 0) !== 0) this.#ring();
        return n;
      }
      if (r.load(this.#i + CLOSED) !== 0 || this.#stopped) return null;
      await this.waitReadable();
    }
  }

  /** Resolves once the incoming ring holds bytes, or the peer ended or went. */
  async waitReadable(): Promise<void> {
    const r = this.#region;
    if (++this.stats.waits % 4096 === 0) this.logStats();
    // One clock reading per look serves the turn rule, the nap and the spin
    // decision (each reading is a call into the runtime, paid on every wait).
    const start = performance.now();
    let now = start;
    for (;;) {
      if (r.unmapped) return;
      const head = r.load(this.#i + HEAD);
      if (head !== r.load(this.#i + TAIL)) return this.#waited(start);
      if (r.load(this.#i + CLOSED) !== 0 || this.#stopped) return;
      if (!this.#loopTurned(now)) {
        this.stats.turnWaits++;
        await this.#turn;
        now = performance.now();
        continue;
      }
      // Each step is entered only when it will run: an async call that
      // returns at once still costs a promise and a microtask turn per wait.
      if (this.#spins()) {
        if (await this.#spin(head)) continue;
        now = performance.now();
      }
      const budget = this.#napBudget();
      if (budget > 0) {
        // First a few microtask turns, where the code that sends the next
        // message runs (napping before it would only delay that message).
        let moved = false;
        const sent = r.load(this.#o + HEAD);
        for (let i = 0; i < 4 && !moved; i++) {
          await SETTLED;
          moved = r.load(this.#i + HEAD) !== head || this.#stopped;
          // This side has sent meanwhile: the peer has its work, nap now.
          if (r.load(this.#o + HEAD) !== sent) break;
        }
        if (moved || this.#nap(head, budget, now)) continue;
        now = performance.now();
      }
      // Back to the event loop: its timers get their precision back.
      restoreTimerSlack();
      // Raise the flag, then look once more: a writer that published before the
      // flag went up is seen here, one that published after it rings.
      r.exchange(this.#i + READER_SLEEPS, DOORBELL);
      if (r.load(this.#i + HEAD) !== head || r.load(this.#i + CLOSED) !== 0) {
        r.exchange(this.#i + READER_SLEEPS, 0);
        continue;
      }
      this.stats.doorbell++;
      await this.#sleep();
      now = performance.now();
    }
  }

  /** Counts one wait that ended with bytes; every {@linkcode SPIN_WINDOW} waits, decides on spinning. */
  #waited(start: number): void {
    // On one CPU nothing spins: the decision would not be used.
    if (!this.#apart) return;
    if ((performance.now() - start) * 1000 <= SPIN_US) this.#quickWaits++;
    if (++this.#windowWaits < SPIN_WINDOW) return;
    this.#spinning = 2 * this.#quickWaits >= SPIN_WINDOW;
    this.#quickWaits = 0;
    this.#windowWaits = 0;
  }

  /**
   * Whether this isolate's event loop has turned lately. Spins and naps run
   * in microtasks, and a steady ping-pong chains them with no event-loop turn
   * at all, which starved the isolate's timers and I/O (measured: a 5 ms
   * interval beside a ping-pong fired 10–13 times in 400 ms instead of ~80).
   * An immediate (run once the loop has polled I/O) marks each turn; when none
   * came for {@linkcode HOLD_MS}, the
   * reader waits for that timer (the loop turns: timers and I/O run) before it
   * looks, spins or naps again.
   */
  #loopTurned(now: number): boolean {
    if (this.#turnMark === 0) {
      this.#turnMark = now;
      this.#turn = new Promise((resolve) => (this.#turned = resolve));
      nextTurn(this.#onTurn);
      return true;
    }
    return now - this.#turnMark < HOLD_MS;
  }

  #turnMark = 0;
  #turn: Promise<void> = Promise.resolve();
  #turned = () => {};
  readonly #onTurn = () => {
    this.#turnMark = 0;
    this.#turned();
  };

  /** This wait's nap budget, µs (0: no nap). */
  #napBudget(): number {
    let budget = this.#napUs;
    if (budget === 0 && (this.#sleeps & 63) === 0) budget = 50;
    return budget === 0 || !this.#mayNap() ? 0 : budget;
  }

  /**
   * Naps in a futex (blocking this thread, so the CPU goes to the peer at once
   * when both share it) up to the current budget; the budget shrinks to nothing
   * while naps end empty (an idle peer), so the event loop is held only while
   * the peer answers quickly (the caller first gives microtasks a few turns).
   */
  #nap(head: number, budget: number, start: number): boolean {
    const r = this.#region;
    r.exchange(this.#i + READER_SLEEPS, FUTEX);
    if (r.load(this.#i + HEAD) !== head || r.load(this.#i + CLOSED) !== 0 || this.#stopped) {
      r.exchange(this.#i + READER_SLEEPS, 0);
      return true;
    }
    // Only a nap right after one that was answered waits with the timer slack:
    // a peer that is slow to answer would otherwise hold this thread until the
    // next tick each time.
    const woke = r.nap(this.#i + HEAD, head, budget, this.#answered);
    this.#answered = woke;
    r.exchange(this.#i + READER_SLEEPS, 0);
    if (woke) {
      this.stats.napWon++;
      // At its largest the budget cannot grow: no clock reading then.
      if (this.#napUs < this.#napMax) {
        const took = (performance.now() - start) * 1000;
        this.#napUs = Math.min(this.#napMax, Math.max(this.#napUs, 4 * took, 50));
      }
      return true;
    }
    // The peer did not answer within the budget: hold this thread less (to
    // nothing; every 64th wait then tries 50 µs again), and without the slack.
    this.stats.napLost++;
    this.#napUs = this.#napUs < 20 ? 0 : this.#napUs / 2;
    restoreTimerSlack();
    return false;
  }

  /**
   * Whether this wait spins first: while recent waits were short and the two
   * sides may run at once (on one CPU a spinner only keeps its peer off it).
   */
  #spins(): boolean {
    // Every 64th wait, look at placement again (it may have changed).
    if ((++this.#sleeps & 63) === 0) {
      this.#apart = this.#region.updateAffinity(this.#side);
    }
    if (!this.#apart) this.stats.spinSkipApart++;
    else if (!this.#spinning) this.stats.spinSkipSlow++;
    return this.#spinning && this.#apart && this.#mayNap() &&
      (this.#parent || this.#region.load(SHM_PARENT_SHARED) === 0);
  }

  /**
   * Spins up to {@linkcode SPIN_US} for HEAD to move, yielding to microtasks
   * between looks (the code that will send the next message runs there).
   */
  async #spin(head: number): Promise<boolean> {
    const r = this.#region;
    const until = performance.now() + SPIN_US / 1000;
    let looks = 0;
    do {
      await SETTLED;
      if (r.load(this.#i + HEAD) !== head || this.#stopped) {
        this.stats.spinWon++;
        return true;
      }
    } while ((++looks & 15) !== 0 || performance.now() < until);
    // A lost spin may mean the sides now share a CPU: look before the next one.
    this.#apart = r.updateAffinity(this.#side);
    this.stats.spinLost++;
    return false;
  }
}

/**
 * A port over shared memory: whole packets straight from the ring when they are
 * there, the byte stream through a `BufferedReader` otherwise (a packet in
 * pieces, larger than the ring, or bytes the reader already holds).
 */
export function shmPort(
  endpoint: ShmEndpoint,
  limits: StepLimits,
  closeWrite: () => void,
  onEnd: () => void = () => {},
  kind: PortKind = "shm",
): PacketPort {
  const reader = new BufferedReader(endpoint, 256 * 1024);
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    onEnd();
  };
  return {
    kind,
    send: (envelope, bytes) => endpoint.writePacket(envelope, bytes),
    async read() {
      if (ended) return null;
      try {
        for (;;) {
          if (reader.buffered === 0) {
            const got = endpoint.tryReadPacket(limits);
            if (got === "wait") {
              await endpoint.waitReadable();
              continue;
            }
            if (got !== "stream") return got;
          }
          const packet = await reader.readStepPacket(limits);
          if (packet === null) end();
          return packet;
        }
      } catch (error) {
        end();
        throw error;
      }
    },
    closeWrite,
    flush: () => endpoint.flushed(),
  };
}
