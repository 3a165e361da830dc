/**
 * `--banners`: what an open port says first, read over a fresh connection,
 * bounded in bytes and time, kept in a printable form (`\r`, `\n`, `\t`, `\\`
 * and other control bytes escaped) for every output. No probes are sent: a
 * service that waits for the client (HTTP) has no banner.
 *
 * @module
 */

/** Default `--banner-bytes`. */
export const DEFAULT_BANNER_BYTES = 256;
/** Default `--banner-timeout` (ms). */
export const DEFAULT_BANNER_TIMEOUT_MS = 1000;
/** Banner grabs in flight at once. */
const BANNER_CONCURRENCY = 32;

/** Bytes as printable text: ASCII as is, `\r\n\t\\` escaped, other bytes as `\xNN`. */
export function printable(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) {
    if (byte === 0x5c) text += "\\\\";
    else if (byte === 0x0d) text += "\\r";
    else if (byte === 0x0a) text += "\\n";
    else if (byte === 0x09) text += "\\t";
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return text;
}

/**
 * Connects to `address:port` and reads until `maxBytes` arrived, the peer
 * closed, or `timeoutMs` passed; the printable banner, or `null` when nothing
 * came (or the connect failed).
 */
export async function grabBanner(
  address: string,
  port: number,
  options: { maxBytes: number; timeoutMs: number },
): Promise<string | null> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  let conn: Deno.TcpConn | null = null;
  const received = new Uint8Array(options.maxBytes);
  let length = 0;
  try {
    conn = await Deno.connect({ hostname: address, port, signal: controller.signal });
    const closeOnAbort = () => conn?.close();
    controller.signal.addEventListener("abort", closeOnAbort, { once: true });
    while (length < options.maxBytes && !controller.signal.aborted) {
      const n = await conn.read(received.subarray(length));
      if (n === null) break;
      length += n;
    }
  } catch {
    // Timed out (the connection was closed under the read), refused or reset:
    // whatever arrived before stays the banner.
  } finally {
    clearTimeout(timer);
    if (!controller.signal.aborted) {
      try {
        conn?.close();
      } catch {
        // Already closed.
      }
    }
  }
  return length > 0 ? printable(received.subarray(0, length)) : null;
}

/** Runs banner grabs at most {@linkcode BANNER_CONCURRENCY} at a time. */
export class BannerGrabber {
  #running = 0;
  #queue: (() => void)[] = [];
  constructor(readonly options: { maxBytes: number; timeoutMs: number }) {}

  async grab(address: string, port: number): Promise<string | null> {
    if (this.#running >= BANNER_CONCURRENCY) {
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    }
    this.#running++;
    try {
      return await grabBanner(address, port, this.options);
    } finally {
      this.#running--;
      this.#queue.shift()?.();
    }
  }
}
