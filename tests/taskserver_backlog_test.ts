/**
 * `serve({ backlog })` (shared/server.ts): above Deno's fixed 511-connection
 * listen queue, the server opens several reusePort listeners on one port.
 */
import { assertEquals } from "./_assert.ts";
import { DENO_LISTEN_BACKLOG, serve } from "../shared/server.ts";
import { call } from "../taskserver/client.ts";
import { handlerOf } from "../shared/registry.ts";
import { DEFAULT_INIT } from "../taskserver/protocol.ts";
import { registry } from "../taskserver/registry.ts";
import type { Mode } from "../shared/mode.ts";

async function listeningSockets(port: number): Promise<number> {
  const out = await new Deno.Command("ss", {
    args: ["-Hltn", `sport = :${port}`],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((line) => line.trim() !== "")
    .length;
}

const cases: { mode: Mode; backlog?: number; expected: number }[] = [
  // The default (DEFAULT_BACKLOG, 16,384) is ceil(16384 / 511) = 33 listeners.
  { mode: "async", expected: 33 },
  { mode: "async", backlog: DENO_LISTEN_BACKLOG, expected: 1 },
  { mode: "async", backlog: 2000, expected: 4 },
  // One listener keeps sequential one client at a time.
  { mode: "sequential", backlog: 2000, expected: 1 },
  // Pools share the listeners among their workers: 2 workers × ceil(2000 / 511 / 2).
  { mode: "thread", backlog: 2000, expected: 4 },
];

for (const { mode, backlog, expected } of cases) {
  Deno.test(`serve backlog [${mode}, ${backlog ?? "default"}]: ${expected} listener(s), all serving`, async () => {
    const server = await serve({
      handler: handlerOf(registry, "taskserver.tasks"),
      mode,
      hostname: "127.0.0.1",
      port: 0,
      workers: 2,
      backlog,
      init: DEFAULT_INIT,
      entry: new URL("../taskserver/worker_entry.ts", import.meta.url),
    });
    try {
      assertEquals(await listeningSockets(server.port), expected);
      const target = { host: "127.0.0.1", port: server.port, timeoutMs: 10_000 };
      const replies = await Promise.all(
        Array.from({ length: 40 }, (_, i) => call(target, "eval", `${i}+1`).then((r) => r[0])),
      );
      assertEquals(replies, Array.from({ length: 40 }, (_, i) => String(i + 1)));
    } finally {
      await server.close();
    }
  });
}
