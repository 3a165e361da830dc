/**
 * `interarrival`: traffic generator and inter-arrival-time server.
 *
 * - `serve`: receiver (TCP or UDP): inter-arrival times, delay, jitter, loss per flow.
 * - `client`: generator of messages (flow, sequence, send time) with drawn gaps and sizes.
 * - `decode`: per-interval series from a saved `serve --out` log.
 * - `check`: runs both and tests the measured gaps against the distribution.
 * - `bench`: timing accuracy, throughput and precision (and `--study` for the lab).
 *
 * This entry is also the worker and child entry: it loads only the registry
 * before deciding its role, and the command line (cli.ts) only when it runs.
 *
 * @module
 */
import { serveRegistry } from "../shared/registry.ts";
import { registry } from "./registry.ts";

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const cli = await import("./cli.ts");
  return await cli.main(args);
}

if (import.meta.main && !serveRegistry(registry)) {
  const { runMain, toolArgs } = await import("../shared/cli.ts");
  await runMain("interarrival", () => main(toolArgs()));
}
