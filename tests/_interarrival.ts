/**
 * Helpers of the interarrival tests: the worker entry, a receiver on a free
 * loopback port, a client aimed at it, and the port a `serve` child announces.
 *
 * @module
 */
import { type ReceiverHooks, type ReceiverOptions, startReceiver } from "../interarrival/server.ts";
import { type ClientOptions, runClient } from "../interarrival/client.ts";
import { parseDistribution } from "../interarrival/distributions.ts";
import "../interarrival/main.ts";

/** The tool's light worker and child entry (see interarrival/worker_entry.ts). */
export const entry = new URL("../interarrival/worker_entry.ts", import.meta.url);
/** The tool's command line. */
export const main = new URL("../interarrival/main.ts", import.meta.url);

/** A receiver on 127.0.0.1, a free port, async mode unless `options` say otherwise. */
export function loopbackReceiver(options: Partial<ReceiverOptions> = {}, hooks?: ReceiverHooks) {
  return startReceiver({ hostname: "127.0.0.1", port: 0, mode: "async", entry, ...options }, hooks);
}

/** A client sending to 127.0.0.1:`port` (one flow, one message, unless `options` say otherwise). */
export function clientTo(port: number, options: Partial<ClientOptions>) {
  return runClient({
    host: "127.0.0.1",
    port,
    workers: 1,
    intervals: 0,
    dist: parseDistribution("c", [100]),
    seed: 1,
    entry,
    ...options,
  });
}

/**
 * Reads a `serve` child's stderr until it announces `127.0.0.1:PORT`; kills the
 * child if that takes longer than `timeoutMs`. Returns the port.
 */
export async function announcedPort(
  reader: ReadableStreamDefaultReader<string>,
  child: Deno.ChildProcess,
  timeoutMs: number,
): Promise<number> {
  let text = "";
  const timeout = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      text += read.value;
      const found = /127\.0\.0\.1:(\d+)/.exec(text);
      if (found) return Number(found[1]);
    }
    throw new Error(`the server announced no port: ${text}`);
  } finally {
    clearTimeout(timeout);
  }
}
