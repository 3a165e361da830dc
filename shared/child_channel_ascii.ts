/**
 * The shortcut for short ASCII JSON parts of the shared-memory endpoint
 * (child_channel_shm_endpoint.ts): most envelopes are short ASCII, and these
 * encode and decode them without a call into the runtime's text codecs.
 *
 * @module
 */
import { parseStepJson } from "./codec.ts";

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
