/**
 * Bursts: thousands of connections opened at once are all accepted, with no
 * listen-queue overflow (counted per network namespace, so the count is ours).
 */
import { assertEquals } from "./_assert.ts";
import { netnsTest } from "./_netns.ts";
import { startTaskServer } from "../taskserver/server.ts";
import { burstReplies, havePython } from "../tools/hostile_clients.ts";

async function listenOverflows(): Promise<number> {
  const text = await Deno.readTextFile("/proc/net/netstat");
  const lines = text.split("\n").filter((line) => line.startsWith("TcpExt:"));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/);
  return Number(values[names.indexOf("ListenOverflows")]);
}

netnsTest(
  import.meta.url,
  "taskserver burst: 10,000 connections at once, all answered, no overflow",
  async () => {
    if (!(await havePython())) return; // The burst needs a client that connects without waiting.
    const server = await startTaskServer({
      host: "127.0.0.1",
      port: 0,
      mode: "async",
      workers: 1,
      perClient: false,
    });
    try {
      const before = await listenOverflows();
      const replies = await burstReplies(
        server.port,
        10_000,
        new TextEncoder().encode("2|{i}*3\n"),
        "line",
      );
      // Every connection got its own answer.
      assertEquals(replies.filter((reply, i) => reply === String(i * 3)).length, 10_000);
      assertEquals(await listenOverflows() - before, 0);
    } finally {
      await server.close();
    }
  },
);
