/**
 * `taskserver`: task server (change case, evaluate, reverse), its clients and load benchmark.
 *
 * This entry is also the worker and child entry, so it loads its registry
 * (registry.ts) statically; the command line (commander,
 * the benchmark, its tables and plots) loads only in the command-line role, and
 * a plain `call` skips it altogether (see `fast_call.ts`).
 *
 * @module
 */
import { serveRegistry } from "../shared/registry.ts";
import { registry } from "./registry.ts";
import { fastCall } from "./fast_call.ts";

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const cli = await import("./cli.ts");
  return await cli.main(args);
}

// The entry is also the worker and child entry: in those roles it serves its parent.
if (import.meta.main && !serveRegistry(registry)) {
  const args = Deno.args[0] === "--" ? Deno.args.slice(1) : [...Deno.args];
  const code = await fastCall(args);
  if (code !== null) Deno.exit(code);
  const { runMain } = await import("../shared/cli.ts");
  await runMain("taskserver", () => main(args));
}
