/**
 * `ipcbench`: message-passing speed between threads and processes.
 *
 * @module
 */
import { createProgram, runMain } from "../shared/cli.ts";
import { enterRole } from "../shared/runtime.ts";

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram("ipcbench", "message-passing speed between threads and processes");
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  await program.parseAsync(args, { from: "user" });
  return 0;
}

// The entry is also the worker and child entry: in those roles it serves its parent.
if (import.meta.main && !enterRole()) await runMain("ipcbench", () => main(Deno.args));
