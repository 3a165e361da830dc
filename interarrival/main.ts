/**
 * `interarrival`: traffic generator and inter-arrival-time server.
 *
 * @module
 */
import { createProgram, runMain } from "../shared/cli.ts";
import { enterRole } from "../shared/runtime.ts";

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram("interarrival", "traffic generator and inter-arrival-time server");
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  await program.parseAsync(args, { from: "user" });
  return 0;
}

// The entry is also the worker and child entry: in those roles it serves its parent.
if (import.meta.main && !enterRole()) await runMain("interarrival", () => main(Deno.args));
