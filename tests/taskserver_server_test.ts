import { assertEquals, assertOk } from "./_assert.ts";
import { startTaskServer } from "../taskserver/server.ts";
import { formatEvent } from "../taskserver/serve_cli.ts";
import { call, interactive, TaskClient } from "../taskserver/client.ts";
import { inProcessClients } from "../taskserver/load_bench.ts";
import type { TaskServerInit } from "../taskserver/protocol.ts";
import { BufferedReader } from "../shared/reader.ts";
import { decodeText } from "../shared/codec.ts";
import { liveChildPids } from "../shared/runtime.ts";
import type { Mode } from "../shared/mode.ts";
import { SERVER_DESIGNS } from "./_taskserver_load_server.ts";

const HOST = "127.0.0.1";

async function withServer(
  options: { mode: Mode; perClient?: boolean; init?: Partial<TaskServerInit> },
  body: (port: number) => Promise<void>,
): Promise<void> {
  const server = await startTaskServer({
    host: HOST,
    port: 0,
    mode: options.mode,
    workers: 2,
    perClient: options.perClient ?? false,
    init: options.init,
  });
  try {
    await body(server.port);
  } finally {
    await server.close();
  }
}

/** Sends raw bytes and reads `lines` reply lines (or until EOF). */
async function rawExchange(port: number, bytes: Uint8Array, lines: number): Promise<string[]> {
  const conn = await Deno.connect({ hostname: HOST, port });
  try {
    await conn.write(bytes);
    const reader = new BufferedReader(conn);
    const replies: string[] = [];
    for (let i = 0; i < lines; i++) {
      const line = await reader.readLine(1 << 20, { timeout: 10_000 });
      if (line === null) break;
      replies.push(decodeText(line as Uint8Array));
    }
    return replies;
  } finally {
    conn.close();
  }
}

const target = (port: number) => ({ host: HOST, port, timeoutMs: 10_000 });

for (const { mode, perClient } of SERVER_DESIGNS) {
  Deno.test(`taskserver [${mode}${perClient ? " per client" : ""}]: three operations, several clients`, async () => {
    await withServer({ mode, perClient }, async (port) => {
      const replies = await Promise.all([
        call(target(port), "swapcase", "Hello ß", 2),
        call(target(port), "eval", "2**10 - 24/4", 1),
        call(target(port), "reverse", "a👨‍👩‍👧b", 1),
      ]);
      assertEquals(replies, [["hELLO SS", "hELLO SS"], ["1018.0"], ["b👨‍👩‍👧a"]]);
    });
    assertEquals(liveChildPids(), []);
  });
}

Deno.test("taskserver: the study's client (no newline, waits) is answered after the pause", async () => {
  await withServer({ mode: "async", init: { defaultOp: "reverse", pauseMs: 20 } }, async (port) => {
    const conn = await Deno.connect({ hostname: HOST, port });
    try {
      await conn.write(new TextEncoder().encode("BenchmarkTestString123"));
      const buf = new Uint8Array(1024);
      const n = await conn.read(buf);
      assertEquals(decodeText(buf.subarray(0, n ?? 0)), "321gnirtStseTkramhcneB\n");
      await conn.write(new TextEncoder().encode("1|Second"));
      const m = await conn.read(buf);
      assertEquals(decodeText(buf.subarray(0, m ?? 0)), "sECOND\n");
    } finally {
      conn.close();
    }
  });
});

Deno.test("taskserver: bad input gets a clear answer and the connection stays in sync", async () => {
  await withServer({ mode: "async", init: { maxLine: 1024 } }, async (port) => {
    const bytes = new Uint8Array([
      ...new TextEncoder().encode("7|x\nno bar\n1|\n3|"),
      0xff,
      0xfe,
      0x0a,
      ...new TextEncoder().encode("2|" + "(".repeat(100_000) + "\n"),
      ...new TextEncoder().encode("2|constructor\r\n2|process.exit()\n2|1/0\n3|still here\n"),
    ]);
    assertEquals(await rawExchange(port, bytes, 9), [
      "Error: unknown choice '7' (expected 1 change case, 2 evaluate, 3 reverse)",
      "Error: missing '|' (expected choice|payload, e.g. 3|hello)",
      "Error: empty payload",
      "Error: request is not valid UTF-8",
      "Error: request longer than 1024 bytes",
      "Error: name 'constructor' is not defined",
      "Error: invalid character '.' at position 8",
      "Error: division by zero",
      "ereh llits",
    ]);
  });
});

