/**
 * Benchmarks of the execution layer: start-up time of one worker and one child,
 * and per-task overhead of the task runner in each mode (batched: 2,000 trivial
 * tasks per iteration, so divide the time per iteration by 2,000).
 *
 * Run with `deno bench --allow-all shared/runtime_bench.ts`.
 */
import { runAll } from "./runner.ts";
import { spawn } from "./runtime.ts";
import { square } from "../tests/fixtures/conformance_entry.ts";

const entry = new URL("../tests/fixtures/conformance_entry.ts", import.meta.url);
const TASKS = 2000;
const inputs = Array.from({ length: TASKS }, (_, n) => ({ n }));

async function startAndStop(kind: "thread" | "process"): Promise<void> {
  const worker = await spawn(kind, {
    service: "netconc.tasks",
    init: { task: square.name, concurrency: 1 },
    entry,
  });
  worker.end();
  await worker.done;
}

// Warm the module cache so start-up excludes type-checking and compilation.
await startAndStop("thread");
await startAndStop("process");

Deno.bench("start: one worker ready and stopped", { group: "start", baseline: true }, async () => {
  await startAndStop("thread");
});

Deno.bench("start: one child ready and stopped", { group: "start" }, async () => {
  await startAndStop("process");
});

for (const [mode, baseline] of [["async", true], ["thread", false], ["process", false]] as const) {
  Deno.bench(
    `overhead: ${TASKS} tasks, ${mode}`,
    { group: "overhead", baseline, n: 20 },
    async () => {
      const outcomes = await runAll(square, inputs, {
        mode,
        workers: 1,
        concurrency: 256,
        batch: 256,
        entry,
      });
      if (outcomes.length !== TASKS) throw new Error("lost tasks");
    },
  );
}
