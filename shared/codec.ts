/**
 * Pure framing codecs over `Uint8Array`: no sockets here, so every function can be
 * tested by feeding bytes split at any boundary.
 *
 * - Length-prefixed frames: a 4-byte big-endian length, then the payload.
 * - STEP packets: `!II` (JSON length, binary length, both big-endian, both in
 *   bytes), then UTF-8 JSON, then the binary part. The same layout carries the
 *   toolkit's own worker and child messages.
 * - Newline-delimited text.
 *
 * Every decoder takes a maximum size and rejects a larger frame before allocating.
 *
 * @module
 */
import { FrameTooLargeError, ProtocolError } from "./errors.ts";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** Largest value a 4-byte unsigned length can hold. */
export const MAX_U32 = 0xffff_ffff;

/** Encodes `payload` as a 4-byte big-endian length followed by the payload. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_U32) throw new FrameTooLargeError(payload.length, MAX_U32);
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/** A frame decoded from the front of a buffer, and how many bytes it used. */
export interface Decoded<T> {
  value: T;
  /** Bytes consumed from the front of the input. */
  size: number;
}

/**
 * Decodes one length-prefixed frame from the front of `buf`.
 *
 * @returns the payload (a view into `buf`) and the bytes used, or `undefined`
 * when `buf` does not yet hold a whole frame.
 * @throws {FrameTooLargeError} as soon as the header announces more than `max` bytes.
 */
export function decodeFrame(buf: Uint8Array, max: number): Decoded<Uint8Array> | undefined {
  if (buf.length < 4) return undefined;
  const length = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0);
  if (length > max) throw new FrameTooLargeError(length, max);
  if (buf.length < 4 + length) return undefined;
  return { value: buf.subarray(4, 4 + length), size: 4 + length };
}

/** Incremental decoder for length-prefixed frames arriving in arbitrary chunks. */
export class FrameDecoder {
  #buffer: Uint8Array = new Uint8Array(0);

  constructor(readonly max: number) {}

  /** Adds a chunk and returns every frame it completes (copies, safe to keep). */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#buffer = concat(this.#buffer, chunk);
    const frames: Uint8Array[] = [];
    let offset = 0;
    for (;;) {
      const decoded = decodeFrame(this.#buffer.subarray(offset), this.max);
      if (decoded === undefined) break;
      frames.push(decoded.value.slice());
      offset += decoded.size;
    }
    this.#buffer = this.#buffer.slice(offset);
    return frames;
  }

  /** Bytes received that do not yet form a whole frame. */
  get pending(): number {
    return this.#buffer.length;
  }
}

/** Limits for decoding STEP packets. */
export interface StepLimits {
  /** Largest JSON part accepted, in bytes. */
  maxJson: number;
  /** Largest binary part accepted, in bytes. */
  maxBinary: number;
}

/** Default STEP limits: 1 MiB of JSON, 16 MiB of binary. */
export const DEFAULT_STEP_LIMITS: StepLimits = { maxJson: 1 << 20, maxBinary: 16 << 20 };

/** A decoded STEP packet. */
export interface StepPacket {
  /** The JSON part; always an object. */
  json: Record<string, unknown>;
  /** The binary part (empty when there is none). */
  binary: Uint8Array;
}

/** Size of the STEP header: JSON length and binary length, 4 bytes each. */
export const STEP_HEADER_SIZE = 8;

/**
 * Encodes a STEP packet. Lengths are counted in bytes (the course server counted
 * characters, which breaks on non-ASCII text).
 */
export function encodeStepPacket(
  json: Record<string, unknown>,
  binary: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return encodeStepParts(encoder.encode(JSON.stringify(json)), binary);
}

/** Encodes a STEP packet from an already-encoded JSON part. */
export function encodeStepParts(jsonBytes: Uint8Array, binary: Uint8Array): Uint8Array {
  if (binary.length > MAX_U32) throw new FrameTooLargeError(binary.length, MAX_U32, "Binary part");
  const out = new Uint8Array(STEP_HEADER_SIZE + jsonBytes.length + binary.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, jsonBytes.length);
  view.setUint32(4, binary.length);
  out.set(jsonBytes, STEP_HEADER_SIZE);
  out.set(binary, STEP_HEADER_SIZE + jsonBytes.length);
  return out;
}

/**
 * Reads and checks a STEP header.
 *
 * @throws {FrameTooLargeError} when either length is over its limit.
 */
export function decodeStepHeader(
  header: Uint8Array,
  limits: StepLimits = DEFAULT_STEP_LIMITS,
): { jsonLength: number; binaryLength: number } {
  const view = new DataView(header.buffer, header.byteOffset, STEP_HEADER_SIZE);
  const jsonLength = view.getUint32(0);
  const binaryLength = view.getUint32(4);
  if (jsonLength > limits.maxJson) {
    throw new FrameTooLargeError(jsonLength, limits.maxJson, "JSON part");
  }
  if (binaryLength > limits.maxBinary) {
    throw new FrameTooLargeError(binaryLength, limits.maxBinary, "Binary part");
  }
  return { jsonLength, binaryLength };
}

/**
 * Parses a STEP JSON part: strict UTF-8, valid JSON, and an object.
 *
 * @throws {ProtocolError} naming which of the three failed.
 */
