import { assertEquals, assertOk, assertRejects } from "./_assert.ts";
import { measureReception } from "../interarrival/server.ts";
import { runClient } from "../interarrival/client.ts";
import { parseDistribution } from "../interarrival/distributions.ts";
import { DEFAULT_MAX_LINE, GREETING, MessageSplitter } from "../interarrival/protocol.ts";
import { applySenderPriority, describePriority } from "../interarrival/priority.ts";
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

// A receiver that reads nothing for a while: the FFI sender's socket buffer
// fills, the scheduler keeps the bytes the kernel refused and offers them again
// on its own schedule (no timer it could not run), and every byte still arrives
// in order. A message counts as sent when its last byte is taken, so the wait
// shows in the client's errors (the reader starts 500 ms after the connection;
// the last deadline is 0.2 s after the first message).
Deno.test("interarrival sender [tcp FFI]: a full socket buffer delays messages, loses none, and shows in their send times", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const received = (async () => {
    const conn = await listener.accept();
    try {
      await conn.write(new TextEncoder().encode(GREETING + "\n"));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const splitter = new MessageSplitter(DEFAULT_MAX_LINE);
      const sequences: number[] = [];
      let bytes = 0;
      const buffer = new Uint8Array(256 * 1024);
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        bytes += n;
        for (const m of splitter.push(buffer.subarray(0, n))) {
          if ("error" in m) throw new Error(m.detail);
          sequences.push(m.sequence);
        }
      }
      return { bytes, sequences };
    } finally {
      conn.close();
    }
  })();
  try {
    const client = await runClient({
      host: "127.0.0.1",
      port,
      workers: 1,
      intervals: 199,
      dist: parseDistribution("c", [1000]),
      sizeDist: parseDistribution("constant", [60_000]),
      seed: 3,
      entry,
    });
    const { bytes, sequences } = await received;
    assertEquals(client.senders[0].engine, "ffi");
    assertEquals(sequences, Array.from({ length: 200 }, (_, i) => i));
    assertEquals([bytes, client.overall.bytes], [200 * 60_000, 200 * 60_000]);
    assertOk(client.overall.error.max > 100, `max error ${client.overall.error.max} ms`);
  } finally {
    listener.close();
  }
});

// `normal` leaves the thread alone; `realtime` and `high` raise it where the
// kernel allows (root here: SCHED_FIFO, nice -20) and `restore` gives it back.
Deno.test("interarrival sender priority: raised where permitted, restored after", () => {
  const normal = applySenderPriority("normal");
  assertEquals(normal.outcome.requested, "normal");
  assertEquals(normal.outcome.policy, "other");
  const before = normal.outcome.nice;
  for (const priority of ["realtime", "high"] as const) {
    const applied = applySenderPriority(priority);
    const permitted = Deno.uid() === 0;
    if (permitted) {
      assertEquals(
        [applied.outcome.policy, applied.outcome.nice],
        priority === "realtime" ? ["fifo", before] : ["other", -20],
      );
    }
    applied.restore();
    assertEquals(applySenderPriority("normal").outcome, {
      requested: "normal",
      policy: "other",
      nice: before,
    });
  }
  assertEquals(
    describePriority([{ requested: "realtime", policy: "fifo", nice: 0 }]),
    "SCHED_FIFO (asked realtime)",
  );
});
