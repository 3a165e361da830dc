import { assertEquals } from "./_assert.ts";
import { type RunningServer, serve, type ServeOptions } from "../shared/server.ts";
import { BufferedReader } from "../shared/reader.ts";
import { decodeText, encodeLine } from "../shared/codec.ts";
import { liveChildPids } from "../shared/runtime.ts";
import { type Mode, MODES } from "../shared/mode.ts";
import "./fixtures/conformance_entry.ts";

const entry = new URL("./fixtures/conformance_entry.ts", import.meta.url);

async function client(port: number, id: number): Promise<string[]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const reader = new BufferedReader(conn);
    const replies: string[] = [];
    for (let i = 0; i < 3; i++) {
      await conn.write(encodeLine(`client ${id} line ${i}`));
      replies.push(decodeText((await reader.readLine(1024, { timeout: 10_000 })) as Uint8Array));
    }
    return replies;
  } finally {
    conn.close();
  }
}

/** The echo server of the conformance entry, answering with `> ` and the line upper-cased. */
function serveEcho(
  mode: Mode,
  perConnection: boolean | undefined,
  options: Partial<ServeOptions<{ prefix: string }>>,
): Promise<RunningServer> {
  return serve({
    handler: "test.echo",
    mode,
    perConnection,
    hostname: "127.0.0.1",
    port: 0,
    entry,
    init: { prefix: "> " },
    ...options,
  });
}

/** Every mode, then a worker and a child per connection. */
const cases: { mode: Mode; perConnection?: boolean }[] = [
  ...MODES.map((mode) => ({ mode })),
  ...(["thread", "process"] as const).map((mode) => ({ mode, perConnection: true })),
];

for (const { mode, perConnection } of cases) {
  Deno.test(`server [${mode}${perConnection ? ", per connection" : ""}]: every client served, every event merged`, async () => {
    const events: { text: string }[] = [];
    const server = await serveEcho(mode, perConnection, {
      workers: 2,
      onEvent: (event) => events.push(event as { text: string }),
    });
    try {
      const replies = await Promise.all([0, 1, 2, 3].map((id) => client(server.port, id)));
      assertEquals(
        replies,
        [0, 1, 2, 3].map((id) => [0, 1, 2].map((i) => `> CLIENT ${id} LINE ${i}`)),
      );
    } finally {
      await server.close();
    }
    assertEquals(
      events.map((e) => e.text).sort(),
      [0, 1, 2, 3].flatMap((id) => [0, 1, 2].map((i) => `client ${id} line ${i}`)).sort(),
    );
    assertEquals(liveChildPids(), []);
  });
}

for (const { mode, perConnection } of cases.filter((c) => c.mode !== "sequential")) {
  Deno.test(`server [${mode}${perConnection ? ", per connection" : ""}]: refusals over maxConnections are counted`, async () => {
    const told: number[] = [];
    const server = await serveEcho(mode, perConnection, {
      // One worker: its share is the whole bound, so the count is exact.
      workers: 1,
      maxConnections: 2,
      onRefused: (refused) => told.push(refused),
    });
    const held: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        held.push(conn);
        // Served: it echoes, so the server counts it as open.
        await conn.write(encodeLine("hello"));
        assertEquals((await conn.read(new Uint8Array(64)))! > 0, true);
      }
      for (let i = 0; i < 3; i++) {
        const extra = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        // Refused: closed without a byte.
        assertEquals(await extra.read(new Uint8Array(64)), null);
        extra.close();
      }
    } finally {
      for (const conn of held) conn.close();
      await server.close();
    }
    assertEquals(server.refusedConnections(), 3);
    assertEquals(told.reduce((a, b) => a + b, 0), 3);
  });
}
