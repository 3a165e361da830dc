/**
 * Helpers for ipcbench's tests.
 *
 * @module
 */
import { assertEquals } from "./_assert.ts";

/** The `--json` document of a bench run, checked for no error: `[transport, size, runs]` per case. */
export function caseShapes(stdout: string): [string, number, number][] {
  const doc = JSON.parse(stdout);
  assertEquals(doc.error, null);
  const cases = doc.results.cases as { transport: string; size: number; runs: unknown[] }[];
  return cases.map((c) => [c.transport, c.size, c.runs.length]);
}
