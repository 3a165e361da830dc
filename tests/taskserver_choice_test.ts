/**
 * Issue 13, item 9: choices named after built-in object members (`constructor`,
 * `valueOf`, `toString`, `hasOwnProperty`, `__proto__`) are unknown choices, in
 * the pure request code and on a live server in every mode.
 */
import { assertEquals } from "./_assert.ts";
import { parseOperation, processRequest } from "../taskserver/ops.ts";
import { startTaskServer } from "../taskserver/server.ts";
import { BufferedReader } from "../shared/reader.ts";
import { decodeText } from "../shared/codec.ts";
import type { Mode } from "../shared/mode.ts";

const MEMBERS = ["constructor", "valueOf", "toString", "hasOwnProperty", "__proto__"];

function unknown(choice: string): string {
  return `Error: unknown choice '${choice}' (expected 1 change case, 2 evaluate, 3 reverse)`;
}

Deno.test("processRequest: inherited member names are unknown choices", () => {
  for (const member of MEMBERS) {
    assertEquals(processRequest(`${member}|1+1`), unknown(member));
    assertEquals(parseOperation(member), undefined);
  }
  assertEquals(processRequest("2|1+1"), "2");
  assertEquals(parseOperation("rev"), "reverse");
});

for (const mode of ["sequential", "async", "thread", "process"] as Mode[]) {
  Deno.test(`taskserver ${mode}: inherited member names are unknown choices on the wire`, async () => {
    const server = await startTaskServer({
      host: "127.0.0.1",
      port: 0,
      mode,
      workers: 2,
      perClient: false,
    });
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      try {
        const request = MEMBERS.map((m) => `${m}|1+1\n`).join("") + "2|1+1\n";
        await conn.write(new TextEncoder().encode(request));
        const reader = new BufferedReader(conn);
        const replies: string[] = [];
        for (let i = 0; i <= MEMBERS.length; i++) {
          const line = await reader.readLine(4096, { timeout: 10_000 });
          if (line === null) break;
          replies.push(decodeText(line as Uint8Array));
        }
        assertEquals(replies, [...MEMBERS.map(unknown), "2"]);
      } finally {
        conn.close();
      }
    } finally {
      await server.close();
    }
  });
}