export function parseStepJson(bytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = strictDecoder.decode(bytes);
  } catch (error) {
    throw new ProtocolError("JSON part is not valid UTF-8", { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ProtocolError("JSON part is not valid JSON", { cause: error });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(
      `JSON part must be an object, got ${Array.isArray(value) ? "an array" : typeof value}`,
    );
  }
  return value as Record<string, unknown>;
}

/**
 * Decodes one STEP packet from the front of `buf`.
 *
 * @returns the packet (binary part copied) and bytes used, or `undefined` if `buf`
 * does not yet hold a whole packet.
 * @throws {FrameTooLargeError} from the header alone, before any allocation.
 * @throws {ProtocolError} for bad UTF-8, bad JSON or a non-object.
 */
export function decodeStepPacket(
  buf: Uint8Array,
  limits: StepLimits = DEFAULT_STEP_LIMITS,
): Decoded<StepPacket> | undefined {
  if (buf.length < STEP_HEADER_SIZE) return undefined;
  const { jsonLength, binaryLength } = decodeStepHeader(buf, limits);
  const size = STEP_HEADER_SIZE + jsonLength + binaryLength;
  if (buf.length < size) return undefined;
  const json = parseStepJson(buf.subarray(STEP_HEADER_SIZE, STEP_HEADER_SIZE + jsonLength));
  const binary = buf.slice(STEP_HEADER_SIZE + jsonLength, size);
  return { value: { json, binary }, size };
}

/** Marks a line that went over the limit; the decoder skips to the next newline. */
export class LineOverflow {
  constructor(
    /** Bytes of the line seen before it was dropped (at least `max + 1`). */
    readonly length: number,
  ) {}
}

/**
 * Incremental newline-delimited decoder. Lines come out without their `\n`
 * (and without a `\r` before it). A line longer than `max` comes out as one
 * {@linkcode LineOverflow}, and its bytes up to the next newline are dropped, so a
 * server can answer with an error and keep the connection in sync.
 */
export class LineDecoder {
  #parts: Uint8Array[] = [];
  #partial = 0;
  #overflowing = false;
  #overflowLength = 0;

  constructor(readonly max: number) {}

  /** Adds a chunk; returns the lines (copies) and overflows it completes, in order. */
  push(chunk: Uint8Array): (Uint8Array | LineOverflow)[] {
    const out: (Uint8Array | LineOverflow)[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) break;
      this.#take(chunk.subarray(start, newline), out, true);
      start = newline + 1;
    }
    if (start < chunk.length) this.#take(chunk.subarray(start), out, false);
    return out;
  }

  /** Ends the input: returns the unterminated last line, if any (an EOF or a pause). */
  flush(): Uint8Array | LineOverflow | undefined {
    if (this.#overflowing) {
      const overflow = new LineOverflow(this.#overflowLength);
      this.#overflowing = false;
      this.#overflowLength = 0;
      return overflow;
    }
    if (this.#partial === 0 && this.#parts.length === 0) return undefined;
    const line = stripCr(concatAll(this.#parts, this.#partial));
    this.#parts = [];
    this.#partial = 0;
    return line;
  }

  /** Bytes held of an unterminated line. */
  get pending(): number {
    return this.#overflowing ? this.#overflowLength : this.#partial;
  }

  #take(piece: Uint8Array, out: (Uint8Array | LineOverflow)[], complete: boolean): void {
    if (this.#overflowing) {
      this.#overflowLength += piece.length;
      if (complete) {
        out.push(new LineOverflow(this.#overflowLength));
        this.#overflowing = false;
        this.#overflowLength = 0;
      }
      return;
    }
    // A `\r` before the newline does not count against the limit.
    const counted = complete && piece.length > 0 && piece[piece.length - 1] === 0x0d
      ? piece.length - 1
      : piece.length;
    if (this.#partial + counted > this.max) {
      this.#overflowing = true;
      this.#overflowLength = this.#partial + piece.length;
      this.#parts = [];
      this.#partial = 0;
      if (complete) {
        out.push(new LineOverflow(this.#overflowLength));
        this.#overflowing = false;
        this.#overflowLength = 0;
      }
      return;
    }
    if (complete) {
      const line = this.#parts.length === 0
        ? piece.slice()
        : concatAll([...this.#parts, piece], this.#partial + piece.length);
      this.#parts = [];
      this.#partial = 0;
      out.push(stripCr(line));
    } else {
      this.#parts.push(piece.slice());
      this.#partial += piece.length;
    }
  }
}

/** Encodes text as one line (appends `\n`). */
export function encodeLine(text: string): Uint8Array {
  return encoder.encode(text + "\n");
}

/** Decodes UTF-8, replacing invalid sequences with U+FFFD (never throws). */
export function decodeText(bytes: Uint8Array): string {
  return lenientDecoder.decode(bytes);
}

/**
 * Decodes strict UTF-8.
 *
 * @throws {ProtocolError} when the bytes are not valid UTF-8.
 */
export function decodeUtf8Strict(bytes: Uint8Array, what = "text"): string {
  try {
    return strictDecoder.decode(bytes);
  } catch (error) {
    throw new ProtocolError(`${what} is not valid UTF-8`, { cause: error });
  }
}

/** Joins two byte arrays into a new one. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b.slice();
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const lenientDecoder = new TextDecoder();

/** Joins byte arrays into a new one (`total`: their summed length, when the caller knows it). */
export function concatAll(
  parts: readonly Uint8Array[],
  total = parts.reduce((sum, part) => sum + part.length, 0),
): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function stripCr(line: Uint8Array): Uint8Array {
  return line.length > 0 && line[line.length - 1] === 0x0d
    ? line.subarray(0, line.length - 1)
    : line;
}
