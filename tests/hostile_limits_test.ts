/**
 * Issue 13 "Also": `--max-connections` bounds the connections every server
 * serves at once; a connection above it is told so (taskserver: an `Error:`
 * line) and closed at once, and a client is served again once one leaves;
 * the server counts the refusals on stderr.
 */
import { assertEquals, assertMatch, assertOk } from "./_assert.ts";
import {
  freshClient,
  readUntilClosed,
  servedConnection,
  SERVER_KINDS,
  startServerProcess,
} from "../tools/hostile_clients.ts";
import { BUSY_REPLY } from "../taskserver/server.ts";

const MAX = 10;

function perConnectionFlag(kind: string): string {
  return kind === "taskserver" ? "--per-client" : "--per-connection";
}

for (const kind of SERVER_KINDS) {
  const designs: [string, string[]][] = [
    ["async", []],
    // One worker: its share is the whole bound, so the count is exact.
    ["thread", ["--workers", "1"]],
    ["process", ["--workers", "1"]],
    ["thread", [perConnectionFlag(kind)]],
  ];
  for (const [mode, flags] of designs) {
    Deno.test(`${[kind, mode, ...flags].join(" ")}: --max-connections ${MAX} refuses the excess with a clear close`, async () => {
      const server = await startServerProcess(kind, mode, {
        extra: ["--max-connections", String(MAX), ...flags],
      });
      const held: Deno.TcpConn[] = [];
      let refused = 3;
      try {
        for (let i = 0; i < MAX; i++) held.push(await servedConnection(kind, server.port, 20_000));
        // Three more: each is closed at once, after the refusal.
        for (let i = 0; i < 3; i++) {
          const extra = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
          const text = await readUntilClosed(extra, 10_000);
          assertEquals(text, kind === "taskserver" ? BUSY_REPLY : "");
        }
        // The held ones are still served.
        if (kind === "taskserver") {
          await held[0].write(new TextEncoder().encode("2|2+2\n"));
          const buffer = new Uint8Array(16);
          const n = await held[0].read(buffer);
          assertEquals(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), "4\n");
        }
        // One leaves: a new client is served again (the server sees the close soon after).
        held.pop()!.close();
        let served = false;
        for (let attempt = 0; attempt < 50 && !served; attempt++) {
          try {
            held.push(await servedConnection(kind, server.port, 2000));
            served = true;
          } catch {
            // Refused: the server had not seen the close yet.
            refused++;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        assertOk(served, "no client served after one left");
      } finally {
        for (const conn of held) conn.close();
        await server.stop();
      }
      // The operator sees the refusals: counted on stderr, every worker's included.
      assertMatch(server.output(), /: refused \d+ connections?: 10 already open/);
      assertMatch(server.output(), new RegExp(`; ${refused} refused since start\n(?![^]*refused)`));
    });
  }
}

Deno.test("taskserver async: without --max-connections, 300 clients at once are all served", async () => {
  const server = await startServerProcess("taskserver", "async");
  const held: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 300; i++) held.push(await servedConnection("taskserver", server.port));
    assertOk((await freshClient("taskserver", server.port)) < 10_000);
  } finally {
    for (const conn of held) conn.close();
    await server.stop();
  }
});
