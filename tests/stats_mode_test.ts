import { assertEquals, assertThrows } from "./_assert.ts";
import { histogram, percentile, summarize } from "../shared/stats.ts";
import { MODES, parseMode, parseModeList } from "../shared/mode.ts";
import { UsageError } from "../shared/errors.ts";

Deno.test("stats: summary of known values", () => {
  assertEquals(summarize([4, 1, 3, 2, 5]), {
    count: 5,
    mean: 3,
    stddev: Math.sqrt(2.5),
    min: 1,
    p50: 3,
    p95: 4.8,
    p99: 4.96,
    max: 5,
  });
  assertEquals(summarize([]).count, 0);
  assertEquals(percentile([10, 20], 50), 15);
});

Deno.test("stats: histogram bins include the top edge", () => {
  assertEquals(histogram([0, 1, 2, 3, 4], 2), { edges: [0, 2, 4], counts: [2, 3] });
});

Deno.test("mode: canonical names and the studies' aliases", () => {
  assertEquals(MODES, ["sequential", "async", "thread", "process"]);
  const aliases: Record<string, string> = {
    single: "sequential",
    iterative: "sequential",
    iter: "sequential",
    thr: "thread",
    proc: "process",
    THREAD: "thread",
    async: "async",
  };
  for (const [alias, mode] of Object.entries(aliases)) assertEquals(parseMode(alias), mode);
  assertEquals(parseModeList("iter,thr,proc,thread"), ["sequential", "thread", "process"]);
  assertThrows(() => parseMode("fork"), UsageError, "Invalid --mode 'fork'");
});
