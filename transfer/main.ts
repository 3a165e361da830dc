/**
 * `transfer`: STEP v1.0 file-transfer server and client.
 *
 * The entry is also the worker and child entry: it loads only the registry
 * (registry.ts) before deciding its role, so a worker or child serves its parent
 * without loading the command line; a normal start loads cli.ts.
 *
 * @module
 */
import { serveRegistry } from "../shared/registry.ts";
import { registry } from "./registry.ts";

if (import.meta.main && !serveRegistry(registry)) {
  const { runCli } = await import("./cli.ts");
  await runCli();
}
