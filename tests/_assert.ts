/**
 * Assertions for the tests, on `node:assert/strict` (JSR's `@std/assert` is not
 * reachable here). Messages follow `@std/assert`'s style.
 *
 * @module
 */
import assert from "node:assert/strict";

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  assert.deepStrictEqual(actual, expected, message);
}

/** Asserts `actual` matches `expected`. */
export function assertMatch(actual: string, expected: RegExp, message?: string): void {
  assert.match(actual, expected, message);
}

/** Asserts a condition holds. */
export function assertOk(condition: unknown, message?: string): asserts condition {
  assert.ok(condition, message);
}

/** Asserts `fn` throws an instance of `type`, and returns the error. */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
  includes?: string,
): E {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    if (includes) assert.ok((error as Error).message.includes(includes), (error as Error).message);
    return error as E;
  }
  throw new assert.AssertionError({ message: `expected ${type.name} to be thrown` });
}

/** Asserts the promise rejects with an instance of `type`, and returns the error. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    if (includes) assert.ok((error as Error).message.includes(includes), (error as Error).message);
    return error as E;
  }
  throw new assert.AssertionError({ message: `expected ${type.name} to be rejected` });
}
