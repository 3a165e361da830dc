/**
 * Issue 13 "Also": SIGINT and SIGTERM stop a server cleanly: what it has is
 * printed, every child process is gone, and it exits 130 or 143.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import {
  processTree,
  servedConnection,
  SERVER_KINDS,
  startServerProcess,
} from "../tools/hostile_clients.ts";

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** What each server prints when it stops (its results so far). */
const STOPPED: Record<string, RegExp> = {
  taskserver: /taskserver: SIG(INT|TERM): closing/,
  transfer: /Server stopped after \d+ logged operations/,
  interarrival: /The server is terminating \(SIG(INT|TERM)\)[\s\S]*1 connections/,
};

for (const kind of SERVER_KINDS) {
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    Deno.test(`${kind} process pool: ${signal} with a client connected prints its results, ends every child, exits ${code}`, async () => {
      const server = await startServerProcess(kind, "process", { extra: ["--workers", "2"] });
      let conn: Deno.TcpConn | null = null;
      try {
        conn = await servedConnection(kind, server.port);
        const tree = processTree(server.child.pid);
        assertOk(tree.length >= 3, `process tree ${tree}`);
        server.child.kill(signal);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const status = await Promise.race([
          server.child.status,
          new Promise<never>((_, reject) =>
            timer = setTimeout(() => reject(new Error(`no exit 20 s after ${signal}`)), 20_000)
          ),
        ]).finally(() => clearTimeout(timer));
        assertEquals(status.code, code);
        // Children leave once their stdin closes: give them a moment.
        for (let i = 0; i < 50 && tree.some(alive); i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assertEquals(tree.filter(alive), []);
        await server.stop();
        assertOk(STOPPED[kind].test(server.output()), server.output());
      } finally {
        conn?.close();
        await server.stop(1000);
      }
    });
  }
}
