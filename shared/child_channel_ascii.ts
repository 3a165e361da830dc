/**
 * The shortcut for short ASCII JSON parts of the shared-memory endpoint
 * (child_channel_shm_endpoint.ts): most envelopes are short ASCII, and these
 * encode and decode them without a call into the runtime's text codecs.
 *
 * @module
 */
import { parseStepJson } from "./codec.ts";
import { NULL_MESSAGE_TEXT } from "./child_channel_port.ts";

/** Parts up to this many bytes take the ASCII shortcut (no text codec call). */
const ASCII_SHORTCUT = 512;

/**
 * Writes `text` as bytes into `out` when it is short ASCII (most envelopes are):
 * the count, or -1 (then use `TextEncoder`, which calls into the runtime).
 */
export function asciiInto(text: string, out: Uint8Array): number {
  const n = text.length;
  if (n > ASCII_SHORTCUT) return -1;
  for (let i = 0; i < n; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return -1;
    out[i] = code;
  }
  return n;
}

function isShortAscii(bytes: Uint8Array): boolean {
  if (bytes.length > ASCII_SHORTCUT) return false;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] > 0x7f) return false;
  return true;
}

/**
 * `parseStepJson` with a shortcut for short ASCII parts (ASCII is valid UTF-8,
 * so the result is the same); anything else, and every error, goes through it.
 */
export function parseJsonPart(bytes: Uint8Array): Record<string, unknown> {
  if (isShortAscii(bytes)) {
    try {
      const value = JSON.parse(String.fromCharCode.apply(null, bytes as unknown as number[]));
      if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
    } catch {
      // parseStepJson names the error.
    }
  }
  return parseStepJson(bytes);
}

/**
 * {@linkcode parseJsonPart} over bytes in place (`bytes[at..at+n)`, e.g. in a
 * ring), remembering the text of the last short ASCII part: a channel's
 * envelopes mostly repeat (`{"t":"m","data":null}` before every binary
 * message), and comparing the bytes with the last ones costs less than making
 * the string again. Each call still parses a new object.
 */
export class JsonPartReader {
  readonly #key = new Uint8Array(ASCII_SHORTCUT);
  #keyLength = -1;
  #text = "";

  /** The JSON object in `bytes[at..at+n)`; errors as {@linkcode parseJsonPart}'s. */
  parse(bytes: Uint8Array, at: number, n: number): Record<string, unknown> {
    if (n > ASCII_SHORTCUT) return parseJsonPart(bytes.subarray(at, at + n));
    return this.parseRing(bytes, at, n, -1);
  }

  /**
   * The JSON object in the `n` bytes of a ring from `at`, wrapping at the
   * ring's end (`mask`: its length − 1; −1 for a plain array): index
   * arithmetic instead of a branch for a part split by the end, so the code
   * that reads a split part is the code that reads every part (a branch first
   * taken after V8 optimized the caller threw that code away: measured, every
   * wrap of a 1 MiB ring cost a deoptimization). Parts over
   * {@linkcode ASCII_SHORTCUT} bytes or not ASCII are copied out first.
   */
  parseRing(ring: Uint8Array, at: number, n: number, mask: number): Record<string, unknown> {
    if (n > ASCII_SHORTCUT) return parseJsonPart(ringPart(ring, at, n, mask));
    const key = this.#key;
    let same = n === this.#keyLength;
    for (let i = 0; same && i < n; i++) same = key[i] === ring[(at + i) & mask];
    if (!same && !this.#remember(ring, at, n, mask)) {
      return parseStepJson(copyRing(ring, at, n, mask));
    }
    // The commonest envelope, made without parsing (the same object JSON.parse makes).
    if (this.#text === NULL_MESSAGE_TEXT) return { t: "m", data: null };
    try {
      const value = JSON.parse(this.#text);
      if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
    } catch {
      // parseStepJson names the error.
    }
    return parseStepJson(copyRing(ring, at, n, mask));
  }

  /** Keeps a new short part as the key and its text; false when it is not ASCII. */
  #remember(ring: Uint8Array, at: number, n: number, mask: number): boolean {
    const key = this.#key;
    for (let i = 0; i < n; i++) {
      const code = ring[(at + i) & mask];
      if (code > 0x7f) {
        this.#keyLength = -1;
        return false;
      }
      key[i] = code;
    }
    this.#keyLength = n;
    this.#text = String.fromCharCode.apply(null, key.subarray(0, n) as unknown as number[]);
    return true;
  }
}

/**
 * The `n` bytes of a ring from `at`: a view when they are in one piece, else a
 * copy of the two pieces (for large parts, where a byte-by-byte copy costs).
 */
function ringPart(ring: Uint8Array, at: number, n: number, mask: number): Uint8Array {
  if (mask < 0 || at + n <= mask + 1) return ring.subarray(at, at + n);
  const first = mask + 1 - at;
  const out = new Uint8Array(n);
  out.set(ring.subarray(at, at + first));
  out.set(ring.subarray(0, n - first), first);
  return out;
}

/** A copy of `n` bytes of a ring from `at` (wrapping with `mask`, its length − 1). */
export function copyRing(ring: Uint8Array, at: number, n: number, mask: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = ring[(at + i) & mask];
  return out;
}
