/**
 * `ipcbench`: message-passing speed between threads and processes. The entry is
 * also the worker and child entry: it loads only the registry before deciding
 * its role, then, for a normal start, the command line (cli.ts).
 *
 * @module
 */
import { serveRegistry } from "../shared/registry.ts";
import { registry } from "./registry.ts";

if (import.meta.main && !serveRegistry(registry)) {
  const { runMain, toolArgs } = await import("../shared/cli.ts");
  const { main } = await import("./cli.ts");
  await runMain("ipcbench", () => main(toolArgs()));
}
