import { assertEquals, assertRejects } from "./_assert.ts";
import { netnsTest } from "./_netns.ts";

netnsTest(
  import.meta.url,
  "netns: a private namespace has loopback up and no listeners",
  async () => {
    const tcp = await Deno.readTextFile("/proc/net/tcp");
    // State 0A is LISTEN; a fresh namespace has none.
    assertEquals(
      tcp.split("\n").slice(1).filter((line) => line.split(/\s+/)[4] === "0A").length,
      0,
    );
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: (listener.addr as Deno.NetAddr).port,
      });
      conn.close();
    } finally {
      listener.close();
    }
    await assertRejects(
      () => Deno.connect({ hostname: "127.0.0.1", port: 1 }),
      Deno.errors.ConnectionRefused,
    );
  },
);
