/**
 * The task server's two engines (`ffi`: libc sockets and epoll; `deno`:
 * `Deno.Conn`) and the generator's two engines answer and count alike: the
 * same bytes for the same requests, the same limits, the same report fields.
 */
import { assertEquals, assertOk, assertRejects } from "./_assert.ts";
import { BUSY_REPLY, startTaskServer, type TaskServer } from "../taskserver/server.ts";
import { inProcessClients } from "../taskserver/load_bench.ts";
import { loadOptions, runLoad } from "../taskserver/load.ts";
import type { TaskServerInit } from "../taskserver/protocol.ts";
import type { Engine } from "../taskserver/ffi_libc.ts";
import { BufferedReader } from "../shared/reader.ts";
import { decodeText } from "../shared/codec.ts";
import { UsageError } from "../shared/errors.ts";

const HOST = "127.0.0.1";
const ENGINES: readonly Engine[] = ["ffi", "deno"];
const encoder = new TextEncoder();

async function withServer(
  engine: Engine,
  options: { init?: Partial<TaskServerInit>; maxConnections?: number; mode?: "thread" | "process" },
  body: (server: TaskServer) => Promise<void>,
): Promise<void> {
  const server = await startTaskServer({
    host: HOST,
    port: 0,
    mode: options.mode ?? "async",
    workers: 2,
    perClient: false,
    engine,
    init: options.init,
    maxConnections: options.maxConnections,
  });
  try {
    assertEquals(server.engine, engine);
    await body(server);
  } finally {
    await server.close();
  }
}

/** Sends `bytes` (then half-closes when `end`) and reads reply lines until EOF or `lines`. */
async function exchange(
  port: number,
  bytes: Uint8Array,
  lines: number,
  end = false,
): Promise<string[]> {
  const conn = await Deno.connect({ hostname: HOST, port });
  try {
    await conn.write(bytes);
    if (end) await conn.closeWrite();
    const reader = new BufferedReader(conn);
    const replies: string[] = [];
    while (replies.length < lines) {
      const line = await reader.readLine(1 << 20, { timeout: 20_000 });
      if (line === null) break;
      replies.push(decodeText(line as Uint8Array));
    }
    return replies;
  } finally {
    conn.close();
  }
}

const REQUESTS = [
  "1|Hello ß",
  "2|2**10 - 24/4",
  "3|a👨‍👩‍👧b",
  "9|what",
  "2|1/0",
  "3|" + "x".repeat(2000),
  "3|crlf\r",
];

Deno.test("taskserver engines: the same answers to pipelined lines, bad input and a cap", async () => {
  const results: string[][] = [];
  for (const engine of ENGINES) {
    await withServer(engine, { init: { maxLine: 1024 } }, async ({ port }) => {
      const bytes = new Uint8Array([
        ...encoder.encode(REQUESTS.join("\n") + "\n"),
        0x33,
        0x7c,
        0xff,
        0x0a, // "3|\xff\n": not UTF-8
        ...encoder.encode("3|last without newline"),
      ]);
      results.push(await exchange(port, bytes, 100, true));
    });
  }
  assertEquals(results[0], results[1]);
  assertEquals(results[0].length, REQUESTS.length + 2);
  assertEquals(results[0][5], "Error: request longer than 1024 bytes");
  assertEquals(results[0].slice(-2), [
    "Error: request is not valid UTF-8",
    "enilwen tuohtiw tsal",
  ]);
});

Deno.test("taskserver engines: thread and process pools answer as the async server does", async () => {
  const bytes = encoder.encode(REQUESTS.join("\n") + "\n");
  let expected: string[] | undefined;
  await withServer(
    "deno",
    {},
    async ({ port }) => void (expected = await exchange(port, bytes, 99, true)),
  );
  for (const mode of ["thread", "process"] as const) {
    for (const engine of ENGINES) {
      await withServer(engine, { mode, init: { delayMs: 20 } }, async ({ port }) => {
        const replies = await Promise.all([1, 2, 3].map(() => exchange(port, bytes, 99, true)));
        for (const reply of replies) assertEquals(reply, expected, `${mode} pool, ${engine}`);
      });
    }
  }
});

