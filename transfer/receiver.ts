/**
 * A STEP packet receiver for the server's hot path: packets are read into one
 * reusable buffer and handed out as views, valid until the next call. Blocks of a
 * megabyte then cost no allocation each, which keeps the server's resident memory
 * flat during a large upload (a copy per block leaves the garbage collector
 * behind by a hundred megabytes or more). Framing stays in shared/codec.ts.
 *
 * shared/reader.ts's BufferedReader would do if it offered a view-returning read;
 * this module can go once it does.
 *
 * @module
 */
import { decodeStepHeader, STEP_HEADER_SIZE, type StepLimits } from "../shared/codec.ts";
import { TimeoutError, UnexpectedEofError } from "../shared/errors.ts";
import { type ByteSource, streamSource } from "../shared/reader.ts";

/** A packet as views into the receiver's buffer (valid until the next `next()`). */
export interface PacketView {
  json: Uint8Array;
  binary: Uint8Array;
}

/**
 * One timer per connection instead of one per read or write: `arm` before an
 * operation records when it must end, `disarm` after it; a single unref'd timer
 * checks the recorded time and, once it has passed, runs `onExpire` (which closes
 * the connection, so the pending read or write fails, and the caller throws
 * {@linkcode Deadline.expired} instead of that failure). A timer per operation cost about
 * 10 µs of latency each here (a lockstep block takes four operations); arming
 * costs a clock read.
 */
export class Deadline {
  #due = 0;
  #timeoutMs = 0;
  #what = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expired: TimeoutError | null = null;

  constructor(readonly onExpire: () => void) {}

  /** The timeout that fired, if one did (the connection is closed then). */
  get expired(): TimeoutError | null {
    return this.#expired;
  }

