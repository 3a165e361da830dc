/**
 * The message bounced by every transport: `size` bytes with the counter (u32,
 * little-endian) in the first four bytes and, from 8 bytes up, again in the last
 * four, so a truncated or misassembled message is caught, never averaged away.
 * Pure functions over `Uint8Array`.
 *
 * @module
 */

/**
 * The counter the first timed message carries: after a warm-up of any length
 * the measuring side jumps to it, so the echo side knows where the timed runs
 * begin without knowing how many round trips the warm-up took.
 */
export const RUN_EPOCH = 0x4000_0000;
/** Smallest message: one u32 counter. */
export const MIN_SIZE = 4;
/** Largest message (64 MiB): every buffer on every side is allocated at this size. */
export const MAX_SIZE = 64 << 20;

/** A new message of `size` bytes filled with a fixed pattern and stamped with `counter`. */
export function newMessage(size: number, counter: number): Uint8Array {
  if (!Number.isInteger(size) || size < MIN_SIZE || size > MAX_SIZE) {
    throw new RangeError(`message size ${size} is outside ${MIN_SIZE}..${MAX_SIZE} bytes`);
  }
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  stampCounter(bytes, counter);
  return bytes;
}

/** Writes `counter` at the head (and tail, for 8 bytes and more) of `bytes`. */
export function stampCounter(bytes: Uint8Array, counter: number): void {
  // Byte arithmetic rather than a DataView: no allocation on the hot path.
  writeU32(bytes, 0, counter);
  if (bytes.length >= 8) writeU32(bytes, bytes.length - 4, counter);
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = (value >>> 8) & 0xff;
  bytes[at + 2] = (value >>> 16) & 0xff;
  bytes[at + 3] = (value >>> 24) & 0xff;
}

function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

/** Reads the counter; throws when the message has the wrong size or head and tail differ. */
export function readCounter(bytes: Uint8Array, size: number): number {
  if (bytes.length !== size) {
    throw new RangeError(`message of ${bytes.length} bytes where ${size} were sent`);
  }
  const head = readU32(bytes, 0);
  if (bytes.length >= 8) {
    const tail = readU32(bytes, bytes.length - 4);
    if (tail !== head) {
      throw new RangeError(`message counter ${head} at the head but ${tail} at the tail`);
    }
  }
  return head;
}

/**
 * What the echo side does: checks the message, adds one to its counter in place
 * and returns the new value.
 */
export function bumpCounter(bytes: Uint8Array, size: number): number {
  const next = (readCounter(bytes, size) + 1) >>> 0;
  stampCounter(bytes, next);
  return next;
}

/**
 * Reads every byte (a 32-bit word sum), so a zero-copy transport is charged for
 * the receiver touching the data, as a real consumer would.
 */
export function touchAll(bytes: Uint8Array): number {
  let sum = 0;
  const words = bytes.byteOffset % 4 === 0 ? bytes.length >>> 2 : 0;
  if (words > 0) {
    const view = new Int32Array(bytes.buffer, bytes.byteOffset, words);
    for (let i = 0; i < words; i++) sum = (sum + view[i]) | 0;
  }
  for (let i = words * 4; i < bytes.length; i++) sum = (sum + bytes[i]) | 0;
  return sum;
}

/** The error for an echoed counter that is not the one expected. */
export function counterMismatch(roundTrip: number, sent: number, got: number): Error {
  return new Error(
    `round trip ${roundTrip}: sent counter ${sent}, expected ${sent + 1} back, got ${got}`,
  );
}
