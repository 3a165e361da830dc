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
 * Writes all of `bytes`, failing with {@linkcode TimeoutError} if the peer stops
 * reading for `timeoutMs` (a write to a full socket would otherwise wait forever).
 */
export async function writeWithTimeout(
  conn: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
  timeoutMs: number,
  what: string,
): Promise<void> {
  let offset = 0;
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

/** A growable scratch buffer, reused for every block a connection reads or sends. */
export class Scratch {
  #buf: Uint8Array;
  constructor(capacity = 64 * 1024) {
    this.#buf = new Uint8Array(capacity);
  }
  /** A view of `length` bytes (contents undefined), valid until the next call. */
  take(length: number): Uint8Array {
    if (length > this.#buf.length) {
      this.#buf = new Uint8Array(Math.max(length, this.#buf.length * 2));
    }
    return this.#buf.subarray(0, length);
  }
}

/** Reads STEP packets into a reusable buffer. */
export class PacketReceiver {
  readonly #source: ByteSource;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;

  constructor(source: ByteSource | ReadableStream<Uint8Array>, capacity = 256 * 1024) {
    this.#source = source instanceof ReadableStream ? streamSource(source) : source;
    this.#buf = new Uint8Array(capacity);
  }

  /**
   * The next packet, or `null` on a clean EOF between packets. Waits up to
   * `idleMs` for its header and `requestMs` for the rest.
   *
   * @throws {import("../shared/errors.ts").FrameTooLargeError} from the header, before reading on.
   * @throws {TimeoutError} or {UnexpectedEofError} mid-packet.
   */
  async next(limits: StepLimits, idleMs: number, requestMs: number): Promise<PacketView | null> {
    // The previous packet's views are released now: reclaim their space.
    if (this.#start === this.#end) this.#start = this.#end = 0;
    await this.#fill(STEP_HEADER_SIZE, idleMs, "a request", true);
    if (this.#end - this.#start === 0) return null;
    if (this.#end - this.#start < STEP_HEADER_SIZE) {
      throw new UnexpectedEofError(STEP_HEADER_SIZE - (this.#end - this.#start), "STEP header");
    }
    const { jsonLength, binaryLength } = decodeStepHeader(
      this.#buf.subarray(this.#start, this.#start + STEP_HEADER_SIZE),
      limits,
    );
    const total = STEP_HEADER_SIZE + jsonLength + binaryLength;
    await this.#fill(total, requestMs, "the rest of a request", false);
    const at = this.#start + STEP_HEADER_SIZE;
    const json = this.#buf.subarray(at, at + jsonLength);
    const binary = this.#buf.subarray(at + jsonLength, at + jsonLength + binaryLength);
    this.#start += total;
    return { json, binary };
  }

  async #fill(n: number, timeoutMs: number, what: string, eofOk: boolean): Promise<void> {
    if (this.#end - this.#start >= n) return;
    if (this.#start + n > this.#buf.length) {
      // Move the partial packet to the front, growing the buffer only for a larger packet.
      const held = this.#end - this.#start;
      const target = n > this.#buf.length
        ? new Uint8Array(Math.max(n, this.#buf.length * 2))
        : this.#buf;
      if (target === this.#buf) this.#buf.copyWithin(0, this.#start, this.#end);
      else target.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = target;
      this.#start = 0;
      this.#end = held;
    }
    const deadline = performance.now() + timeoutMs;
    while (this.#end - this.#start < n && !this.#eof) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new TimeoutError(what, timeoutMs);
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
