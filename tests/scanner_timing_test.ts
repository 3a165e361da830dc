/** Adaptive timeouts (per-host round-trip estimates) and the -T presets. */
import { assertEquals, assertThrows } from "./_assert.ts";
import { capture } from "./_command.ts";
import { netnsTest } from "./_netns.ts";
import { parseTiming, RttEstimate, TIMING_PRESETS } from "../scanner/timing.ts";

Deno.test("scanner timing: srtt + 4 × rttvar within the bounds; the initial timeout first", () => {
  const rtt = new RttEstimate();
  const bounds = { initialMs: 500, minMs: 100, maxMs: 1000 };
  assertEquals(rtt.timeout(bounds), 500);
  rtt.sample(40); // srtt 40, rttvar 20
  assertEquals(rtt.timeout(bounds), 120);
  rtt.sample(40); // srtt 40, rttvar 15
  assertEquals(rtt.timeout(bounds), 100);
  rtt.sample(2000); // srtt 285, rttvar 501.25
  assertEquals(rtt.timeout(bounds), 1000);
  assertEquals(rtt.timeout({ initialMs: 500 }), 500); // no bounds: fixed
  const fast = new RttEstimate();
  fast.sample(0.05);
  assertEquals(fast.timeout(bounds), 100);
});

Deno.test("scanner timing: -T0..-T5 and names", () => {
  assertEquals(TIMING_PRESETS.map((p) => p.name), [
    "paranoid",
    "sneaky",
    "polite",
    "normal",
    "aggressive",
    "insane",
  ]);
  assertEquals(parseTiming("4"), parseTiming("aggressive"));
  assertEquals([parseTiming("5").timeout, parseTiming("5").maxRtt], [250, 300]);
  assertThrows(() => parseTiming("6"), Error, "Invalid -T '6'");
});

netnsTest(
  import.meta.url,
  "scanner timing: -T5 sets its settings unless given, and stays exact on loopback",
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 8080 });
    try {
      const main = new URL("../scanner/main.ts", import.meta.url).pathname;
      const run = (args: string[]) =>
        capture(Deno.execPath(), ["run", "--allow-all", "--quiet", main, ...args]);
      const doc = JSON.parse(
        (await run(["127.0.0.1", "-p", "8000-8100", "-T5", "--retries", "2", "--json"])).stdout,
      );
      assertEquals(
        [
          doc.options.timing,
          doc.options.timeout_ms,
          doc.options.max_rtt_timeout_ms,
          doc.options.retries,
        ],
        ["insane", 250, 300, 2],
      );
      assertEquals(doc.results.hosts[0].counts, { open: 1, closed: 100, filtered: 0 });
      const usage = await run(["127.0.0.1", "-T", "9"]);
      assertEquals(usage.code, 2, usage.stderr);
    } finally {
      listener.close();
    }
  },
);