  /** The next operation must end within `timeoutMs`. */
  arm(timeoutMs: number, what: string): void {
    if (this.#expired) throw this.#expired;
    this.#due = performance.now() + timeoutMs;
    this.#timeoutMs = timeoutMs;
    this.#what = what;
    if (this.#timer === undefined) this.#schedule(timeoutMs);
  }

  /** The operation ended in time. */
  disarm(): void {
    this.#due = 0;
  }

  /** Stops the timer (the connection is done). */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = 0;
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => this.#check(), Math.max(1, ms));
    // A pending read or write keeps the process alive; the timer alone must not.
    Deno.unrefTimer(this.#timer);
  }

  #check(): void {
    this.#timer = undefined;
    if (this.#due === 0) return;
    const left = this.#due - performance.now();
    if (left > 0) {
      this.#schedule(left);
      return;
    }
    this.#expired = new TimeoutError(this.#what, this.#timeoutMs);
    this.onExpire();
  }
}

/**
 * Writes all of `bytes`, failing with {@linkcode TimeoutError} if the peer stops
 * reading for `timeoutMs` (a write to a full socket would otherwise wait forever).
 * With a {@linkcode Deadline}, its one timer watches the write.
 */
export async function writeWithTimeout(
  conn: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
  timeoutMs: number,
  what: string,
  deadline?: Deadline,
): Promise<void> {
  let offset = 0;
  if (deadline) {
    deadline.arm(timeoutMs, what);
    try {
      while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
    } catch (error) {
      throw deadline.expired ?? error;
    } finally {
      deadline.disarm();
    }
    return;
  }
  while (offset < bytes.length) {
    const write = conn.write(bytes.subarray(offset));
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      offset += await Promise.race([
        write,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new TimeoutError(what, timeoutMs)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The server is out of buffer memory for this request (the isolate-wide cap is reached). */
export class BusyError extends Error {
  constructor(readonly wanted: number, readonly limit: number) {
    super(
      `the server is busy: its ${limit}-byte buffer budget cannot hold ${wanted} more bytes; ` +
        `try again later`,
    );
    this.name = "BusyError";
  }
}

/**
 * A cap on the bytes all connections of one isolate hold in receive and send
 * buffers beyond their small base buffers. Buffers grow only as bytes arrive (or
 * as a reply is built), and each growth reserves from this budget: a client that
 * announces megabytes and sends nothing costs nothing, and many that send part of
 * a large packet cannot together hold more than the budget.
 */
export class ByteBudget {
  #used = 0;
  constructor(readonly limit: number) {}
  /** Bytes reserved now. */
  get used(): number {
    return this.#used;
  }
  /** Reserves `n` bytes, or throws {@linkcode BusyError} when the budget cannot hold them. */
  reserve(n: number): void {
    if (n <= 0) return;
    if (this.#used + n > this.limit) throw new BusyError(n, this.limit);
    this.#used += n;
  }
  /** Returns `n` reserved bytes. */
  release(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}

/** A budget that never refuses (tests and clients). */
export const UNLIMITED_BUDGET = new ByteBudget(Number.MAX_SAFE_INTEGER);

/** A growable scratch buffer, reused for every block a connection reads or sends. */
export class Scratch {
  #buf: Uint8Array;
  #reserved = 0;
  readonly #base: number;
  constructor(capacity = 64 * 1024, readonly budget: ByteBudget = UNLIMITED_BUDGET) {
    this.#base = capacity;
    this.#buf = new Uint8Array(capacity);
  }
  /**
   * A view of `length` bytes (contents undefined), valid until the next call.
   *
   * @throws {BusyError} when growing past the base size does not fit the budget.
   */
  take(length: number): Uint8Array {
    if (length > this.#buf.length) {
      const size = Math.max(length, this.#buf.length * 2);
      const extra = size - this.#base - this.#reserved;
      this.budget.reserve(extra);
      this.#reserved += extra;
      this.#buf = new Uint8Array(size);
    }
    return this.#buf.subarray(0, length);
  }
  /** Returns the reserved bytes to the budget and drops the buffer. */
  dispose(): void {
    this.budget.release(this.#reserved);
    this.#reserved = 0;
    this.#buf = new Uint8Array(0);
  }
}

/**
 * Where a packet's body of `length` bytes should be read instead of the
 * receiver's buffer (a buffer of the direct writer's ring: no copy later), or
 * null for the buffer. Asked only for a body not yet buffered whole.
 */
export type BodyTarget = (length: number) => Uint8Array | null | Promise<Uint8Array | null>;

/** Bytes a read asks for before a packet's body when the body has a target (see {@linkcode BodyTarget}). */
const HEAD_READ_BYTES = 64 * 1024;

/** Initial receive buffer of a connection: what an idle connection costs. */
export const RECEIVE_BASE_BYTES = 16 * 1024;

/**
 * Reads STEP packets into a reusable buffer. The buffer grows with the bytes that
 * have arrived, never with the lengths a header announces, and every growth past
 * the base size is reserved from a {@linkcode ByteBudget}.
 */
export class PacketReceiver {
  readonly #source: ByteSource;
  readonly #budget: ByteBudget;
  #buf: Uint8Array;
  #reserved = 0;
  #start = 0;
  #end = 0;
  #eof = false;

  readonly #deadline: Deadline | null;

  /**
   * With a {@linkcode Deadline} (a socket it can close), its one timer bounds
   * every read; without, each read races a timer of its own.
   */
  constructor(
    source: ByteSource | ReadableStream<Uint8Array>,
    budget: ByteBudget = UNLIMITED_BUDGET,
    capacity = RECEIVE_BASE_BYTES,
    deadline: Deadline | null = null,
  ) {
    this.#source = source instanceof ReadableStream ? streamSource(source) : source;
    this.#budget = budget;
    this.#buf = new Uint8Array(capacity);
    this.#deadline = deadline;
  }

  /** Current buffer capacity in bytes (for tests and diagnostics). */
  get capacity(): number {
    return this.#buf.length;
  }

  /** Returns the reserved bytes to the budget. */
  dispose(): void {
    this.#budget.release(this.#reserved);
    this.#reserved = 0;
    this.#buf = new Uint8Array(0);
    this.#start = this.#end = 0;
  }

  /**
   * The next packet, or `null` on a clean EOF between packets. Waits up to
   * `idleMs` for its header and `requestMs` for the rest.
   *
   * @throws {import("../shared/errors.ts").FrameTooLargeError} from the header, before reading on.
   * @throws {TimeoutError} or {UnexpectedEofError} mid-packet.
   * @throws {BusyError} when the packet's bytes do not fit the isolate's buffer budget.
   */
  async next(
    limits: StepLimits,
    idleMs: number,
    requestMs: number,
    bodyTarget?: BodyTarget,
  ): Promise<PacketView | null> {
    // The previous packet's views are released now: reclaim their space.
    if (this.#start === this.#end) this.#start = this.#end = 0;
    // With a body target, reads before the body stop early: a read of the whole
    // packet into the buffer would leave nothing to read into the target.
    const cap = bodyTarget !== undefined ? HEAD_READ_BYTES : Infinity;
    await this.#fill(STEP_HEADER_SIZE, idleMs, "a request", true, cap);
    if (this.#end - this.#start === 0) return null;
    if (this.#end - this.#start < STEP_HEADER_SIZE) {
      throw new UnexpectedEofError(STEP_HEADER_SIZE - (this.#end - this.#start), "STEP header");
    }
    const { jsonLength, binaryLength } = decodeStepHeader(
      this.#buf.subarray(this.#start, this.#start + STEP_HEADER_SIZE),
      limits,
    );
    const head = STEP_HEADER_SIZE + jsonLength;
    const total = head + binaryLength;
    if (
      bodyTarget !== undefined && this.#deadline !== null && binaryLength > 0 &&
      this.#end - this.#start < total
    ) {
      await this.#fill(head, requestMs, "the rest of a request", false, cap);
      const target = bodyTarget(binaryLength);
      const into = target instanceof Promise ? await target : target;
      if (into !== null && into.length >= binaryLength) {
        const at = this.#start + STEP_HEADER_SIZE;
        const json = this.#buf.subarray(at, at + jsonLength);
        const have = Math.min(this.#end - (at + jsonLength), binaryLength);
        into.set(this.#buf.subarray(at + jsonLength, at + jsonLength + have));
        this.#start = at + jsonLength + have;
        await this.#readInto(into, have, binaryLength, requestMs);
        return { json, binary: into.subarray(0, binaryLength) };
      }
    }
    await this.#fill(total, requestMs, "the rest of a request", false);
    const at = this.#start + STEP_HEADER_SIZE;
    const json = this.#buf.subarray(at, at + jsonLength);
    const binary = this.#buf.subarray(at + jsonLength, at + jsonLength + binaryLength);
    this.#start += total;
    return { json, binary };
  }

  /**
   * Reads a body's bytes `[have, n)` from the socket straight into `into`, never
   * past them (the next packet stays in the socket for the buffer).
   */
  async #readInto(into: Uint8Array, have: number, n: number, timeoutMs: number): Promise<void> {
    const deadline = this.#deadline!;
    deadline.arm(timeoutMs, "the rest of a request");
    try {
      while (have < n) {
        let count: number | null;
        try {
          count = await this.#source.read(into.subarray(have, n));
        } catch (error) {
          throw deadline.expired ?? error;
        }
        if (count === null) {
          this.#eof = true;
          throw new UnexpectedEofError(n - have, "the rest of a request");
        }
        have += count;
      }
    } finally {
      deadline.disarm();
    }
  }

  /** Makes room for at least one more byte, growing (within `n` and the budget) only when full. */
  #makeRoom(n: number): void {
    if (this.#end < this.#buf.length) return;
    const held = this.#end - this.#start;
    if (this.#start > 0 && held < this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = held;
      return;
    }
    // Full of bytes that arrived: double, but never past what the packet needs.
    const size = Math.min(Math.max(n, RECEIVE_BASE_BYTES), this.#buf.length * 2);
    const extra = size - this.#buf.length;
    this.#budget.reserve(extra);
    this.#reserved += extra;
    const grown = new Uint8Array(size);
    grown.set(this.#buf.subarray(this.#start, this.#end));
    this.#buf = grown;
    this.#start = 0;
    this.#end = held;
  }

  /** Reads until `n` bytes are buffered; each read of a socket asks for at most `cap` bytes. */
  async #fill(
    n: number,
    timeoutMs: number,
    what: string,
    eofOk: boolean,
    cap = Infinity,
  ): Promise<void> {
    if (this.#end - this.#start >= n) return;
    if (this.#start + n > this.#buf.length && this.#start > 0) {
      // Move the partial packet to the front; growth waits for bytes to arrive.
      const held = this.#end - this.#start;
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = held;
    }
    if (this.#deadline) {
      const deadline = this.#deadline;
      deadline.arm(timeoutMs, what);
      try {
        while (this.#end - this.#start < n && !this.#eof) {
          this.#makeRoom(this.#start + n);
          let count: number | null;
          try {
            const room = this.#buf.subarray(this.#end);
            count = await this.#source.read(
              room.length > cap
                ? room.subarray(0, Math.max(cap, this.#start + n - this.#end))
                : room,
            );
          } catch (error) {
            throw deadline.expired ?? error;
          }
          if (count === null) this.#eof = true;
          else this.#end += count;
        }
      } finally {
        deadline.disarm();
      }
    }
    const deadline = performance.now() + timeoutMs;
    while (this.#end - this.#start < n && !this.#eof) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new TimeoutError(what, timeoutMs);
      this.#makeRoom(this.#start + n);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const count = await Promise.race([
        this.#source.read(this.#buf.subarray(this.#end)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new TimeoutError(what, timeoutMs)), remaining);
        }),
      ]).finally(() => clearTimeout(timer));
      if (count === null) this.#eof = true;
      else this.#end += count;
    }
    const held = this.#end - this.#start;
    if (held < n && !(eofOk && held === 0)) {
      if (eofOk && held < STEP_HEADER_SIZE) return;
      throw new UnexpectedEofError(n - held, what);
    }
  }
}
