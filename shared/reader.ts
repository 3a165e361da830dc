/**
 * A buffered reader that takes exactly N bytes, one frame, one STEP packet or one
 * line from a `Deno.Conn` (anything with `read`) or a `ReadableStream<Uint8Array>`,
 * across arbitrary chunk splits, each with an optional timeout.
 *
 * @module
 */
import {
  decodeStepHeader,
  DEFAULT_STEP_LIMITS,
  LineOverflow,
  parseStepJson,
  STEP_HEADER_SIZE,
  type StepLimits,
  type StepPacket,
} from "./codec.ts";
import { FrameTooLargeError, TimeoutError, UnexpectedEofError } from "./errors.ts";

/** Anything with a `Deno.Reader`-style `read`. */
export interface ByteSource {
  read(p: Uint8Array): Promise<number | null>;
}

/** Options for one read. */
export interface ReadOptions {
  /** Milliseconds to wait before throwing {@linkcode TimeoutError}; none by default. */
  timeout?: number;
  /** What is being read, for error messages. */
  what?: string;
}

/** Adapts a `ReadableStream<Uint8Array>` to a {@linkcode ByteSource}. */
export function streamSource(stream: ReadableStream<Uint8Array>): ByteSource & { cancel(): void } {
  const reader = stream.getReader();
  let leftover: Uint8Array | null = null;
  return {
    async read(p: Uint8Array): Promise<number | null> {
      if (leftover === null) {
        const { value, done } = await reader.read();
        if (done || value === undefined) return null;
        leftover = value;
      }
      const n = Math.min(p.length, leftover.length);
      p.set(leftover.subarray(0, n));
      leftover = n === leftover.length ? null : leftover.subarray(n);
      return n;
    },
    cancel() {
      reader.cancel().catch(() => {});
    },
  };
}

const INITIAL_CAPACITY = 64 * 1024;

/**
 * Buffered reader. A read that times out leaves its pending socket read in place,
 * so the next call picks up the same bytes and nothing is lost.
 */
export class BufferedReader {
  #source: ByteSource;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;
  #pending: Promise<number | null> | null = null;

  constructor(source: ByteSource | ReadableStream<Uint8Array>, capacity = INITIAL_CAPACITY) {
    this.#source = source instanceof ReadableStream ? streamSource(source) : source;
    this.#buf = new Uint8Array(capacity);
  }

  /** Bytes already buffered and not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** True once the source has ended and the buffer is drained. */
  get done(): boolean {
    return this.#eof && this.buffered === 0;
  }

