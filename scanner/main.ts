/**
 * `scanner`: TCP connect port scanner in four execution modes.
 *
 * `scanner <targets...> [options]` (or `scanner scan ...`) scans; `scanner bench`
 * reproduces the port-scanning study.
 *
 * This entry is also the worker and child entry. It decides its role first
 * (shared/role.ts, no imports): a worker or child loads only the registry
 * (registry.ts) and serves its parent; a normal start tries the fast path of a
 * plain scan (fast_scan.ts, a small module graph) and loads the command line
 * (commander, output files, the bench) only when that path declines. A worker
 * that starts without the command line is ready 2-3x sooner, and a one-port scan
 * evaluates a dozen small modules rather than the whole tool.
 *
 * @module
 */
import { inChildRole } from "../shared/role.ts";
import { fastScan } from "./fast_scan.ts";

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { runCli } = await (import(String("./cli.ts")) as Promise<typeof import("./cli.ts")>);
  return await runCli(args);
}

/** `runMain` of shared/cli.ts, loaded on first use (see the module comment). */
async function runMain(tool: string, run: () => Promise<number | void>): Promise<never> {
  const cli =
    await (import(String("../shared/cli.ts")) as Promise<typeof import("../shared/cli.ts")>);
  return await cli.runMain(tool, run);
}

if (import.meta.main) {
  if (inChildRole()) {
    // A worker or child of this program: serve the parent with the registry's tasks.
    const [{ serveRegistry }, { registry }] = await Promise.all([
      import(String("../shared/registry.ts")) as Promise<typeof import("../shared/registry.ts")>,
      import(String("./registry.ts")) as Promise<typeof import("./registry.ts")>,
    ]);
    serveRegistry(registry);
  } else {
    const entered = performance.now();
    const args = Deno.args[0] === "--" ? Deno.args.slice(1) : [...Deno.args];
    // A plain scan of literal addresses skips commander (see fast_scan.ts).
    const code = await fastScan(args, entered);
    if (code !== null) Deno.exit(code);
    await runMain("scanner", () => main(args));
  }
}
