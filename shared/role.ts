/**
 * Which role this isolate plays, decided without loading the runtime: an entry
 * that is also its tool's worker and child entry checks this first, so a normal
 * start loads none of the worker machinery (runtime.ts, the child channel) and a
 * worker none of the command line.
 *
 * @module
 */

/** Command-line argument that starts a program in its child role. */
export const CHILD_FLAG = "--netconc-child";

/** True in a Web Worker. */
export function isWorkerScope(): boolean {
  // deno-lint-ignore no-explicit-any
  return typeof (globalThis as any).WorkerGlobalScope !== "undefined";
}

/** True when this isolate is a worker or child started by the runtime (shared/runtime.ts). */
export function inChildRole(): boolean {
  return isWorkerScope() || Deno.args[0] === CHILD_FLAG;
}
