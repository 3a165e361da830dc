/**
 * Conformance: an error keeps its class, message and fields when it crosses a
 * worker or a child, in every execution mode, for tasks and services alike.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { runAll } from "../shared/runner.ts";
import { spawn } from "../shared/runtime.ts";
import { MODES } from "../shared/mode.ts";
import { handlerOf, serviceOf, taskOf } from "../shared/registry.ts";
import { FrameTooLargeError, ProtocolError, TaskError, UsageError } from "../shared/errors.ts";
import { FixtureError, registry, throwing, THROWN } from "./fixtures/conformance_entry.ts";

const entry = new URL("./fixtures/conformance_entry.ts", import.meta.url);

// deno-lint-ignore no-explicit-any
const CLASSES: Record<keyof typeof THROWN, new (...args: any[]) => Error> = {
  RangeError,
  TypeError,
  UsageError,
  ProtocolError,
  FrameTooLargeError,
  FixtureError,
  ConnectionRefused: Deno.errors.ConnectionRefused,
};
const NAMES = Object.keys(THROWN) as (keyof typeof THROWN)[];

function assertSameError(actual: unknown, name: keyof typeof THROWN, mode: string): void {
  const expected = THROWN[name]();
  assertOk(actual instanceof CLASSES[name], `${mode}: ${name} arrived as ${String(actual)}`);
  const error = actual as Error;
  assertEquals([error.name, error.message], [expected.name, expected.message]);
  assertEquals({ ...error }, { ...expected }, `${mode}: ${name}'s own fields`);
}

for (const mode of MODES) {
  Deno.test(`error classes [${mode}]: a task's error keeps its class and fields`, async () => {
    const outcomes = await runAll(throwing, NAMES, {
      mode,
      workers: 1,
      entry,
      continueOnError: true,
    });
    assertEquals(outcomes.map((o) => o.ok), NAMES.map(() => false));
    for (const outcome of outcomes) {
      if (!outcome.ok) assertSameError(outcome.error, outcome.input, mode);
    }
  });

  Deno.test(`error classes [${mode}]: a stopping run's TaskError carries the class`, async () => {
    let caught: unknown;
    try {
      await runAll(throwing, ["RangeError"], { mode, workers: 1, entry });
    } catch (error) {
      caught = error;
    }
    assertOk(caught instanceof TaskError, String(caught));
    assertSameError(caught.cause, "RangeError", mode);
  });
}

for (const kind of ["thread", "process"] as const) {
  Deno.test(`error classes [${kind}]: a service's error keeps its class`, async () => {
    for (const name of ["UsageError", "FrameTooLargeError", "FixtureError"] as const) {
      const spawned = await spawn(kind, {
        service: serviceOf(registry, "test.fail"),
        init: name,
        entry,
      });
      let caught: unknown;
      try {
        await spawned.done;
      } catch (error) {
        caught = error;
      }
      assertSameError(caught, name, kind);
    }
  });
}

Deno.test("registry: look-ups accept only the registry's names (checked by deno check)", () => {
  assertEquals(handlerOf(registry, "test.echo"), "test.echo");
  assertEquals(taskOf(registry, "test.square").name, "test.square");
  // @ts-expect-error: no such task in the registry
  const missing = () => taskOf(registry, "test.squares");
  let message = "";
  try {
    missing();
  } catch (error) {
    message = (error as Error).message;
  }
  assertEquals(message, "no task named 'test.squares' in this registry");
});
