import { assertEquals } from "./_assert.ts";
import { medianConfidence } from "../ipcbench/percentiles.ts";
import { logLines } from "../ipcbench/log.ts";
import { measureStream } from "../ipcbench/stream.ts";

Deno.test("ipcbench CI: order-statistic interval on the median and its coverage", () => {
  assertEquals(medianConfidence([3, 1, 2]), { low: 1, high: 3, level: 0.75, halfWidthPct: 50 });
  // Ten runs: [x(2), x(9)] covers the median with 97.85 %.
  const ten = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
  assertEquals(medianConfidence(ten), { low: 2, high: 9, level: 0.9785, halfWidthPct: 63.64 });
  assertEquals(medianConfidence([5]).level, 0);
});

Deno.test("ipcbench --log: one CSV line per round trip", () => {
  const text = logLines({ transport: "tcp", pin: "same", size: 64 }, 1, new Float64Array([1.5, 2]));
  assertEquals(text, "tcp,same,64,2,1,1.5\ntcp,same,64,2,2,2\n");
});

const entry = new URL("../ipcbench/main.ts", import.meta.url);
for (const transport of ["pipes", "channel-unix", "channel-shm", "tcp", "unix"] as const) {
  Deno.test(`ipcbench stream: every message arrives in order, answers under load [${transport}]`, async () => {
    const result = await measureStream({
      transport,
      size: 256,
      count: 500,
      runs: 2,
      pin: "none",
      pingEvery: 50,
      window: 16,
      timeoutMs: 10000,
      entry,
    });
    assertEquals(result.runs.map((r) => r.messages), [500, 500]);
    assertEquals(result.underLoadUs?.count, 20);
    const kind = { pipes: "pipes", "channel-unix": "unix", "channel-shm": "shm" } as const;
    assertEquals(
      result.channel,
      transport in kind ? kind[transport as keyof typeof kind] : "pipes",
    );
  });
}
