/**
 * `scanner`: TCP connect port scanner in four execution modes.
 *
 * `scanner <targets...> [options]` (or `scanner scan ...`) scans; `scanner bench`
 * reproduces the port-scanning study.
 *
 * This entry is also the worker and child entry. It registers the probe task
 * statically and loads the command line (commander, output, bench) only in the
 * command-line role: a worker that starts without them is ready 2-3x sooner
 * (20 thread workers: ~300 ms instead of ~650-950 ms here), which is most of
 * the cost of the study's 100- and 200-worker rows.
 *
 * @module
 */
import { enterRole } from "../shared/runtime.ts";
import "./probe.ts";
import "./engines.ts";
import { fastScan } from "./fast_scan.ts";

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { runCli } = await import("./cli.ts");
  return await runCli(args);
}

/** `runMain` of shared/cli.ts, loaded on first use (see the module comment). */
async function runMain(tool: string, run: () => Promise<number | void>): Promise<never> {
  const cli = await import("../shared/cli.ts");
  return await cli.runMain(tool, run);
}

// The entry is also the worker and child entry: in those roles it serves its parent.
if (import.meta.main && !enterRole()) {
  const args = Deno.args[0] === "--" ? Deno.args.slice(1) : [...Deno.args];
  // A small plain scan of literal addresses skips commander (see fast_scan.ts).
  const code = await fastScan(args);
  if (code !== null) Deno.exit(code);
  await runMain("scanner", () => main(args));
}