for (const engine of ENGINES) {
  Deno.test(`taskserver engine ${engine}: a delay before each answer, in order`, async () => {
    await withServer(engine, { init: { delayMs: 60 } }, async ({ port }) => {
      const started = performance.now();
      const replies = await exchange(port, encoder.encode("3|ab\n3|cd\n3|ef\n"), 3);
      assertEquals(replies, ["ba", "dc", "fe"]);
      // Three delays one after another (no upper bound: the machine may be loaded).
      assertOk(performance.now() - started >= 3 * 60 - 5);
    });
  });

  Deno.test(`taskserver engine ${engine}: the study's client (no newline) is answered after the pause`, async () => {
    await withServer(
      engine,
      { init: { defaultOp: "reverse", pauseMs: 20 } },
      async ({ port }) => {
        assertEquals(await exchange(port, encoder.encode("BenchmarkTestString123"), 1), [
          "321gnirtStseTkramhcneB",
        ]);
      },
    );
  });

  Deno.test(`taskserver engine ${engine}: idle clients are closed; the rest are served`, async () => {
    await withServer(engine, { init: { idleTimeoutMs: 300 } }, async ({ port }) => {
      const idle = await Deno.connect({ hostname: HOST, port });
      try {
        assertEquals(await idle.read(new Uint8Array(16)), null, "the idle client was closed");
      } finally {
        idle.close();
      }
      assertEquals(await exchange(port, encoder.encode("1|Still\n"), 1), ["sTILL"]);
    });
  });

  Deno.test(`taskserver engine ${engine}: over --max-connections a client reads the refusal`, async () => {
    await withServer(engine, { maxConnections: 2 }, async (server) => {
      const held = [
        await Deno.connect({ hostname: HOST, port: server.port }),
        await Deno.connect({ hostname: HOST, port: server.port }),
      ];
      try {
        // Both held connections are served (so the server has accepted them).
        for (const conn of held) {
          await conn.write(encoder.encode("3|ok\n"));
          const line = await new BufferedReader(conn).readLine(64, { timeout: 10_000 });
          assertEquals(decodeText(line as Uint8Array), "ko");
        }
        const extra = await exchange(server.port, new Uint8Array(0), 5);
        assertEquals(extra, [BUSY_REPLY.trimEnd()]);
        assertEquals(server.refusedConnections(), 1);
      } finally {
        for (const conn of held) conn.close();
      }
    });
  });

  Deno.test(`taskserver engine ${engine}: a client that does not read holds the server back, loses nothing`, async () => {
    // No pause rule: a partial line the client is slow to finish would count as a request.
    await withServer(engine, { init: { pauseMs: 0 } }, async ({ port }) => {
      // 6 MB of answers: more than the socket buffers, so the server must wait for room.
      const count = 3000;
      const payload = "y".repeat(2000);
      const conn = await Deno.connect({ hostname: HOST, port });
      try {
        const request = encoder.encode(`3|${payload}\n`.repeat(count));
        const writing = (async () => {
          let done = 0;
          while (done < request.length) done += await conn.write(request.subarray(done));
        })();
        // A failed assertion below closes the connection under a pending write.
        writing.catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 300));
        const reader = new BufferedReader(conn);
        let answers = 0;
        while (answers < count) {
          const line = await reader.readLine(4096, { timeout: 20_000 });
          if (line === null) break;
          assertEquals((line as Uint8Array).length, payload.length);
          answers++;
        }
        await writing;
        assertEquals(answers, count);
      } finally {
        conn.close();
      }
    });
  });

  Deno.test(`taskserver generator engine ${engine}: one-request clients against either server`, async () => {
    for (const server of ENGINES) {
      await withServer(server, { init: { delayMs: 50 } }, async ({ port }) => {
        const run = await inProcessClients(port, 400, false, 30_000, undefined, engine);
        assertEquals(
          { clients: run.clients, errors: run.errors, generator: run.generator },
          { clients: 400, errors: 0, generator: engine },
        );
        assertOk(run.averageS >= 0.05, "every client waited for the delay");
      });
    }
  });
}

Deno.test("taskserver generator engines: a refused port counts the same connect errors", async () => {
  // A port nobody listens on: bind one, note it, close it.
  const probe = Deno.listen({ hostname: HOST, port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const measured = [];
  for (const engine of ENGINES) {
    const report = await runLoad(
      loadOptions(port, { connections: 5, requestsPerConnection: 1, engine }),
    );
    const m = report.measured;
    assertEquals(m.engine, engine);
    measured.push({
      requests: m.requests,
      answered: m.answered,
      failed: m.failed,
      connectErrors: m.connectErrors,
      firstError: m.firstError,
    });
  }
  assertEquals(measured[0], measured[1]);
  assertEquals(measured[0].connectErrors, 15, "three attempts per client");
  assertEquals(
    measured[0].firstError,
    `Cannot connect to ${HOST}:${port}: Connection refused (os error 111)`,
  );
});

Deno.test("taskserver engines: --engine ffi where it cannot run is a usage error", async () => {
  await assertRejects(
    () =>
      startTaskServer({
        host: HOST,
        port: 0,
        mode: "thread",
        workers: 1,
        perClient: true,
        engine: "ffi",
      }),
    UsageError,
    "--engine ffi: the FFI engine serves async mode and pools (not --per-client)",
  );
  await assertRejects(
    () =>
      startTaskServer({
        host: HOST,
        port: 0,
        mode: "async",
        workers: 1,
        perClient: false,
        engine: "ffi",
        init: { verbose: true },
      }),
    UsageError,
    "--engine ffi: the FFI engine writes no --verbose log",
  );
});
