import { assertEquals } from "./_assert.ts";
import { onAbort } from "../shared/abort.ts";
import { sleep } from "../shared/clock.ts";

Deno.test("onAbort: every remembered callback runs once, forgotten ones never", async () => {
  const controller = new AbortController();
  const calls: number[] = [];
  const forgets = Array.from(
    { length: 5 },
    (_, i) => onAbort(controller.signal, () => calls.push(i)),
  );
  forgets[1]();
  forgets[3]();
  controller.abort();
  controller.abort();
  assertEquals(calls, [0, 2, 4]);
  // Already aborted: the callback runs on a microtask, unless forgotten first.
  const late: string[] = [];
  onAbort(controller.signal, () => late.push("late"));
  onAbort(controller.signal, () => late.push("forgotten"))();
  assertEquals(late, []);
  await Promise.resolve();
  assertEquals(late, ["late"]);
});

Deno.test("sleep: many sleeps on one signal end together with its reason", async () => {
  const controller = new AbortController();
  const sleeps = Array.from({ length: 1000 }, () => sleep(60_000, controller.signal));
  const done = await sleep(1, controller.signal).then(() => "slept");
  controller.abort(new Error("closing"));
  const outcomes = await Promise.allSettled(sleeps);
  assertEquals(done, "slept");
  assertEquals(
    outcomes.every((o) => o.status === "rejected" && o.reason.message === "closing"),
    true,
  );
});
