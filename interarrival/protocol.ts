/**
 * The study's wire format: the server greets each connection with one line, the
 * client sends newline-delimited `Worker W, Event E, Timestamp T` messages.
 * Pure functions.
 *
 * @module
 */

/** The line the server sends first on every connection (the study's words). */
export const GREETING = "Hello! You are connected to the server.";

/** Default TCP port (the study's). */
export const DEFAULT_PORT = 55000;

/** Default cap on one message's length in bytes; longer lines close the connection. */
export const DEFAULT_MAX_LINE = 64 * 1024;

/** One message a client worker sends; `timestamp` is epoch milliseconds. */
export function formatEvent(worker: number, event: number, timestamp: number): string {
  return `Worker ${worker}, Event ${event}, Timestamp ${timestamp.toFixed(3)}`;
}

/** The fields of a well-formed message, or null for any other text. */
export function parseEvent(
  text: string,
): { worker: number; event: number; timestamp: number } | null {
  const match = /^Worker (\d+),? Event (\d+), Timestamp (\d+(?:\.\d+)?)$/.exec(text);
  if (!match) return null;
  return { worker: Number(match[1]), event: Number(match[2]), timestamp: Number(match[3]) };
}

/** The study's verbose line for a received message. */
export function formatSentence(text: string, remote: string): string {
  return `Sentence "${text}" received from ${remote}`;
}

/** `host:port`, with brackets around IPv6 hosts. */
export function formatAddress(address: { hostname: string; port: number }): string {
  return address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
}

// ---------------------------------------------------------------------------
// Binary messages: a fixed header, then padding up to the message's drawn size.
//
//   0  u8   MESSAGE_MAGIC (0xA7: never the first byte of a text line or of UTF-8)
//   1  u8   version (1)
//   2  u16  flags (FLAG_LAST on a flow's last message)
//   4  u32  length of the whole message in bytes, header included
//   8  u32  flow id
//  12  u32  sequence number, high 32 bits
//  16  u32  sequence number, low 32 bits (UDP payload offset 16: nftables can match it)
//  20  u32  send time, epoch microseconds (client clock), high 32 bits
//  24  u32  send time, low 32 bits
//
// Big-endian. Over TCP the length field frames the stream; over UDP one datagram
// carries one message. A TCP connection whose first byte is MESSAGE_MAGIC carries
// binary messages; any other first byte means the study's text lines.

/** The magic first byte of every binary message, and the version this code writes and reads. */
export const MESSAGE_MAGIC = 0xa7, MESSAGE_VERSION = 1;
/** Bytes of the header (the smallest message); the largest UDP payload over IPv4 (65,535 − 28). */
export const HEADER_SIZE = 28, MAX_UDP_PAYLOAD = 65_507;
/** Flag of a flow's last message; byte offset of the sequence's low 32 bits (packet filters). */
export const FLAG_LAST = 1, SEQUENCE_LOW_OFFSET = 16;

/** What a message header carries. */
export interface MessageHeader {
  /** {@linkcode FLAG_LAST} or 0. */
  flags: number;
  /** Whole message in bytes, header included. */
  length: number;
  /** The flow id (a client's worker number, or a flow script's line). */
  flow: number;
  /** From 0 in each flow. */
  sequence: number;
  /** Send time, epoch microseconds on the client's clock. */
  sentUs: number;
}

const TWO_32 = 0x1_0000_0000;

/**
 * Writes a header into the first {@linkcode HEADER_SIZE} bytes of `target`
 * (the padding after it is left as it is). `length` must be in
 * `[HEADER_SIZE, 2^32)`, `sequence` and `sentUs` in `[0, 2^53)`.
 */
export function encodeHeader(target: Uint8Array, header: MessageHeader): void {
  const view = new DataView(target.buffer, target.byteOffset, HEADER_SIZE);
  writeHeader(view, 0, header.flags, header.length, header.flow, header.sequence, header.sentUs);
}

/**
 * {@linkcode encodeHeader}'s bytes written at `offset` of `view` from plain
 * numbers: a sender's hot path patches headers in place without allocating.
 */
export function writeHeader(
  view: DataView,
  offset: number,
  flags: number,
  length: number,
  flow: number,
  sequence: number,
  sentUs: number,
): void {
  view.setUint8(offset, MESSAGE_MAGIC);
  view.setUint8(offset + 1, MESSAGE_VERSION);
  view.setUint16(offset + 2, flags);
  view.setUint32(offset + 4, length);
  view.setUint32(offset + 8, flow >>> 0);
  view.setUint32(offset + 12, Math.floor(sequence / TWO_32));
  view.setUint32(offset + 16, sequence % TWO_32);
  const us = Math.max(0, Math.round(sentUs));
  view.setUint32(offset + 20, Math.floor(us / TWO_32));
  view.setUint32(offset + 24, us % TWO_32);
}

/** A new message of `header.length` bytes: the header, then zero padding. */
export function encodeMessage(header: MessageHeader): Uint8Array {
  const bytes = new Uint8Array(Math.max(HEADER_SIZE, header.length));
  encodeHeader(bytes, { ...header, length: bytes.length });
  return bytes;
}

/** Why bytes are not a message. */
export type HeaderError = "short" | "magic" | "version" | "length";

