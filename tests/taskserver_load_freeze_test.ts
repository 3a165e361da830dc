/**
 * Coordinated omission: a server that freezes for 1 s in the middle of a 10 s
 * run at 1,000 requests/s. Latency from the schedule (wrk2's rule) charges the
 * freeze to the ~1,000 requests it held up, so p99.9 shows it; latency from the
 * actual send sees only the 4 requests in flight (one per connection), so its
 * p99.9 does not. The generator runs as its own process (`taskserver load`), so
 * the server's event loop is not its own.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { loadCommand, startTestServer } from "./_taskserver_load_server.ts";

Deno.test("taskserver load: a 1 s freeze shows in the corrected p99.9, not in the uncorrected", async () => {
  const server = await startTestServer({ freeze: { afterMs: 4500, forMs: 1000 } });
  try {
    const out = await loadCommand(
      `127.0.0.1:${server.port}`,
      "--rate 1000 --connections 4 --duration 10s --no-co-correction --json",
    );
    assertEquals(out.code, 0, out.stderr);
    const { summary, measured } = JSON.parse(out.stdout).results;
    assertEquals(summary.requests, 10_000);
    assertEquals(summary.answered, 10_000);
    assertEquals(summary.errors, 0);
    // ~1,000 requests held up by 0–1,000 ms: the top 0.1 % waited ~990 ms.
    assertOk(summary.latencyMs.p999 >= 500, `corrected p99.9 ${summary.latencyMs.p999} ms`);
    assertOk(summary.latencyMs.p99 >= 300, `corrected p99 ${summary.latencyMs.p99} ms`);
    // Only the 4 requests in flight during the freeze waited; p99.9 is the 11th slowest.
    assertOk(summary.uncorrectedMs.max >= 800, `uncorrected max ${summary.uncorrectedMs.max} ms`);
    assertOk(
      summary.uncorrectedMs.p999 < 250,
      `uncorrected p99.9 ${summary.uncorrectedMs.p999} ms must not show the freeze`,
    );
    // The timeline shows the stall: a second with far fewer answers than 1,000.
    const answered = measured.timeline.map((t: { answered: number }) => t.answered);
    assertOk(Math.min(...answered.slice(1, 9)) < 700, `answers per second ${answered}`);
  } finally {
    await server.close();
  }
});
