/**
 * Issue 13 item 7: every server listens with listeners adding up to `--backlog`
 * (default 16,384; shared/server.ts), so 1,000 connections at once cause no
 * listen-queue overflow, all are answered, and `interarrival` records every one.
 * Overflows are counted per network namespace: each test runs in its own.
 */
import { assertEquals } from "./_assert.ts";
import { netnsTest } from "./_netns.ts";
import {
  burstClients,
  havePython,
  listenOverflows,
  serveArgs,
  SERVER_KINDS,
  serverMain,
  startServerProcess,
} from "../tools/hostile_clients.ts";

const BURST = 1000;

for (const kind of SERVER_KINDS) {
  netnsTest(
    import.meta.url,
    `${kind}: ${BURST} connections at once in async, thread and process: no overflow, all answered`,
    async () => {
      if (!(await havePython())) return;
      for (const mode of ["async", "thread", "process"]) {
        const server = await startServerProcess(kind, mode);
        try {
          const before = listenOverflows();
          const answered = await burstClients(kind, server.port, BURST);
          assertEquals([mode, answered, listenOverflows() - before], [mode, BURST, 0]);
        } finally {
          await server.stop();
        }
      }
    },
    { timeout: 300_000 },
  );
}

netnsTest(
  import.meta.url,
  `interarrival: ${BURST} connections at once are all recorded (async, thread, process)`,
  async () => {
    if (!(await havePython())) return;
    for (const mode of ["async", "thread", "process"]) {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "--unstable-net",
          serverMain("interarrival"),
          ...serveArgs("interarrival", mode, 7000, ["--connections", String(BURST), "--json"]),
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(120_000),
      }).spawn();
      const stdout = new Response(child.stdout).text();
      const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!/receive on/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      void reader.cancel().catch(() => {});
      const before = listenOverflows();
      const answered = await burstClients("interarrival", 7000, BURST);
      const status = await child.status;
      const doc = JSON.parse(await stdout);
      assertEquals(
        [mode, status.code, answered, doc.results.connections, listenOverflows() - before],
        [mode, 0, BURST, BURST, 0],
      );
    }
  },
  { timeout: 300_000 },
);
