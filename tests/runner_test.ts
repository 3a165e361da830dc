import { assertEquals, assertOk, assertRejects } from "./_assert.ts";
import { runAll, runTasks } from "../shared/runner.ts";
import { defineRegistry, taskOf } from "../shared/registry.ts";
import { liveChildPids } from "../shared/runtime.ts";
import { TaskError, WorkerCrashError } from "../shared/errors.ts";
import { MODES } from "../shared/mode.ts";
import { boom, die, hang, square, where } from "./fixtures/conformance_entry.ts";

const entry = new URL("./fixtures/conformance_entry.ts", import.meta.url);

function pidAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

for (const mode of MODES) {
  Deno.test(`conformance [${mode}]: same results for the same inputs`, async () => {
    const inputs = Array.from({ length: 50 }, (_, n) => ({ n }));
    const outcomes = await runAll(square, inputs, { mode, workers: 3, concurrency: 4, entry });
    assertEquals(outcomes.map((o) => o.index), inputs.map((_, i) => i));
    assertEquals(outcomes.map((o) => (o.ok ? o.value : null)), inputs.map(({ n }) => n * n));
    assertEquals(outcomes.map((o) => o.input), inputs);
  });

  Deno.test(`conformance [${mode}]: async iterable inputs`, async () => {
    async function* gen() {
      for (let n = 0; n < 10; n++) yield { n, delay: 1 };
    }
    const outcomes = await runAll(square, gen(), { mode, workers: 2, concurrency: 2, entry });
    assertEquals(outcomes.map((o) => (o.ok ? o.value : null)), [
      0,
      1,
      4,
      9,
      16,
      25,
      36,
      49,
      64,
      81,
    ]);
  });

  Deno.test(`conformance [${mode}]: a throwing task names its input and where it ran`, async () => {
    const error = await assertRejects(
      () => runAll(boom, [1, 2, 3, 4], { mode, workers: 2, entry }),
      TaskError,
      "on input 3",
    );
    assertEquals(error.input, 3);
    assertOk(error.message.includes("bad input 3"), error.message);
    const expected = mode === "thread"
      ? "thread worker"
      : mode === "process"
      ? "child process"
      : "main isolate";
    assertOk(error.where.startsWith(expected), error.where);
  });

  Deno.test(`conformance [${mode}]: continueOnError yields failures`, async () => {
    const outcomes = await runAll(boom, [1, 2, 3, 4], {
      mode,
      workers: 2,
      entry,
      continueOnError: true,
    });
    assertEquals(outcomes.map((o) => o.ok), [true, true, false, true]);
    assertEquals(outcomes[2].ok ? "" : outcomes[2].error.message, "bad input 3");
  });

  Deno.test(`conformance [${mode}]: abort stops everything and leaves no children`, async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stop now")), 150);
    const started = Date.now();
    await assertRejects(
      () =>
        runAll(hang, [1, 2, 3, 4], {
          mode,
          workers: 2,
          concurrency: 2,
          entry,
          signal: controller.signal,
        }),
      Error,
      "stop now",
    );
    assertOk(Date.now() - started < 5000);
    assertEquals(liveChildPids(), []);
  });
}

for (const mode of ["thread", "process"] as const) {
  Deno.test(`conformance [${mode}]: tasks really run at the same time on different workers`, async () => {
    const outcomes = await runAll(where, [300, 300, 300], {
      mode,
      workers: 3,
      concurrency: 1,
      entry,
    });
    const workers = new Set(outcomes.map((o) => (o.ok ? o.value.worker : -1)));
    assertEquals(workers, new Set([0, 1, 2]));
    const pids = new Set(outcomes.map((o) => (o.ok ? o.value.pid : -1)));
    assertEquals(pids.size, mode === "process" ? 3 : 1);
    if (mode === "process") assertOk(!pids.has(Deno.pid));
    // Every pair of intervals overlaps: all three were running at one moment.
    const latestStart = Math.max(...outcomes.map((o) => o.startedAt));
    const earliestEnd = Math.min(...outcomes.map((o) => o.endedAt));
    assertOk(latestStart < earliestEnd, `no common moment: ${latestStart} >= ${earliestEnd}`);
    for (const pid of pids) {
      if (mode === "process") assertEquals(pidAlive(pid), false, `pid ${pid} left`);
    }
  });

  Deno.test(`conformance [${mode}]: a worker that dies is a clear error, never a hang`, async () => {
    const error = await assertRejects(
      () => runAll(die, [1, 2, 3, 4, 5, 6], { mode, workers: 2, concurrency: 1, entry }),
      WorkerCrashError,
    );
    assertOk(/(thread worker|child process) \d/.test(error.message), error.message);
    assertEquals(liveChildPids(), []);
  });
}

Deno.test("conformance [process]: stopping the consumer early leaves no children", async () => {
  let pids: number[] = [];
  for await (
    const outcome of runTasks(square, Array.from({ length: 100 }, (_, n) => ({ n, delay: 5 })), {
      mode: "process",
      workers: 2,
      entry,
    })
  ) {
    pids = liveChildPids();
    if (outcome.index >= 0) break;
  }
  assertEquals(pids.length, 2);
  assertEquals(liveChildPids(), []);
  for (const pid of pids) assertEquals(pidAlive(pid), false);
});

Deno.test("runner: synchronous tasks are started only as results are consumed", async () => {
  let started = 0;
  const registry = defineRegistry({
    tasks: {
      "test.counted": (n: number) => {
        started++;
        return n;
      },
    },
  });
  const counted = taskOf(registry, "test.counted");
  const inputs = Array.from({ length: 10_000 }, (_, i) => i);
  const seen: number[] = [];
  for await (const outcome of runTasks(counted, inputs, { mode: "async", concurrency: 2 })) {
    if (seen.length === 0) assertEquals(started, 2);
    seen.push(outcome.ok ? outcome.value : -1);
  }
  assertEquals(seen.length, 10_000);
  assertEquals(seen.slice(0, 3), [0, 1, 2]);
});
