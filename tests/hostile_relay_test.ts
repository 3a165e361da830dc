/**
 * In the per-connection designs the accepting isolate relays bytes to a worker or
 * child. A client that sends request after request and never reads the replies
 * must not make the relay buffer: each direction lets at most 1 MiB travel ahead
 * of its reader, so the client's writes stall (TCP flow control) and the
 * server's memory stays flat.
 */
import { assertOk } from "./_assert.ts";
import { startServerProcess, treeStats } from "../tools/hostile_clients.ts";

const OFFER_MIB = 96;

for (const mode of ["thread", "process"]) {
  Deno.test(`taskserver ${mode} --per-client: a client that never reads cannot make the relay buffer`, async () => {
    const server = await startServerProcess("taskserver", mode, { extra: ["--per-client"] });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const before = treeStats(server.child.pid).rssBytes;
      // 1 KiB requests (reverse), replies as long: 96 MiB offered within 8 s.
      const line = new TextEncoder().encode("3|" + "x".repeat(1021) + "\n");
      const chunk = new Uint8Array(line.length * 64);
      for (let i = 0; i < 64; i++) chunk.set(line, i * line.length);
      let written = 0;
      const deadline = performance.now() + 8000;
      const writing = (async () => {
        while (written < OFFER_MIB << 20 && performance.now() < deadline) {
          written += await conn.write(chunk);
        }
      })().catch(() => {});
      await Promise.race([writing, new Promise((resolve) => setTimeout(resolve, 9000))]);
      const grown = treeStats(server.child.pid).rssBytes - before;
      assertOk(
        written < 48 << 20,
        `the client wrote ${(written / 1048576).toFixed(1)} MiB unhindered`,
      );
      assertOk(grown < 150 << 20, `server RSS grew by ${(grown / 1048576).toFixed(1)} MiB`);
    } finally {
      conn.close();
      await server.stop();
    }
  });
}
