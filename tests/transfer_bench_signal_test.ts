/**
 * Issue 13's leftover for `transfer bench`: SIGINT in the middle of a bench
 * prints what was measured so far (one JSON document under `--json`), stops the
 * server and client processes it started, and exits 130.
 */
import { assertEquals, assertOk } from "./_assert.ts";

const MAIN = new URL("../transfer/main.ts", import.meta.url).pathname;

/** Processes whose command line mentions `text` (the bench's directory). */
function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(text)) found.push(Number(entry.name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

Deno.test("transfer bench --defaults: SIGINT prints the steps measured so far and exits 130", async () => {
  const dir = await Deno.makeTempDir({ prefix: "transfer_bench_signal_" });
  try {
    const bench = "bench --defaults --size 64MiB --lockstep-size 2MB --json --dir".split(" ");
    const deno = ["run", "--allow-all", "--unstable-net", MAIN];
    const child = new Deno.Command(Deno.execPath(), {
      args: [...deno, ...bench, dir],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = new Response(child.stdout).text();
    // Wait for the second step (md5sum) to be reported, then interrupt the next one.
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let stderr = "";
    for (let i = 0; i < 600 && !stderr.includes("md5sum:"); i++) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += value;
    }
    assertOk(stderr.includes("md5sum:"), stderr);
    child.kill("SIGINT");
    const drained = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        stderr += value;
      }
    })();
    const status = await child.status;
    await drained;
    assertEquals(status.code, 130, stderr);
    const doc = JSON.parse(await stdout);
    assertEquals([doc.tool, doc.command, doc.error], ["transfer", "bench", null]);
    assertEquals(doc.results.interrupted, true);
    const steps = doc.results.rows.map((row: { what: string }) => row.what);
    assertEquals(steps.slice(0, 2), ["dd conv=fdatasync", "md5sum"]);
    assertOk(steps.length < 6, JSON.stringify(steps));
    // The bench's server and clients are gone (their command lines name the directory).
    let left = processesMentioning(dir);
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = processesMentioning(dir);
    }
    assertEquals(left, []);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
