/**
 * The bench's raw TCP sink (`transfer.raw-sink` in the registry): the ceiling a
 * transfer is compared with.
 *
 * @module
 */
import { BufferedReader } from "../shared/reader.ts";
import type { ConnectionContext, Duplex } from "../shared/server.ts";

/**
 * A raw TCP sink: reads an 8-byte length, stores that many bytes into a file, then
 * answers one byte (the length prefix lets it answer without waiting for EOF).
 */
export async function rawSink(
  conn: Duplex,
  context: ConnectionContext<{ dir: string }>,
): Promise<void> {
  const path = `${context.init.dir}/raw-${context.pid}-${context.connection}`;
  const reader = new BufferedReader(conn.readable, 1 << 20);
  const header = await reader.readExact(8, { timeout: 60_000, what: "length" });
  let remaining = Number(new DataView(header.buffer).getBigUint64(0));
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    while (remaining > 0) {
      const chunk = await reader.readSome({ timeout: 60_000 });
      if (chunk === null) throw new Error("raw copy ended early");
      remaining -= chunk.length;
      let offset = 0;
      while (offset < chunk.length) offset += file.writeSync(chunk.subarray(offset));
    }
  } finally {
    file.close();
    await Deno.remove(path).catch(() => {});
  }
  const writer = conn.writable.getWriter();
  await writer.write(new Uint8Array([1]));
  await writer.close().catch(() => {});
}
