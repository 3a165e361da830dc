import { assertEquals, assertOk } from "./_assert.ts";
import { Pacer } from "../taskserver/pacer.ts";

Deno.test("pacer: callbacks run once each, in due order, never before their due time; cancel forgets", async () => {
  const pacer = Pacer.create();
  assertOk(pacer !== null, "the tests run with --allow-ffi on Linux");
  const start = performance.now();
  const fired: { name: string; early: boolean }[] = [];
  const done = Promise.withResolvers<void>();
  const at = (name: string, offsetMs: number, base = start) => {
    const due = base + offsetMs;
    const callback = () => {
      fired.push({ name, early: performance.now() < due });
      if (name === "last") done.resolve();
      // Added while the pacer sleeps on a timer towards 200 ms: it must wake sooner.
      if (name === "0.5 ms") setTimeout(() => at("added late", 2, performance.now()), 5);
    };
    pacer.at(due, callback);
    return callback;
  };
  at("last", 220);
  at("200 ms", 200);
  const cancelled = at("cancelled", 10);
  at("0.5 ms", 0.5);
  pacer.cancel(cancelled);
  await done.promise;
  assertEquals(fired, [
    { name: "0.5 ms", early: false },
    { name: "added late", early: false },
    { name: "200 ms", early: false },
    { name: "last", early: false },
  ]);
});
