/**
 * `transfer`: STEP v1.0 file-transfer server and client.
 *
 * The entry is also the worker and child entry: it loads only the registry
 * (registry.ts) before deciding its role, so a worker or child serves its parent
 * without loading the command line; a normal start loads cli.ts, unless a plain
 * `upload` can start without it (fast_start.ts).
 *
 * @module
 */
import { serveRegistry } from "../shared/registry.ts";
import { registry } from "./registry.ts";

if (import.meta.main && !serveRegistry(registry)) {
  // A plain `upload FILE --json` (or `--quiet`) starts without commander (fast_start.ts).
  const [{ fastUpload }, { toolArgs }] = await Promise.all([
    import("./fast_start.ts"),
    import("../shared/cli_run.ts"),
  ]);
  const code = await fastUpload(toolArgs());
  if (code !== null) Deno.exit(code);
  // Not a literal import: Deno would otherwise resolve the command line's npm packages
  // (commander, cli-progress, vega...) in the background of every start, ~10-25 ms of
  // this thread during the fast start's first connect (tools/build.ts makes it literal
  // again for the bundle).
  const { runCli } = await (import(String("./cli.ts")) as Promise<typeof import("./cli.ts")>);
  await runCli();
}