  /** Reads exactly `n` bytes (a copy). EOF before `n` bytes throws {@linkcode UnexpectedEofError}. */
  async readExact(n: number, options: ReadOptions = {}): Promise<Uint8Array> {
    await this.#fill(n, options);
    if (this.buffered < n) throw new UnexpectedEofError(n - this.buffered, options.what ?? "frame");
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /**
   * Reads exactly `n` bytes, or returns `null` on a clean EOF before the first byte
   * (the peer closed between messages).
   */
  async readExactOrEof(n: number, options: ReadOptions = {}): Promise<Uint8Array | null> {
    if (this.buffered === 0) {
      await this.#fill(1, options);
      if (this.buffered === 0) return null;
    }
    return await this.readExact(n, options);
  }

  /** Returns whatever is buffered, or waits for at least one byte; `null` at EOF. */
  async readSome(options: ReadOptions = {}): Promise<Uint8Array | null> {
    if (this.buffered === 0) await this.#fill(1, options);
    if (this.buffered === 0) return null;
    const out = this.#buf.slice(this.#start, this.#end);
    this.#start = this.#end;
    return out;
  }

  /**
   * Reads one 4-byte big-endian length-prefixed frame. Returns `null` on a clean EOF
   * between frames.
   *
   * @throws {FrameTooLargeError} before allocating when the length is over `max`.
   */
  async readFrame(max: number, options: ReadOptions = {}): Promise<Uint8Array | null> {
    const header = await this.readExactOrEof(4, { what: "frame header", ...options });
    if (header === null) return null;
    const length = new DataView(header.buffer).getUint32(0);
    if (length > max) throw new FrameTooLargeError(length, max);
    return await this.readExact(length, { what: "frame", ...options });
  }

  /**
   * Reads one STEP packet. Returns `null` on a clean EOF between packets.
   *
   * @throws {FrameTooLargeError} from the header alone, before allocating.
   * @throws {import("./errors.ts").ProtocolError} for bad UTF-8, bad JSON or a non-object.
   */
  async readStepPacket(
    limits: StepLimits = DEFAULT_STEP_LIMITS,
    options: ReadOptions = {},
  ): Promise<StepPacket | null> {
    const header = await this.readExactOrEof(STEP_HEADER_SIZE, { what: "STEP header", ...options });
    if (header === null) return null;
    const { jsonLength, binaryLength } = decodeStepHeader(header, limits);
    const jsonBytes = await this.readExact(jsonLength, { what: "STEP JSON part", ...options });
    const json = parseStepJson(jsonBytes);
    const binary = await this.readExact(binaryLength, { what: "STEP binary part", ...options });
    return { json, binary };
  }

  /**
   * Reads one `\n`-terminated line (without `\n` or a `\r` before it). At EOF the
   * unterminated rest is returned as a last line; `null` when nothing is left.
   * A line longer than `max` is consumed up to its newline and returned as a
   * {@linkcode LineOverflow}.
   */
  async readLine(
    max: number,
    options: ReadOptions = {},
  ): Promise<Uint8Array | LineOverflow | null> {
    let scanned = 0;
    let dropped = 0;
    for (;;) {
      const view = this.#buf.subarray(this.#start + scanned, this.#end);
      const index = view.indexOf(0x0a);
      if (index !== -1) {
        const lineEnd = this.#start + scanned + index;
        const line = this.#buf.slice(this.#start, lineEnd);
        this.#start = lineEnd + 1;
        if (dropped > 0 || lineLength(line) > max) return new LineOverflow(dropped + line.length);
        return stripCr(line);
      }
      scanned = this.buffered;
      if (scanned > max + 1) {
        // Over the limit already: drop what we hold and keep scanning for the newline.
        dropped += scanned;
        this.#start = this.#end;
        scanned = 0;
      }
      if (this.#eof) {
        if (this.buffered === 0 && dropped === 0) return null;
        const rest = this.#buf.slice(this.#start, this.#end);
        this.#start = this.#end;
        if (dropped > 0 || rest.length > max) return new LineOverflow(dropped + rest.length);
        return rest;
      }
      await this.#fill(this.buffered + 1, options);
    }
  }

  /** Ensures at least `n` bytes are buffered, or the source ended. */
  async #fill(n: number, options: ReadOptions): Promise<void> {
    if (this.buffered >= n || this.#eof) return;
    const deadline = options.timeout === undefined
      ? undefined
      : performance.now() + options.timeout;
    while (this.buffered < n && !this.#eof) {
      if (this.#pending === null) {
        this.#reserve(n);
        this.#pending = this.#source.read(this.#buf.subarray(this.#end));
      }
      const count = await withDeadline(
        this.#pending,
        deadline,
        options.what ?? "data",
        options.timeout,
      );
      this.#pending = null;
      if (count === null) this.#eof = true;
      else this.#end += count;
    }
  }

  /** Makes room for `n` bytes from `#start`, compacting or growing the buffer. */
  #reserve(n: number): void {
    if (this.#start + n <= this.#buf.length && this.#end < this.#buf.length) return;
    // A pending read targets the old buffer; it cannot move until that read lands.
    if (this.#pending !== null) return;
    const size = this.buffered;
    if (n <= this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      let capacity = this.#buf.length;
      while (capacity < n) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = grown;
    }
    this.#start = 0;
    this.#end = size;
  }
}

async function withDeadline<T>(
  promise: Promise<T>,
  deadline: number | undefined,
  what: string,
  timeout: number | undefined,
): Promise<T> {
  if (deadline === undefined) return await promise;
  const remaining = deadline - performance.now();
  if (remaining <= 0) throw new TimeoutError(what, timeout ?? 0);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(what, timeout ?? 0)), remaining);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function lineLength(line: Uint8Array): number {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
}

function stripCr(line: Uint8Array): Uint8Array {
  return line.length > 0 && line[line.length - 1] === 0x0d
    ? line.subarray(0, line.length - 1)
    : line;
}
