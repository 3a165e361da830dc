/**
 * A pool keeps its size: a worker or child that dies (killed, out of memory, a
 * crash) is replaced, and the server keeps serving on every listener. Found by
 * the soak: a process pool that lost its children kept running with no listener.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { freshClient, processTree, startServerProcess } from "../tools/hostile_clients.ts";

function deno(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("--netconc-child");
  } catch {
    return false;
  }
}

Deno.test("process pool: a child killed with SIGKILL is replaced; all killed, all replaced", async () => {
  const server = await startServerProcess("taskserver", "process", { extra: ["--workers", "2"] });
  try {
    const children = () => processTree(server.child.pid).filter(deno);
    const first = children();
    assertEquals(first.length, 2);
    Deno.kill(first[0], "SIGKILL");
    let now = children();
    for (let i = 0; i < 200 && !(now.length === 2 && !now.includes(first[0])); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      now = children();
    }
    assertEquals(now.length, 2);
    assertOk(!now.includes(first[0]), `${now}`);
    // Both killed at once: both replaced.
    for (const pid of now) Deno.kill(pid, "SIGKILL");
    let later = children();
    for (let i = 0; i < 200 && !(later.length === 2 && !later.some((p) => now.includes(p))); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      later = children();
    }
    assertEquals(later.length, 2, server.output());
    // The replacements listen once started: then every client is served.
    let served = false;
    for (let i = 0; i < 100 && !served; i++) {
      served = await freshClient("taskserver", server.port).then(() => true, () => false);
      if (!served) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (let i = 0; i < 10; i++) assertOk((await freshClient("taskserver", server.port)) < 10_000);
    assertOk(server.output().includes("starting a replacement"), server.output());
  } finally {
    await server.stop();
  }
});
