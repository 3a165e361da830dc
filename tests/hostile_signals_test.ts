/**
 * Issue 13 "Also": SIGINT and SIGTERM stop a server cleanly: what it has is
 * printed, every child process is gone, and it exits 130 or 143.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { netnsTest } from "./_netns.ts";
import { spawnTool } from "./_command.ts";
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

/** Whether a TCP connect waits for its SYN-ACK in this network namespace (state 02). */
async function synSent(): Promise<boolean> {
  const text = await Deno.readTextFile("/proc/net/tcp");
  return text.split("\n").slice(1).some((line) => line.trim().split(/\s+/)[3] === "02");
}

netnsTest(
  import.meta.url,
  "scanner: SIGINT in the middle of a long scan prints the ports scanned so far and exits 130",
  async () => {
    // Ports 2000 and up drop SYNs: they time out (filtered), so the scan is slow.
    const script = "add table inet hostile\n" +
      "add chain inet hostile input { type filter hook input priority 0; }\n" +
      "add rule inet hostile input tcp dport 2000-65535 tcp flags & (syn | ack) == syn drop\n";
    const file = await Deno.makeTempFile();
    await Deno.writeTextFile(file, script);
    assertEquals((await new Deno.Command("nft", { args: ["-f", file] }).output()).code, 0);
    await Deno.remove(file);
    const open = Deno.listen({ hostname: "127.0.0.1", port: 22 });
    try {
      const run = spawnTool("scanner", [
        "127.0.0.1",
        "-p",
        "1-65535",
        "--timeout",
        "1000",
        "--mode",
        "process",
        "--workers",
        "2",
        // The connect engine with a small window keeps 63,536 filtered ports busy for
        // minutes (the FFI engine would finish them within about one timeout).
        "--engine",
        "connect",
        "--concurrency",
        "64",
        "--show",
        "all",
        "--json",
      ]);
      const child = run.child;
      // Once connects to the dropped ports are in flight (SYN_SENT in this namespace), the
      // open and closed ones below 2000 are done; a few timeouts later some filtered are too.
      for (let i = 0; i < 600 && !(await synSent()); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const tree = processTree(child.pid);
      child.kill("SIGINT");
      const status = await child.status;
      assertEquals(status.code, 130);
      const doc = JSON.parse(await run.stdout);
      const ports = doc.results.hosts[0].ports as { port: number; state: string }[];
      // Ports 1-1999 answer at once: all scanned, port 22 open; not every port was.
      assertOk(ports.length > 2000 && ports.length < 65535, `${ports.length} ports`);
      assertEquals(ports.filter((p) => p.state === "open").map((p) => p.port), [22]);
      assertOk((await run.stderrToEnd()).includes("interrupted by SIGINT"));
      for (let i = 0; i < 50 && tree.some(alive); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assertEquals(tree.filter(alive), []);
    } finally {
      open.close();
    }
  },
);
