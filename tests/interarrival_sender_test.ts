import { assertEquals, assertRejects } from "./_assert.ts";
import { measureReception } from "../interarrival/server.ts";
import { runClient } from "../interarrival/client.ts";
import { parseDistribution } from "../interarrival/distributions.ts";
import "../interarrival/main.ts";

const entry = new URL("../interarrival/worker_entry.ts", import.meta.url);

// Both TCP send paths (libc send() through FFI, Deno.connect writes), with a flow
// alone in its Web Worker and with three flows driven by one scheduler: the
// server gets exactly the messages and bytes the client sent, flow by flow.
for (const tcpEngine of ["auto", "deno"] as const) {
  for (const threads of [3, 1]) {
    Deno.test(`interarrival sender [tcp ${tcpEngine === "auto" ? "FFI" : "Deno API"}, 3 flows in ${threads} worker(s)]: every message and byte arrives`, async () => {
      const { sent: client, received: { summary } } = await measureReception(
        { mode: "async", entry },
        3,
        (port) =>
          runClient({
            host: "127.0.0.1",
            port,
            workers: 3,
            threads,
            intervals: 199,
            dist: parseDistribution("c", [2000]),
            sizeDist: parseDistribution("normal", [1500, 300]),
            seed: 9,
            tcpEngine,
            entry,
          }),
      );
      assertEquals([summary.messages, summary.lost, summary.duplicates, summary.reordered], [
        600,
        0,
        0,
        0,
      ]);
      assertEquals(summary.flows.map((f) => [f.flow, f.messages, f.highestSequence]).sort(), [
        [1, 200, 199],
        [2, 200, 199],
        [3, 200, 199],
      ]);
      assertEquals(summary.bytes, client.overall.bytes);
      assertEquals(client.threads, threads);
      assertEquals(client.perWorker.map((w) => w.messages), [200, 200, 200]);
      const engine = tcpEngine === "auto" ? "ffi" : "deno";
      assertEquals(client.senders.map((s) => s.engine), [engine, engine, engine]);
      assertEquals(client.senders.map((s) => s.sizes.length), [200, 200, 200]);
      assertEquals(client.perWorker.map((w) => w.greeting.length > 0), [true, true, true]);
    });
  }
}

Deno.test("interarrival sender [tcp FFI]: a refused connection says where and why", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assertRejects(
    () =>
      runClient({
        host: "127.0.0.1",
        port,
        workers: 2,
        threads: 1,
        intervals: 5,
        dist: parseDistribution("c", [100]),
        seed: 1,
        connectTimeoutMs: 2000,
        entry,
      }),
    Error,
    `Cannot connect to 127.0.0.1:${port}: connection refused`,
  );
});