/**
 * Reads the header at `offset`, or says why it is not one: fewer than
 * {@linkcode HEADER_SIZE} bytes, a wrong magic byte or version, or a length
 * outside `[HEADER_SIZE, maxLength]`.
 */
export function decodeHeader(
  bytes: Uint8Array,
  offset = 0,
  maxLength = 0xffff_ffff,
): MessageHeader | HeaderError {
  if (bytes.length - offset < HEADER_SIZE) return "short";
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, HEADER_SIZE);
  if (view.getUint8(0) !== MESSAGE_MAGIC) return "magic";
  if (view.getUint8(1) !== MESSAGE_VERSION) return "version";
  const length = view.getUint32(4);
  if (length < HEADER_SIZE || length > maxLength) return "length";
  return {
    flags: view.getUint16(2),
    length,
    flow: view.getUint32(8),
    sequence: view.getUint32(12) * TWO_32 + view.getUint32(16),
    sentUs: view.getUint32(20) * TWO_32 + view.getUint32(24),
  };
}

/** A message cut out of a TCP stream. */
export type SplitResult = MessageHeader | { error: HeaderError; detail: string };

/**
 * Cuts binary messages out of a TCP byte stream, however the reads split them.
 * Only the header of a message is kept while its padding arrives, so memory
 * stays at one header whatever length a message announces.
 */
export class MessageSplitter {
  #header = new Uint8Array(HEADER_SIZE);
  #have = 0;
  #current: MessageHeader | null = null;
  #remaining = 0;
  #failed = false;

  constructor(readonly maxLength: number) {}

  /** Feeds a chunk; returns the messages it completes, or an error (then nothing more). */
  push(chunk: Uint8Array): SplitResult[] {
    const out: SplitResult[] = [];
    let i = 0;
    while (i < chunk.length && !this.#failed) {
      if (this.#current === null) {
        const take = Math.min(HEADER_SIZE - this.#have, chunk.length - i);
        this.#header.set(chunk.subarray(i, i + take), this.#have);
        this.#have += take;
        i += take;
        if (this.#have < HEADER_SIZE) break;
        const header = decodeHeader(this.#header, 0, this.maxLength);
        this.#have = 0;
        if (typeof header === "string") {
          this.#failed = true;
          out.push({
            error: header,
            detail: headerErrorText(header, this.#header, this.maxLength),
          });
          break;
        }
        this.#current = header;
        this.#remaining = header.length - HEADER_SIZE;
      } else {
        const take = Math.min(this.#remaining, chunk.length - i);
        this.#remaining -= take;
        i += take;
      }
      if (this.#current !== null && this.#remaining === 0) {
        out.push(this.#current);
        this.#current = null;
      }
    }
    return out;
  }

  /** Bytes of an unfinished message held or skipped so far (0 between messages). */
  get pending(): number {
    return this.#current ? this.#current.length - this.#remaining : this.#have;
  }
}

/** What is wrong with a header, in words. */
export function headerErrorText(kind: HeaderError, bytes: Uint8Array, maxLength: number): string {
  switch (kind) {
    case "short":
      return `a message shorter than its ${HEADER_SIZE}-byte header`;
    case "magic":
      return `a message starting with byte ${bytes[0]}, not ${MESSAGE_MAGIC}`;
    case "version":
      return `message version ${bytes[1]}; this server reads version ${MESSAGE_VERSION}`;
    case "length": {
      const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4);
      return `a message announcing ${length} bytes, outside ${HEADER_SIZE}..${maxLength}`;
    }
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Splits the study's newline-delimited stream into lines (without `\n` and a
 * `\r` before it). A line that lies inside one chunk is passed as a view, not a
 * copy, so a flood of short lines costs no allocation per line; only an
 * unfinished line is kept, up to `max` bytes.
 */
export class LineScanner {
  #parts: Uint8Array[] = [];
  #partial = 0;

  constructor(readonly max: number) {}

  /**
   * Calls `line` with each complete line (a view, valid during the call).
   * Returns false as soon as a line, finished or not, is longer than `max`:
   * the caller then stops reading.
   */
  push(chunk: Uint8Array, line: (bytes: Uint8Array) => void): boolean {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) break;
      let piece = newline === start ? EMPTY : chunk.subarray(start, newline);
      if (this.#partial > 0) {
        piece = joinParts([...this.#parts, piece], this.#partial + piece.length);
        this.#parts = [];
        this.#partial = 0;
      }
      if (piece.length > 0 && piece[piece.length - 1] === 0x0d) {
        piece = piece.subarray(0, piece.length - 1);
      }
      if (piece.length > this.max) return false;
      line(piece);
      start = newline + 1;
    }
    if (start < chunk.length) {
      this.#parts.push(chunk.slice(start));
      this.#partial += chunk.length - start;
      if (this.#partial > this.max + 1) return false;
    }
    return true;
  }

  /** The unterminated last line, if any (at the end of the stream). */
  flush(): Uint8Array | undefined {
    if (this.#partial === 0) return undefined;
    const line = joinParts(this.#parts, this.#partial);
    this.#parts = [];
    this.#partial = 0;
    return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
  }

  /** Bytes held of an unterminated line. */
  get pending(): number {
    return this.#partial;
  }
}

function joinParts(parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  parts.reduce((offset, part) => (out.set(part, offset), offset + part.length), 0);
  return out;
}