Deno.test("taskserver: idle clients time out; vanishing clients leave the server serving", async () => {
  await withServer(
    { mode: "sequential", init: { idleTimeoutMs: 300, delayMs: 50 } },
    async (port) => {
      // Sequential: an idle client would block everyone, so the timeout matters most here.
      const idle = await Deno.connect({ hostname: HOST, port });
      const vanish = await Deno.connect({ hostname: HOST, port });
      await vanish.write(new TextEncoder().encode("3|half a requ"));
      vanish.close();
      const started = performance.now();
      assertEquals(await call(target(port), "reverse", "ok"), ["ko"]);
      assertOk(performance.now() - started < 5000);
      const buf = new Uint8Array(16);
      assertEquals(await idle.read(buf), null, "the idle client was closed");
      idle.close();
    },
  );
});

Deno.test("taskserver: 5,000 connections at once all get their answer", async () => {
  await withServer({ mode: "async", init: { delayMs: 100 } }, async (port) => {
    const n = 5000;
    // One isolate stalls connects beyond ~128 in flight: on a loaded machine the last of
    // 5,000 can wait well over 10 s, which is the client's queue, not the server's.
    const patient = { host: HOST, port, timeoutMs: 60_000 };
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) => call(patient, "eval", `${i}*2`).then((r) => r[0])),
    );
    assertEquals(replies, Array.from({ length: n }, (_, i) => String(i * 2)));
  });
});

Deno.test("taskserver client: the study's menu, from a pipe", async () => {
  await withServer({ mode: "async" }, async (port) => {
    const input = ["1", "Hello", "9", "2", "(1+2)*3", "3", "abc", "4"];
    let out = "";
    const answered = await interactive(target(port), {
      readLine: () => Promise.resolve(input.shift() ?? null),
      write: (text) => void (out += text),
    });
    assertEquals(answered, 3);
    assertEquals(
      out.split("\n").filter((line) => line.includes("Result:") || line.includes("Invalid")),
      [
        "Enter choice (1-4): Enter input: Result: hELLO",
        "Enter choice (1-4): Invalid choice",
        "Enter choice (1-4): Enter input: Result: 9",
        "Enter choice (1-4): Enter input: Result: cba",
      ],
    );
  });
});

Deno.test("taskserver call: a refused connection says where and why", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  try {
    await TaskClient.connect(target(port));
    assertOk(false, "expected a refusal");
  } catch (error) {
    assertEquals(
      (error as Error).message,
      `Cannot connect to 127.0.0.1:${port}: connection refused`,
    );
  }
});

Deno.test("taskserver load generator: 600 one-request clients at once, every answer right", async () => {
  await withServer({ mode: "async", init: { delayMs: 100 } }, async (port) => {
    const run = await inProcessClients(port, 600, false, 30_000);
    assertEquals({ clients: run.clients, errors: run.errors }, { clients: 600, errors: 0 });
    assertOk(run.totalS >= 0.1 && run.averageS >= 0.1, "every client waited for the delay");
  });
});

Deno.test("taskserver [thread per client]: idle clients time out through the relay too", async () => {
  await withServer(
    { mode: "thread", perClient: true, init: { idleTimeoutMs: 300 } },
    async (port) => {
      const idle = await Deno.connect({ hostname: HOST, port });
      try {
        assertEquals(await idle.read(new Uint8Array(16)), null, "the idle client was closed");
      } finally {
        idle.close();
      }
      assertEquals(await call(target(port), "swapcase", "still Serving"), ["STILL sERVING"]);
    },
  );
});

Deno.test("taskserver --verbose: log lines worded like the study's server", () => {
  const at = Date.UTC(2025, 1, 7, 12, 26, 25);
  const where = "main isolate (pid 7)";
  assertEquals(
    formatEvent({ type: "connect", remote: "127.0.0.1:34416", connection: 1, at }, where),
    "[12:26:25] [main isolate (pid 7)] Connection from 127.0.0.1:34416",
  );
  assertEquals(
    formatEvent({ type: "request", remote: "x", request: "1|hello", reply: "HELLO" }, where),
    "[main isolate (pid 7)] Received request: 1|hello\n[main isolate (pid 7)] Sending response: HELLO",
  );
  assertEquals(
    formatEvent(
      { type: "disconnect", remote: "127.0.0.1:34416", requests: 1, reason: "client closed", at },
      where,
    ),
    "[12:26:25] [main isolate (pid 7)] Client 127.0.0.1:34416 disconnected (1 request, client closed)",
  );
});
